"""Pixel-space diffusers `UNet2DModel` activations: DDPM checkpoints in the diffusers format
(e.g. Ho et al.'s LSUN bedroom / cat / church and CelebA-HQ models at 256x256), or a UNet2DModel
trained by the workflow on the unlabeled images with diffusers' own recipe.

As for the ADM source, the image scaled to [-1, 1] is noised with the scheduler's
`add_noise(x0, noise, t)` (one noise tensor shared by every image and timestep by default), the
UNet is called with t, and the outputs of its decoder (`up_blocks`) are kept. Layers, in forward
order: `up<i>_res<j>` (resnet j of up block i), `up<i>_attn<j>` (the attention after it, in an
attention up block) and `up<i>` (the block's output, after its upsampler); up0 is the deepest.
Their channels and resolutions follow from the model config alone (`layer_table`). The forward
pass stops after the deepest requested layer (a hook raises a stop signal).

A checkpoint is a local diffusers folder, read with `from_pretrained` (safetensors or bin;
nothing is fetched): a model folder (config.json, the weights, optionally a scheduler_config.json)
or a pipeline folder (model_index.json, unet/ and scheduler/). Without a checkpoint the workflow
trains `arch` (the generic `pretrain` rule) and saves its EMA weights as a state_dict file
({'model': state_dict}), which `build` reads with the same `arch` and `scheduler`.
"""

import json
import logging
from pathlib import Path

from ddpmseg.backbones import pretraining_budget
from ddpmseg.errors import CheckpointError
from ddpmseg.backbones.defaults import (  # noqa: F401  (the contract's usual answers)
    DIFFUSION_STAGE, FIGURE_AXES, HAS_MODEL_SEEDS, complete_settings, identity_settings, model_origin, model_parts,
    model_settings, noise_shape, sweep_layers,
)

NAME = "DDPM (diffusers)"
TAKES_TIMESTEPS = True
NORMALISATION = "[-1, 1]"
BUILT_FROM = ("a local diffusers UNet2DModel folder (from_pretrained), or trained by the workflow on the unlabeled "
              "images with diffusers' recipe")
PRETRAINED_BY_WORKFLOW = True
RUNS_A_MODEL = True  # its extraction jobs ask for a GPU
EXPORTABLE = False  # diffusers' schedulers compute in numpy: not written for export

UP_BLOCKS = ("UpBlock2D", "AttnUpBlock2D")  # the up blocks of the DDPM checkpoints; others are refused

SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "checkpoint": {
            "description": "A local diffusers folder holding a UNet2DModel (a model folder with config.json, or a "
                           "pipeline folder with unet/ and scheduler/), or a state_dict file of `arch` (the "
                           "workflow's own); null = trained by the workflow on the unlabeled images with `train`.",
            "type": ["string", "null"],
            "default": None,
        },
        "weights": {
            "description": "trained = the checkpoint's (or the workflow's training); random = the same architecture "
                           "with diffusers' default random initialisation from the seed (the untrained control).",
            "enum": ["trained", "random"],
            "default": "trained",
        },
        "layers": {
            "description": "Decoder layers up<i>, up<i>_res<j>, up<i>_attn<j> (up0 = deepest). null = the outputs of "
                           "the up blocks between the deepest and the last (the middle of the decoder, where the "
                           "paper's blocks are); 'auto' (with timesteps 'auto') = the best cells of the probe sweep.",
            "anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "string"}, "minItems": 1},
                      {"const": "auto"}],
            "default": None,
        },
        "timesteps": {
            "description": "Diffusion steps t of add_noise. null = the dataset's features.timesteps.",
            "anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
                      {"const": "auto"}],
            "default": None,
        },
        "arch": {
            "description": "UNet2DModel arguments of the workflow's own model (sample_size is the image size); "
                           "ignored for a folder, whose config.json gives them. The default is a small UNet for "
                           "64x64 images of about the default ADM's size; Ho et al.'s 256x256 models use "
                           "block_out_channels [128, 128, 256, 256, 512, 512], layers_per_block 2, attention at 16.",
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "block_out_channels": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2,
                                       "default": [32, 64, 96, 128]},
                "layers_per_block": {"type": "integer", "minimum": 1, "default": 1},
                "down_block_types": {"type": "array", "items": {"type": "string"}, "minItems": 2,
                                     "default": ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"]},
                "up_block_types": {"type": "array", "items": {"enum": list(UP_BLOCKS)}, "minItems": 2,
                                   "default": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"]},
                "attention_head_dim": {"type": "integer", "minimum": 1, "default": 8},
                "norm_num_groups": {"type": "integer", "minimum": 1, "default": 16},
            },
        },
        "scheduler": {
            "description": "DDPMScheduler of the workflow's own model (a folder's scheduler config is read instead).",
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "num_train_timesteps": {"type": "integer", "minimum": 1, "default": 1000},
                "beta_schedule": {"enum": ["linear", "scaled_linear", "squaredcos_cap_v2"], "default": "linear"},
                "beta_start": {"type": "number", "exclusiveMinimum": 0, "default": 0.0001},
                "beta_end": {"type": "number", "exclusiveMinimum": 0, "default": 0.02},
            },
        },
        "train": {
            "description": "diffusers' unconditional training recipe (train_unconditional.py: epsilon MSE, AdamW, EMA "
                           "with warm-up) on the dataset's unlabeled images, when `checkpoint` is null. Give it the "
                           "ADM's max_steps and batch_size for a like-for-like budget.",
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                **pretraining_budget(400),
                "batch_size": {"type": "integer", "minimum": 1, "default": 16},
                "lr": {"description": "AdamW learning rate (constant; the ADM's default).", "type": "number",
                       "exclusiveMinimum": 0, "default": 0.0003},
                "adam_betas": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2,
                               "default": [0.95, 0.999]},
                "weight_decay": {"type": "number", "minimum": 0, "default": 1.0e-6},
                "ema_max_decay": {"description": "EMAModel's decay cap; its warm-up (inv_gamma 1, power 3/4) sets "
                                                 "the decay 1 - (1 + step)^-0.75 below it.",
                                  "type": "number", "minimum": 0, "maximum": 1, "default": 0.9999},
                "random_flip": {"type": "boolean", "default": False},
                "seed": {"description": "Seeds the initialisation, batches, flips, noise and timesteps.",
                         "type": "integer", "minimum": 0, "default": 0},
            },
        },
    },
}

