"""The contract every feature source keeps (`FeatureSource`), so that the workflow plans and runs
any source through the same calls and never asks which source it is.

A source is a module of `ddpmseg.backbones` named in `SOURCES`. Importing it needs nothing
beyond the standard library and this package's light modules (the Snakefile reads layer tables
and plans jobs without torch); the functions that run a model import torch themselves. A source
that keeps the usual answers takes them from `ddpmseg.backbones.defaults`.

What a source can do is declared by the source, never asked of it by name, by `hasattr` or by
the type of its model: the flags below (``EXPORTABLE``, ``TAKES_TIMESTEPS``...), the settings
that identify its model (``identity_settings``) and the shape of its noise (``noise_shape``) are
members of every source.
"""

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@runtime_checkable
class FeatureSource(Protocol):
    """What a source module defines.

    Members every source has:

    - ``NAME``: the default row name in the tables ("MAE").
    - ``TAKES_TIMESTEPS``: whether features are taken at diffusion steps t (the input noised first).
    - ``NORMALISATION``: what the model is fed: ``"[-1, 1]"`` (u / 127.5 - 1), ``"imagenet"``
      (u / 255, then mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) per channel) or
      ``"[0, 1]"`` (u / 255, for a source that resizes and normalises in ``activations``).
    - ``BUILT_FROM``: how its model is made, in a few words (the README's source table).
    - ``SETTINGS``: the JSON schema (with defaults) of a method's settings for this source,
      validated when the Snakefile is parsed; every schema has ``layers`` (names, null = the
      source's default layers).
    - ``PRETRAINED_BY_WORKFLOW``: whether the `pretrain` rule trains it when no checkpoint is given.
    - ``DIFFUSION_STAGE``: whether its model is the dataset's own diffusion model (`diffusion:` in
      the config: its flags fix the image size, its checkpoint or rules/diffusion.smk's training
      give the weights; the budget curve follows it).
    - ``HAS_MODEL_SEEDS``: whether a method has one model per `diffusion.seeds`, the first in the
      method's folder, seed d in ``<method>_m<d>``.
    - ``RUNS_A_MODEL``: whether extraction runs a network (its jobs then ask for a GPU).
    - ``EXPORTABLE``: whether an ensemble bundle on its features exports to ONNX
      (`ddpmseg.export`): its model and ``activations`` trace with torch's dynamo exporter.
    - ``FIGURE_AXES``: what the probe sweep's figures call one cell ("layer").

    Functions (shapes in their own docstrings):

    - ``complete_settings(settings, dataset_settings) -> settings``: a method's validated settings
      completed from its dataset's config (timesteps from ``features.timesteps``...); ValueError
      for settings the schema cannot judge (an unknown model name).
    - ``model_origin(settings, dataset_settings) -> dict``: where the model comes from:
      ``checkpoint`` (a given file or None), ``model_seeds`` (ints), ``stage_trained`` (the diffusion stage trains it when no checkpoint is
      given), ``table_known`` (the layer table follows from settings; else only once the
      checkpoint is read).
    - ``layer_table(settings, image_size) -> {layer: (channels, resolution)}``: every layer the
      source can give, in forward order, from settings alone (no model is built).
    - ``default_layers(settings, image_size) -> [layer]``: the layers of a method whose
      ``layers`` is null (the paper's choice).
    - ``sweep_layers(settings, table, probes) -> (layers, kmeans_layers)``: the probe sweep's
      layers (forward order) and those drawn in Figure 4; raises `defaults.SweepProblem`
      where the sweep cannot be planned before a job runs.
    - ``build(settings, image_size, checkpoint, device, seed) -> torch.nn.Module``: the model in
      eval mode, with the checkpoint's weights (None: random weights from ``seed``); a model of
      several parts (a UNet and its noise schedule) is one module holding them
      (`defaults.model_parts`), a source without a model gives an empty one. A file that does
      not fit raises `errors.CheckpointError` naming the file and the setting that differs.
    - ``identity_settings(settings) -> dict``: the settings that identify the model and its
      features in the stores' attrs (`features.build_method_model`): all of them, less those a
      source copies from the dataset's config in ``complete_settings`` (the ADM's flags and
      default blocks).
    - ``model_settings(model) -> dict``: settings the built model knows better than the config
      (an ADM checkpoint's full flags); they describe its stores and give its layer table.
    - ``noise_shape(model, image_size) -> (C, h, w)``: one noise draw's shape, for a source that
      ``TAKES_TIMESTEPS``: the image's (3, S, S) (`defaults.noise_shape`), or e.g. a latent
      diffusion model's latent.
    - ``activations(model, x, layers, timesteps, noise) -> {(layer, t): tensor}``: x is a
      (B, 3, S, S) float32 batch normalised as ``NORMALISATION`` says; ``timesteps`` ints for a
      source that takes them, else None (keys then have t None); ``noise`` (1, C, h, w) shared by
      every input, or (B * len(timesteps), C, h, w), image-major and timestep-minor, for a source
      that takes timesteps, else None. Each value is a (B, C, h, w) float32 map at the layer's
      native resolution, as ``layer_table`` says; the forward pass stops after the deepest
      requested layer where the architecture allows.

    Members only some sources have (`OPTIONAL`: member -> the flag that says which), each in
    exactly the sources whose flag is true (the registry's test checks it):

    - ``schedule_length(settings) -> int`` (every source that ``TAKES_TIMESTEPS``): the steps of
      its noise schedule (t in 0 .. n - 1), from settings and configs alone.
    - ``pretrain(settings, images, device) -> (checkpoint, loss_rows, outcome)`` (every source
      ``PRETRAINED_BY_WORKFLOW``): images (N, S, S, 3) uint8, seeded by ``train.seed``, budget
      ``train.max_steps`` (`pretraining_budget`'s schema); ``checkpoint`` a dict that ``build``
      loads; ``loss_rows`` dicts {step, seconds, loss}; ``outcome`` {steps, max_steps,
      max_minutes, stopped_by, seconds, seed, torch_threads}.
    """

    NAME: str
    TAKES_TIMESTEPS: bool
    NORMALISATION: str
    BUILT_FROM: str
    SETTINGS: dict
    PRETRAINED_BY_WORKFLOW: bool
    DIFFUSION_STAGE: bool
    HAS_MODEL_SEEDS: bool
    RUNS_A_MODEL: bool
    EXPORTABLE: bool
    FIGURE_AXES: str

    def complete_settings(self, settings: dict, dataset_settings: dict) -> dict: ...

    def model_origin(self, settings: dict, dataset_settings: dict) -> dict: ...

    def layer_table(self, settings: dict, image_size: int) -> dict: ...

    def default_layers(self, settings: dict, image_size: int) -> list: ...

    def sweep_layers(self, settings: dict, table: dict | None, probes: dict) -> tuple: ...

    def build(self, settings: dict, image_size: int, checkpoint, device: str, seed: int) -> "torch.nn.Module": ...

    def identity_settings(self, settings: dict) -> dict: ...

    def model_settings(self, model) -> dict: ...

    def noise_shape(self, model, image_size: int) -> tuple: ...

    def activations(self, model, x, layers, timesteps, noise) -> dict: ...


OPTIONAL = {"schedule_length": "TAKES_TIMESTEPS", "pretrain": "PRETRAINED_BY_WORKFLOW"}  # member -> its flag
