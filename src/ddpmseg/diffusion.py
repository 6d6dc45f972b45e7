"""The diffusion model: build an ADM UNet from flags, read flags from a checkpoint, load
one, train one.

Models come from OpenAI's guided-diffusion code (`guided_diffusion`, shipped on PyPI as
`guided-diffusion-sdk`). A model travels with its flags: a flat dict of the keys of
`guided_diffusion.script_util.model_and_diffusion_defaults()` (their meaning, defaults and the
UNet's shapes: `ddpmseg.adm_flags`), saved as JSON beside the state_dict. Unlike
guided-diffusion's `create_model`, `build_model_and_diffusion` accepts any image size from 32 to
512 and any `channel_mult`, including fractional ones such as the 512x512 model's "0.5,1,1,2,2,4,4".
"""

import copy
import json
import logging
import re
import time
from pathlib import Path

import numpy as np
import torch
from guided_diffusion.script_util import NUM_CLASSES, create_gaussian_diffusion
from guided_diffusion.unet import UNetModel

from ddpmseg.adm_flags import (
    attention_downsampling, buildable_channel_mult, format_channel_mult, full_flags, same_flag,
)
from ddpmseg.checkpoints import first_shape_mismatch, load_state_dict
from ddpmseg.errors import CheckpointError
from ddpmseg.training import TrainingRecord

log = logging.getLogger(__name__)


def build_unet(flags: dict) -> UNetModel:
    """The ADM UNet of `flags` (merged over guided-diffusion's defaults), in fp32.

    Sizes from 32 to 512 work with any channel_mult whose levels halve the image to at least
    2x2; attention_resolutions are resolutions (e.g. "32,16,8" at 256 = downsampling 8,16,32).
    """
    flags = full_flags(flags)
    mult = buildable_channel_mult(flags)
    return UNetModel(
        image_size=int(flags["image_size"]),
        in_channels=3,
        model_channels=flags["num_channels"],
        out_channels=6 if flags["learn_sigma"] else 3,
        num_res_blocks=flags["num_res_blocks"],
        attention_resolutions=attention_downsampling(flags),
        dropout=flags["dropout"],
        channel_mult=mult,
        num_classes=NUM_CLASSES if flags["class_cond"] else None,
        use_checkpoint=flags["use_checkpoint"],
        use_fp16=False,
        num_heads=flags["num_heads"],
        num_head_channels=flags["num_head_channels"],
        num_heads_upsample=flags["num_heads_upsample"],
        use_scale_shift_norm=flags["use_scale_shift_norm"],
        resblock_updown=flags["resblock_updown"],
        use_new_attention_order=flags["use_new_attention_order"],
    )


def build_model_and_diffusion(flags: dict, device: str = "cpu"):
    """(UNetModel in eval mode, GaussianDiffusion) for the given flags.

    fp16 is used only on CUDA (the flags' `use_fp16`); on CPU the model runs in fp32.
    """
    flags = full_flags(flags)
    model = build_unet(flags)
    if flags["use_fp16"] and device.startswith("cuda"):
        model.convert_to_fp16()
        model.dtype = torch.float16  # what forward() casts its input to
    diffusion = create_gaussian_diffusion(
        steps=flags["diffusion_steps"],
        learn_sigma=flags["learn_sigma"],
        noise_schedule=flags["noise_schedule"],
        use_kl=flags["use_kl"],
        predict_xstart=flags["predict_xstart"],
        rescale_timesteps=flags["rescale_timesteps"],
        rescale_learned_sigmas=flags["rescale_learned_sigmas"],
        timestep_respacing=flags["timestep_respacing"],
    )
    return model.to(device).eval(), diffusion


def _block_keys(state: dict, part: str) -> dict:
    """{block index: set of key suffixes} of `input_blocks` or `output_blocks`."""
    blocks = {}
    for key in state:
        match = re.match(rf"{part}\.(\d+)\.(.+)", key)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(match.group(2))
    return blocks