log = logging.getLogger(__name__)


def _model_folder(checkpoint) -> Path | None:
    """The folder holding the UNet's config.json (a pipeline's unet/), or None for a state_dict file."""
    path = Path(checkpoint)
    if not path.exists():
        raise CheckpointError(f"{path}: diffusers folder not found; point methods.<method>.checkpoint at a local "
                              "diffusers UNet2DModel folder (nothing is downloaded at run time)")
    if path.is_file():
        return None
    folder = path / "unet" if (path / "unet" / "config.json").is_file() else path
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{path}: no config.json (nor unet/config.json): not a diffusers model or pipeline "
                              "folder; save one with save_pretrained()")
    return folder


def unet_config(settings: dict, image_size: int) -> dict:
    """The UNet2DModel config: the checkpoint folder's config.json, or `arch` at this image size.
    CheckpointError for a folder that is missing, not diffusers', or of another class."""
    folder = _model_folder(settings["checkpoint"]) if settings["checkpoint"] else None
    if folder is None:
        return {"sample_size": image_size, **settings["arch"]}
    with open(folder / "config.json") as f:
        config = json.load(f)
    if config.get("_class_name") != "UNet2DModel":
        raise CheckpointError(f"{folder}: holds a {config.get('_class_name')!r}, not a UNet2DModel; source "
                              "diffusers_unet reads pixel-space UNet2DModel folders (a UNet2DConditionModel is "
                              "source stable_diffusion's)")
    return config


def decoder_table(config: dict, size: int, supported: tuple, attention_blocks: tuple, where) -> dict:
    """{layer: (channels, resolution)} of the up blocks of a diffusers UNet config whose input is
    size x size, in forward order: up block i of n has the channels of block_out_channels[n - 1 - i],
    runs at size / 2^(n - 1 - i) (every down block but the last halves the size) and doubles it at
    its output unless it is the last; it has layers_per_block + 1 resnets (layers_per_block may be
    a list, one per down block), each followed by an attention in one of `attention_blocks`.
    CheckpointError naming `where` for an up block type outside `supported`."""
    channels, types = list(config["block_out_channels"]), list(config["up_block_types"])
    unknown = sorted(set(types) - set(supported))
    if unknown:
        raise CheckpointError(f"{where}: up block types {unknown} are not supported; this source reads "
                              f"{', '.join(supported)}")
    n = len(channels)
    if size % 2 ** (n - 1):
        raise ValueError(f"input size {size} is not divisible by 2^{n - 1}, the UNet's {n - 1} downsamplings")
    per_block = config["layers_per_block"]
    per_block = list(reversed(per_block)) if isinstance(per_block, list) else [per_block] * n
    table = {}
    for i, block_type in enumerate(types):
        width, resolution = channels[n - 1 - i], size // 2 ** (n - 1 - i)
        for j in range(int(per_block[i]) + 1):
            table[f"up{i}_res{j}"] = (width, resolution)
            if block_type in attention_blocks:
                table[f"up{i}_attn{j}"] = (width, resolution)
        table[f"up{i}"] = (width, resolution * 2 if i < n - 1 else resolution)
    return table


