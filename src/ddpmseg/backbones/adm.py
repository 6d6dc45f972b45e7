"""ADM (guided-diffusion) UNet decoder activations: the paper's DDPM features, and its
untrained-UNet control (the same architecture with random weights).

The paper's code (Sec. 3.2 and its `feature_extractors.py`): the image scaled to [-1, 1] is
noised with x_t = q_sample(x0, t, noise), one noise tensor shared by every image and timestep;
the noise predictor is called with the unscaled t and the outputs of `model.output_blocks[b]`
are kept. Layer `b<i>` is output block i (0 = the deepest). Our forward pass stops after the
deepest requested block; the final output layer is never computed.

Settings the workflow passes: `weights` ("trained": the checkpoint's; "random": PyTorch's
default initialisation from the seed), `flags` (guided-diffusion model flags, from the
dataset's `diffusion.flags`), `blocks` (the dataset's `features.blocks`, the default layers).
"""

from ddpmseg.adm_flags import blocks_known, decoder_blocks, diffusion_steps
from ddpmseg.backbones.defaults import SweepProblem, model_parts, noise_shape  # noqa: F401  (the usual noise)
from ddpmseg.sweep import kmeans_blocks, nearest_in_grid

NAME = "DDPM"
TAKES_TIMESTEPS = True
NORMALISATION = "[-1, 1]"
BUILT_FROM = "a guided-diffusion checkpoint, or trained by the workflow on the unlabeled images (rules/diffusion.smk)"
PRETRAINED_BY_WORKFLOW = False  # its training is a stage of its own, with model seeds
DIFFUSION_STAGE = True
HAS_MODEL_SEEDS = True
RUNS_A_MODEL = True  # its extraction jobs ask for a GPU
EXPORTABLE = True
FIGURE_AXES = "decoder block and diffusion step"

SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "weights": {
            "description": "trained = the dataset's diffusion model (checkpoint or trained by the workflow); random = "
                           "the same architecture with PyTorch's default random initialisation (the control).",
            "enum": ["trained", "random"],
            "default": "trained",
        },
        "layers": {
            "description": "Decoder blocks as b<i> (b0 = deepest). null = the dataset's features.blocks; 'auto' "
                           "(with timesteps 'auto') = the best cells of the probe sweep.",
            "anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "string"}, "minItems": 1},
                      {"const": "auto"}],
            "default": None,
        },
        "timesteps": {
            "description": "Diffusion steps t. null = the dataset's features.timesteps.",
            "anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
                      {"const": "auto"}],
            "default": None,
        },
    },
}


def layer_name(block: int) -> str:
    """'b5' for output block 5."""
    return f"b{block}"


def block_of(layer: str) -> int:
    """5 for 'b5'."""
    return int(layer.removeprefix("b"))


def schedule_length(settings: dict) -> int:
    """The diffusion's steps: flag diffusion_steps."""
    return diffusion_steps(settings["flags"])


def layer_table(settings: dict, image_size: int) -> dict:
    """{'b<i>': (channels, resolution)} of every decoder block, deepest first, of the UNet that
    the flags build at image_size (`adm_flags.decoder_blocks`)."""
    blocks = decoder_blocks({**settings["flags"], "image_size": image_size})
    return {layer_name(block): shape for block, shape in enumerate(blocks)}


def default_layers(settings: dict, image_size: int) -> list:
    """The dataset's `features.blocks` (passed as settings['blocks'])."""
    return [layer_name(b) for b in settings["blocks"]]


def complete_settings(settings: dict, dataset_settings: dict) -> dict:
    """The dataset's diffusion flags, and its `features.blocks` / `features.timesteps` as the
    default layers and timesteps ('auto' for both when blocks is 'auto')."""
    features = dataset_settings["features"]
    settings["flags"] = dataset_settings["diffusion"]["flags"]
    settings["blocks"] = [] if features["blocks"] == "auto" else features["blocks"]
    if settings["layers"] is None:
        settings["layers"] = "auto" if features["blocks"] == "auto" else default_layers(
            settings, dataset_settings["image_size"])
    if settings["timesteps"] is None:
        settings["timesteps"] = features["timesteps"]
    return settings


def model_origin(settings: dict, dataset_settings: dict) -> dict:
    """The dataset's diffusion model: its `diffusion.checkpoint` (or, for trained weights, the
    diffusion stage's model of each of `diffusion.seeds`); the layer table is known before the
    checkpoint is read only where the flags give num_res_blocks."""
    diffusion = dataset_settings["diffusion"]
    checkpoint = diffusion["checkpoint"]
    return {"checkpoint": checkpoint, "model_seeds": diffusion["seeds"],
            "stage_trained": settings["weights"] == "trained",
            "table_known": blocks_known(diffusion["flags"], checkpoint)}