def infer_flags(state: dict, image_size: int) -> dict:
    """The architecture flags as the checkpoint's tensor shapes show them: num_channels,
    learn_sigma, class_cond, use_scale_shift_norm, num_res_blocks, resblock_updown,
    channel_mult and attention_resolutions. The others (num_heads, num_head_channels,
    use_new_attention_order, dropout, the diffusion's settings) leave no trace in shapes.

    state: a state_dict of a guided-diffusion UNetModel (see `load_state_dict`);
    image_size: the model's resolution, which shapes cannot show (attention_resolutions are
    computed from it). Raises ValueError when the state_dict is not an ADM UNet's.
    """
    required = ("time_embed.0.weight", "input_blocks.0.0.weight", "out.2.weight")
    missing = [k for k in required if k not in state]
    if missing:
        raise ValueError(f"not a guided-diffusion UNet state_dict: tensor {missing[0]!r} is missing")
    num_channels = int(state["time_embed.0.weight"].shape[1])
    if int(state["out.2.weight"].shape[0]) not in (3, 6):
        raise ValueError(f"tensor 'out.2.weight' has {state['out.2.weight'].shape[0]} output channels, not 3 or 6")
    outputs = _block_keys(state, "output_blocks")
    # The last block of every decoder level but the last ends with an upsampler: a ResBlock
    # (resblock_updown) or an Upsample conv, as module 1 (no attention) or 2.
    first_up = None
    for index in sorted(outputs):
        keys = outputs[index]
        if any(re.match(r"[12]\.(conv\.weight|in_layers\.)", k) for k in keys):
            first_up, up_keys = index, keys
            break
    if first_up is None:  # a single-level UNet: every decoder block is one level
        num_res_blocks, resblock_updown = len(outputs) - 1, False
    else:
        num_res_blocks = first_up
        resblock_updown = any(re.match(r"[12]\.in_layers\.", k) for k in up_keys)
    levels = len(outputs) // (num_res_blocks + 1)
    inputs = _block_keys(state, "input_blocks")
    mult, attention = [], []
    for level in range(levels):
        first = 1 + level * (num_res_blocks + 1)  # the level's first ResBlock
        channels = int(state[f"input_blocks.{first}.0.out_layers.3.weight"].shape[0])
        mult.append(channels / num_channels)
        if "1.qkv.weight" in inputs.get(first, ()):
            attention.append(image_size // 2**level)
    first_out = int(state["input_blocks.1.0.out_layers.3.weight"].shape[0])
    return {
        "num_channels": num_channels,
        "learn_sigma": int(state["out.2.weight"].shape[0]) == 6,
        "class_cond": "label_emb.weight" in state,
        "use_scale_shift_norm": int(state["input_blocks.1.0.emb_layers.1.weight"].shape[0]) == 2 * first_out,
        "num_res_blocks": num_res_blocks,
        "resblock_updown": resblock_updown,
        "channel_mult": format_channel_mult(mult),
        "attention_resolutions": ",".join(str(r) for r in attention),
    }


def resolve_flags(flags: dict, state: dict, source) -> tuple[dict, dict]:
    """`flags` completed by the shape flags of a checkpoint's state_dict.

    Returns (full flags, conflicts): the flags merged over the inferred ones and then over
    guided-diffusion's defaults (a given flag wins), and {flag: (given, inferred)} for every
    given shape flag that disagrees with the checkpoint. The flags that shapes cannot show
    (image_size, num_heads / num_head_channels, the diffusion's steps and schedule) come from
    `flags` or the defaults. `source` (the file) names the checkpoint in errors.
    """
    if "image_size" not in flags:
        raise ValueError(f"{source}: the model's image_size is not given; set it in the model flags "
                         "(tensor shapes cannot show it)")
    size = int(flags["image_size"])
    try:
        inferred = infer_flags(state, size)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{source}: cannot read the model flags from this checkpoint ({exc}); is it a "
                         "guided-diffusion UNet checkpoint?") from exc
    conflicts = {name: (flags[name], value) for name, value in inferred.items()
                 if name in flags and not same_flag(name, flags[name], inferred, size)}
    return full_flags({**inferred, **flags}), conflicts


def randomize_weights(model: torch.nn.Module, seed: int) -> None:
    """Gives every conv/linear/norm layer PyTorch's default random initialisation.

    guided-diffusion zero-initialises the last conv of every residual block and attention
    projection, which makes an untrained UNet a chain of identity blocks; this control
    ('UNet (untrained)') instead gets a genuinely random network of the same architecture.
    """
    torch.manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "reset_parameters") and module is not model:
            module.reset_parameters()


def load_model(checkpoint, flags: dict, device: str = "cpu"):
    """(model, diffusion, full flags) with the checkpoint's weights.

    `flags` need only hold what tensor shapes cannot show (at least image_size); the rest is
    read from the checkpoint (`resolve_flags`). When the given flags build a different
    architecture, ValueError names the first mismatching tensor, both shapes, and the flag
    that probably differs with the value the checkpoint implies.
    """
    state = load_state_dict(checkpoint)
    try:
        resolved, conflicts = resolve_flags(flags, state, checkpoint)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    with torch.device("meta"):
        expected = build_unet(resolved).state_dict()
    mismatch = first_shape_mismatch(expected, state)
    if mismatch:
        name, in_checkpoint, built = mismatch
        if conflicts:
            hint = "; ".join(f"flag {k} is probably wrong: the checkpoint's shapes say {v[1]!r}, the flags say {v[0]!r}"
                             for k, v in conflicts.items())
        else:
            hint = ("check the flags that shapes cannot show and the ones given: num_channels, channel_mult, "
                    "attention_resolutions (at this image_size), num_res_blocks, learn_sigma")
        raise CheckpointError(f"{checkpoint}: tensor {name!r} is {in_checkpoint or 'absent'} in the checkpoint, "
                         f"the flags build {built or 'no such tensor'}; {hint}.")
    model, diffusion = build_model_and_diffusion(resolved, device)
    model.load_state_dict(state)  # copies cast fp16 <-> fp32 as the model needs
    return model, diffusion, resolved