def layer_table(settings: dict, image_size: int) -> dict:
    """{layer: (channels, resolution)} of every decoder layer in forward order, from the model
    config alone (`decoder_table`; the UNet runs on the image itself)."""
    return decoder_table(unet_config(settings, image_size), image_size, UP_BLOCKS, ("AttnUpBlock2D",),
                         settings["checkpoint"] or "arch")


def default_layers(settings: dict, image_size: int) -> list:
    """The outputs of up blocks 1 .. n - 2 (all but the deepest and the last); up0 for a 2-block UNet."""
    n = len(unet_config(settings, image_size)["up_block_types"])
    return [f"up{i}" for i in range(1, n - 1)] or ["up0"]


def _scheduler_config(settings: dict, folder: Path | None) -> dict:
    """The DDPMScheduler config: the folder's (scheduler/ of a pipeline, or the model folder's
    scheduler_config.json), else `scheduler` (the workflow's own model)."""
    if folder is None:
        return settings["scheduler"]
    for candidate in (folder.parent / "scheduler" / "scheduler_config.json", folder / "scheduler_config.json"):
        if candidate.is_file():
            with open(candidate) as f:
                return json.load(f)
    raise CheckpointError(f"{folder}: no scheduler config (scheduler/scheduler_config.json beside unet/, or "
                          "scheduler_config.json in the folder); the noise schedule must come with the model")


def schedule_length(settings: dict) -> int:
    """The scheduler's num_train_timesteps (diffusers' default 1000)."""
    folder = _model_folder(settings["checkpoint"]) if settings["checkpoint"] else None
    return int(_scheduler_config(settings, folder).get("num_train_timesteps", 1000))


def build(settings: dict, image_size: int, checkpoint, device: str, seed: int):
    """One module (`defaults.model_parts`) of .unet, the UNet2DModel (fp32, eval mode) on
    `device` with the checkpoint's weights: a diffusers folder (from_pretrained, local files
    only) or a state_dict file of `arch`; with weights 'random', diffusers' initialisation from
    torch.manual_seed(seed) in the same architecture; and .scheduler, its DDPMScheduler
    (add_noise). A file that does not fit raises CheckpointError naming it and the first
    mismatching tensor."""
    import torch
    from diffusers import DDPMScheduler, UNet2DModel

    from ddpmseg.checkpoints import first_shape_mismatch, load_state_dict

    settings = {**settings, "checkpoint": checkpoint}
    config = unet_config(settings, image_size)
    folder = _model_folder(checkpoint) if checkpoint else None
    scheduler = DDPMScheduler.from_config(_scheduler_config(settings, folder))
    if settings["weights"] == "random" or checkpoint is None:
        if settings["weights"] == "trained":
            raise ValueError("trained diffusers_unet weights need a checkpoint")
        torch.manual_seed(seed)
        unet = UNet2DModel.from_config(config)
    elif folder is not None:
        unet = UNet2DModel.from_pretrained(folder, local_files_only=True)
    else:
        state = load_state_dict(checkpoint, setting="methods.<method>.checkpoint")
        with torch.device("meta"):
            unet = UNet2DModel.from_config(config)
        mismatch = first_shape_mismatch(unet.state_dict(), state)
        if mismatch:
            name, in_checkpoint, built = mismatch
            raise CheckpointError(f"{checkpoint}: tensor {name!r} is {in_checkpoint or 'absent'} in the checkpoint, "
                                  f"the settings build {built or 'no such tensor'}; check methods.<method>.arch")
        unet = unet.to_empty(device="cpu")
        unet.load_state_dict(state)
    return model_parts(unet=unet.float().to(device).eval(), scheduler=scheduler)


class _Stop(Exception):
    """Raised by the hook of the deepest requested layer: the rest of the forward pass is skipped."""


def _modules(unet, layers) -> dict:
    """{layer: module} of the requested decoder layers."""
    modules = {}
    for layer in layers:
        block, _, part = layer.partition("_")
        index = int(block.removeprefix("up"))
        if not block.startswith("up") or index >= len(unet.up_blocks):
            raise ValueError(f"unknown decoder layer {layer!r}; the UNet has up0 .. up{len(unet.up_blocks) - 1}")
        module = unet.up_blocks[index]
        if part.startswith("res"):
            module = module.resnets[int(part.removeprefix("res"))]
        elif part.startswith("attn"):
            module = module.attentions[int(part.removeprefix("attn"))]
        elif part:
            raise ValueError(f"unknown decoder layer {layer!r}; use up<i>, up<i>_res<j> or up<i>_attn<j>")
        modules[layer] = module
    return modules