def sweep_layers(settings: dict, table: dict | None, probes: dict) -> tuple:
    """The decoder blocks of `probes.blocks` (default all), and Figure 4's: `probes.kmeans.blocks`
    or the paper's relative depths, each the nearest swept block. SweepProblem where neither the
    flags nor probes.blocks tell the blocks of a checkpoint."""
    if table is None and probes["blocks"] is None:
        raise SweepProblem("the number of decoder blocks of its checkpoint is not known before it is read; give "
                           "num_res_blocks (and channel_mult) in its diffusion flags, or list probes.blocks")
    blocks = sorted(set(probes["blocks"])) if probes["blocks"] is not None else list(range(len(table)))
    k_blocks = nearest_in_grid(probes["kmeans"]["blocks"] or kmeans_blocks(max(blocks) + 1), blocks)
    return [layer_name(b) for b in blocks], [layer_name(b) for b in k_blocks]


def identity_settings(settings: dict) -> dict:
    """The settings without those taken from the dataset's config (`complete_settings`): the
    flags (the stores carry the loaded model's as model_flags) and the default blocks."""
    return {key: value for key, value in settings.items() if key not in ("blocks", "flags")}


def model_settings(model) -> dict:
    """The loaded model's full flags (a checkpoint's architecture, known once read)."""
    return {"flags": model.flags}


def adm_parts(unet, diffusion, flags: dict):
    """A loaded ADM as one module (`defaults.model_parts`): .unet, the UNetModel (eval mode);
    .diffusion, its GaussianDiffusion; .flags, the full flags."""
    return model_parts(unet=unet.eval(), diffusion=diffusion, flags=flags)


def build(settings: dict, image_size: int, checkpoint, device: str, seed: int):
    """`adm_parts` of the UNet with the checkpoint's weights, or (weights 'random') PyTorch's
    default random initialisation from `seed` in the architecture of the checkpoint (when one is
    given) or of the flags. CheckpointError names a file that does not fit the flags."""
    from ddpmseg.diffusion import build_model_and_diffusion, load_model, randomize_weights

    flags = {**settings["flags"], "image_size": image_size}
    if checkpoint is not None:
        unet, diffusion, flags = load_model(checkpoint, flags, device)
    else:
        if settings["weights"] == "trained":
            raise ValueError("trained ADM weights need a checkpoint")
        unet, diffusion = build_model_and_diffusion(flags, device)
    if settings["weights"] == "random":
        randomize_weights(unet, seed)
    return adm_parts(unet, diffusion, flags)


def decoder_activations(unet, x, timesteps, blocks) -> dict:
    """Outputs of `unet.output_blocks[b]` for b in `blocks`, as float32 tensors.

    x: (B, 3, S, S) noised input; timesteps: (B,) int64. Returns {b: (B, C_b, H_b, W_b)}.
    The forward pass runs the encoder, the middle block and the decoder only up to
    max(blocks); the final output layer is never computed.
    """
    import torch
    from guided_diffusion.nn import timestep_embedding

    deepest = max(blocks)
    if deepest >= len(unet.output_blocks):
        raise ValueError(f"block {deepest} requested, the model has {len(unet.output_blocks)} decoder blocks")
    with torch.no_grad():
        emb = unet.time_embed(timestep_embedding(timesteps, unet.model_channels))
        h = x.type(unet.dtype)
        skips = []
        for module in unet.input_blocks:
            h = module(h, emb)
            skips.append(h)
        h = unet.middle_block(h, emb)
        activations = {}
        for index, module in enumerate(unet.output_blocks[: deepest + 1]):
            h = module(torch.cat([h, skips.pop()], dim=1), emb)
            if index in blocks:
                activations[index] = h.float()
    return activations


def activations(model, x, layers, timesteps, noise) -> dict:
    """{(b<i>, t): (B, C, h, w) float32} of x (B, 3, S, S) in [-1, 1] noised to every t in
    `timesteps` with `noise`: (1, 3, S, S) shared (the paper's), or (B * len(timesteps), 3, S, S)
    in the batch's order; one forward batch of B * len(timesteps) inputs, image-major and
    timestep-minor, as the paper's code runs them."""
    import torch

    n, blocks = len(x), sorted({block_of(layer) for layer in layers})
    t_rep = torch.tensor(timesteps, dtype=torch.long, device=x.device).repeat(n)
    x_rep = x.repeat_interleave(len(timesteps), dim=0)
    x_t = model.diffusion.q_sample(x_rep, t_rep, noise=noise.expand_as(x_rep))
    maps = {}
    for block, act in decoder_activations(model.unet, x_t, t_rep, blocks).items():
        act = act.reshape(n, len(timesteps), *act.shape[1:])
        for k, t in enumerate(timesteps):
            maps[layer_name(block), t] = act[:, k]
    return maps