def save_model(model: torch.nn.Module, flags: dict, checkpoint, flags_path) -> None:
    """Writes the fp32 state_dict and the full flags (JSON)."""
    torch.save({k: v.detach().float().cpu() for k, v in model.state_dict().items()}, checkpoint)
    Path(flags_path).write_text(json.dumps(full_flags(flags), indent=2) + "\n")


def train_diffusion(
    images: np.ndarray,
    flags: dict,
    *,
    max_steps: int,
    max_minutes: float | None,
    batch_size: int,
    lr: float,
    ema_rate: float,
    seed: int,
    random_flip: bool,
    device: str = "cpu",
    log_every: int = 10,
    snapshot_steps=(),
    on_snapshot=None,
):
    """Trains an ADM UNet on unlabeled images with guided-diffusion's training loss.

    images: (N, S, S, 3) uint8, S == flags["image_size"]. Timesteps are drawn uniformly.
    `max_steps` optimiser steps define the training; `max_minutes` (None: no limit) is a guard
    that stops it early, an outcome the caller must show (`outcome["stopped_by"]`), since the
    weights then depend on the machine's speed.
    The EMA weights use the warm-up rate min(ema_rate, (1 + step) / (10 + step)), so short
    budgets still average over their last steps rather than the random initialisation.
    After each step in `snapshot_steps`, `on_snapshot(step, seconds, ema_model)` is called
    (the budget curve's snapshots of one run; nothing in the loop depends on max_steps, so the
    snapshot at step n is the model a run of n steps ends with).

    Returns (ema_model, loss_rows, outcome): loss_rows is a list of dicts {step, seconds, loss}
    every `log_every` steps (loss: mean training loss over those steps, per pixel and channel);
    outcome is {steps, max_steps, max_minutes, stopped_by: "max_steps" | "max_minutes",
    seconds, seed, torch_threads}.
    """
    flags = full_flags(flags)
    _check_training_images(images, flags["image_size"])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model, diffusion, ema, optimizer = _model_ema_and_optimizer(flags, lr, device)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S) uint8

    record = TrainingRecord("diffusion training", "train.lr", max_steps, max_minutes, log_every, seed, log)
    for step in range(1, max_steps + 1):
        x0, t = _training_batch(data, rng, batch_size, diffusion.num_timesteps, random_flip, device)
        loss = diffusion.training_losses(model, x0, t)["loss"].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _update_ema(ema, model, ema_rate, step)
        stop = record.step(step, loss.item())
        if step in snapshot_steps:
            on_snapshot(step, round(time.monotonic() - record.start, 2), ema)
        if stop:
            break
    return ema, record.rows, record.outcome()


def _check_training_images(images: np.ndarray, size: int) -> None:
    """Raises ValueError unless images are (N, size, size, 3)."""
    if images.shape[1:] != (size, size, 3):
        raise ValueError(f"images have shape {images.shape[1:]}, the model wants ({size}, {size}, 3)")


def _model_ema_and_optimizer(flags: dict, lr: float, device: str):
    """(model, diffusion, ema, optimizer): the fp32 UNet of the full `flags` (drawn from torch's
    global generator) in train mode on `device`, its GaussianDiffusion, a copy of it as the EMA
    model (eval mode, no gradients) and AdamW(lr, no weight decay) over the model's parameters."""
    model, diffusion = build_model_and_diffusion({**flags, "use_fp16": False}, device)
    model.train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    return model, diffusion, ema, optimizer


def _training_batch(data: torch.Tensor, rng, batch_size: int, num_timesteps: int, random_flip: bool, device: str):
    """(x0, t): batch_size images drawn by `rng` with replacement from data (N, 3, S, S) uint8, as
    (B, 3, S, S) float32 in [-1, 1] on `device`, each mirrored left-right with probability 1/2
    when `random_flip`; and their timesteps (B,) int64, uniform in [0, num_timesteps). The draws
    from `rng`: the images, then the flips, then the timesteps."""
    index = torch.from_numpy(rng.integers(0, len(data), batch_size))
    x0 = data[index].to(device=device, dtype=torch.float32) / 127.5 - 1.0
    if random_flip:
        flip = torch.from_numpy(rng.random(batch_size) < 0.5).to(device)
        x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
    t = torch.from_numpy(rng.integers(0, num_timesteps, batch_size)).to(device)
    return x0, t


@torch.no_grad()
def _update_ema(ema: torch.nn.Module, model: torch.nn.Module, ema_rate: float, step: int) -> None:
    """Moves the EMA weights towards the model's after optimiser step `step` (1-based), at the
    warm-up rate min(ema_rate, (1 + step) / (10 + step))."""
    rate = min(ema_rate, (1 + step) / (10 + step))
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1.0 - rate)