def decoder_activations(unet, layers, *inputs, **keywords) -> dict:
    """{layer: (B, C, h, w) float32} of the UNet's decoder layers (`up<i>[_res<j>|_attn<j>]`)
    when it runs unet(*inputs, **keywords) under no_grad; the forward pass stops once every
    requested layer has run (a hook raises `_Stop`)."""
    import torch

    modules, maps = _modules(unet, layers), {}
    remaining = set(layers)

    def hook(layer):
        def keep(module, inputs, output):
            output = output[0] if isinstance(output, tuple) else getattr(output, "sample", output)
            maps[layer] = output.float()
            remaining.discard(layer)
            if not remaining:
                raise _Stop

        return keep

    handles = [module.register_forward_hook(hook(layer)) for layer, module in modules.items()]
    try:
        with torch.no_grad():
            unet(*inputs, **keywords)
    except _Stop:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return maps


def activations(model, x, layers, timesteps, noise) -> dict:
    """{(layer, t): (B, C, h, w) float32} of x (B, 3, S, S) in [-1, 1] noised to every t with
    `noise` ((1, 3, S, S) shared, or one per (image, timestep)): one forward batch of
    B * len(timesteps) inputs, image-major and timestep-minor, as the ADM source's."""
    import torch

    n = len(x)
    limit = model.scheduler.config.num_train_timesteps
    if max(timesteps) >= limit:
        raise ValueError(f"timestep {max(timesteps)} is beyond the scheduler's {limit} training steps")
    t_rep = torch.tensor(timesteps, dtype=torch.long, device=x.device).repeat(n)
    x_rep = x.repeat_interleave(len(timesteps), dim=0)
    x_t = model.scheduler.add_noise(x_rep, noise.expand_as(x_rep), t_rep)
    maps = {}
    for layer, act in decoder_activations(model.unet, layers, x_t, t_rep).items():
        act = act.reshape(n, len(timesteps), *act.shape[1:])
        for k, t in enumerate(timesteps):
            maps[layer, t] = act[:, k]
    return maps


def pretrain(settings: dict, images, device: str):
    """diffusers' unconditional DDPM training of `arch` on unlabeled images (N, S, S, 3) uint8.

    Each step draws `batch_size` images (with replacement, numpy generator seeded with
    train.seed; torch seeded with it for the initialisation, the noise and the timesteps),
    flips them (random_flip), scales them to [-1, 1], noises them with the scheduler at uniform
    timesteps and minimises the MSE of the predicted noise with AdamW (constant lr); diffusers'
    EMAModel (warm-up inv_gamma 1, power 3/4, capped at ema_max_decay) follows the weights.
    Returns (checkpoint {'model': EMA state_dict, fp32, CPU}, loss_rows, outcome), as the other
    sources' pretraining. RuntimeError when the loss is not finite."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler, UNet2DModel
    from diffusers.training_utils import EMAModel

    from ddpmseg.model_input import model_input
    from ddpmseg.training import TrainingRecord

    train = settings["train"]
    size = images.shape[1]
    if images.shape[1:] != (size, size, 3):
        raise ValueError(f"images have shape {images.shape[1:]}, diffusers training wants square RGB (S, S, 3)")
    layer_table({**settings, "checkpoint": None}, size)  # checks the size and block types
    seed = train["seed"]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    unet = UNet2DModel.from_config(unet_config({**settings, "checkpoint": None}, size)).to(device).train()
    scheduler = DDPMScheduler.from_config(_scheduler_config(settings, None))
    ema = EMAModel(unet.parameters(), decay=train["ema_max_decay"], use_ema_warmup=True, inv_gamma=1.0, power=0.75)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=train["lr"], betas=tuple(train["adam_betas"]),
                                  weight_decay=train["weight_decay"], eps=1e-8)
    steps = scheduler.config.num_train_timesteps
    record = TrainingRecord("diffusers UNet training", "train.lr", train["max_steps"], train["max_minutes"],
                            train["log_every"], seed, log)
    for step in range(1, train["max_steps"] + 1):
        batch = images[rng.integers(0, len(images), train["batch_size"])]
        if train["random_flip"]:
            flip = rng.random(len(batch)) < 0.5
            batch = np.where(flip[:, None, None, None], batch[:, :, ::-1], batch)
        x = model_input(batch, NORMALISATION).to(device)
        noise = torch.randn(x.shape).to(device)
        t = torch.randint(0, steps, (len(x),)).to(device)
        loss = F.mse_loss(unet(scheduler.add_noise(x, noise, t), t).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.step(unet.parameters())
        if record.step(step, loss.item()):
            break
    ema.copy_to(unet.parameters())
    checkpoint = {"model": {key: value.detach().float().cpu() for key, value in unet.state_dict().items()}}
    return checkpoint, record.rows, record.outcome()
