"""Feature sources: where a method's pixel features come from, one module per source.

A method of the workflow (a row of Table 2) is a source plus its settings (`methods:` in the
config). Adding a source means one module here and one line in `SOURCES`.

Importing a source module needs nothing beyond the standard library and this package's light
modules, so that the Snakefile can read layer tables and plan jobs without torch; the functions
that run a model import torch and the model libraries themselves.

Every source module defines:

- ``NAME``: the default row name in the tables ("MAE").
- ``TAKES_TIMESTEPS``: whether features are taken at diffusion steps t (the input noised first).
- ``NORMALISATION``: what the model is fed: ``"[-1, 1]"`` (u / 127.5 - 1) or ``"imagenet"``
  (u / 255, then mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) per channel).
- ``BUILT_FROM``: how its model is made, in a few words (the README's method list).
- ``SETTINGS``: the JSON schema (with defaults) of a method's settings for this source,
  validated when the Snakefile is parsed; every schema has ``layers`` (names, null = the
  source's default layers).
- ``PRETRAINED_BY_WORKFLOW``: whether the generic `pretrain` rule trains it when no
  checkpoint is given (the ADM source has its own stage, rules/diffusion.smk).
- ``RUNS_A_MODEL``: whether extraction runs a network (its jobs then ask for a GPU).
- ``layer_table(settings, image_size) -> {layer: (channels, resolution)}``: every layer the
  source can give, in forward order, from settings alone (no model is built).
- ``default_layers(settings, image_size) -> [layer]``: the layers of a method whose ``layers``
  is null (the paper's choice).
- ``build(settings, image_size, checkpoint, device, seed) -> model``: the model in eval mode,
  with the checkpoint's weights (``checkpoint`` a path, or None: random weights from ``seed``).
  A file that does not fit the architecture raises `errors.CheckpointError` naming the file,
  the first mismatching tensor and the setting that probably differs.
- ``activations(model, x, layers, timesteps, noise) -> {(layer, t): tensor}``: x is a
  (B, 3, S, S) float32 batch normalised as ``NORMALISATION`` says; ``timesteps`` a list of
  ints for a source that takes them, else None (keys then have t None); ``noise`` the
  noise of a source that takes timesteps, else None: (1, 3, S, S) shared by every input, or
  (B * len(timesteps), 3, S, S), one per (image, timestep), image-major and timestep-minor. Each value is a
  (B, C, h, w) float32 map at the layer's native resolution, as ``layer_table`` says; the
  forward pass stops after the deepest requested layer where the architecture allows.
- for ``TAKES_TIMESTEPS`` sources, ``schedule_length(settings) -> int``: the number of steps of
  the noise schedule (t in 0 .. n - 1), from settings and configs alone: the probe sweep's
  timestep grid and the bound the configured timesteps are checked against.
- optionally ``noise_shape(model, image_size) -> (C, h, w)``: the shape of one noise draw where
  it is not the image's (3, S, S), e.g. a latent diffusion model's latent.
- for ``PRETRAINED_BY_WORKFLOW`` sources, ``pretrain(settings, images, device) ->
  (checkpoint, loss_rows, outcome)``: images (N, S, S, 3) uint8, seeded by the settings'
  ``train.seed``, budget ``train.max_steps`` (``train.max_minutes`` a guard, as for the
  diffusion model; these and ``threads``, ``log_every`` are `pretraining_budget`'s schema,
  the same for every source); ``checkpoint`` a dict that
  ``build`` loads (the source's official checkpoint layout); ``loss_rows`` dicts {step,
  seconds, loss}; ``outcome`` {steps, max_steps, max_minutes, stopped_by ("max_steps" or
  "max_minutes"), seconds, seed, torch_threads}, as the diffusion training writes.
"""

import importlib
from types import ModuleType

# source name -> module; the order is the README's method list.
SOURCES = {
    "adm": "ddpmseg.backbones.adm",
    "diffusers_unet": "ddpmseg.backbones.diffusers_unet",
    "stable_diffusion": "ddpmseg.backbones.stable_diffusion",
    "mae": "ddpmseg.backbones.mae",
    "swav": "ddpmseg.backbones.swav",
    "pixels": "ddpmseg.backbones.pixels",
    "patch": "ddpmseg.backbones.patch",
}


def source(name: str) -> ModuleType:
    """The module of source `name`; KeyError lists the known ones."""
    if name not in SOURCES:
        raise KeyError(f"unknown feature source {name!r}; known: {', '.join(SOURCES)}")
    return importlib.import_module(SOURCES[name])


def pretraining_budget(default_steps: int) -> dict:
    """The JSON-schema properties of `train` that every source the workflow pretrains shares:
    its budget (max_steps), time guard (max_minutes), torch threads and loss-row interval."""
    return {
        "max_steps": {"description": "Optimiser steps: the training's budget.", "type": "integer", "minimum": 1,
                      "default": default_steps},
        "max_minutes": {"description": "A guard that stops training early (the weights then depend on the machine's "
                                       "speed; the outcome says so); null = no limit.",
                        "anyOf": [{"type": "null"}, {"type": "number", "exclusiveMinimum": 0}], "default": None},
        "threads": {"description": "Torch threads of the training job (a setting recorded in training.json, never "
                                   "taken from --cores).", "type": "integer", "minimum": 1, "default": 2},
        "log_every": {"description": "Steps per loss row (each row: the mean loss over those steps).",
                      "type": "integer", "minimum": 1, "default": 10},
    }


def store_name(layer: str, timestep: int | None) -> str:
    """File name of the store of one layer (at one diffusion step): features_<layer>[_t<t>].zarr."""
    return f"features_{layer}.zarr" if timestep is None else f"features_{layer}_t{timestep}.zarr"
