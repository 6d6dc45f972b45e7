"""The diffusion model: build an ADM UNet from flags, load a checkpoint, train one.

Models come from OpenAI's guided-diffusion code (`guided_diffusion`, shipped on PyPI as
`guided-diffusion-sdk`). A model travels with its flags: a flat dict of the keys of
`guided_diffusion.script_util.model_and_diffusion_defaults()`, saved as JSON beside the
state_dict.
"""

import copy
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from guided_diffusion.script_util import create_model_and_diffusion, model_and_diffusion_defaults

log = logging.getLogger(__name__)


def full_flags(flags: dict) -> dict:
    """guided-diffusion's defaults overridden by `flags`; unknown keys raise ValueError."""
    merged = model_and_diffusion_defaults()
    unknown = sorted(set(flags) - set(merged))
    if unknown:
        raise ValueError(
            f"unknown model flags {unknown}; valid flags are {sorted(merged)}"
        )
    merged.update(flags)
    return merged


def build_model_and_diffusion(flags: dict, device: str = "cpu"):
    """(UNetModel in eval mode, GaussianDiffusion) for the given flags.

    fp16 is used only on CUDA (the flags' `use_fp16`); on CPU the model runs in fp32.
    """
    flags = full_flags(flags)
    use_fp16 = bool(flags["use_fp16"]) and device.startswith("cuda")
    model, diffusion = create_model_and_diffusion(**{**flags, "use_fp16": use_fp16})
    if use_fp16:
        model.convert_to_fp16()
    return model.to(device).eval(), diffusion


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


def load_state_dict(path) -> dict:
    """A checkpoint's tensors as a plain state_dict (fp16 or fp32; a `module.` prefix removed)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: checkpoint not found. Put the guided-diffusion .pt file there or fix "
            "`diffusion.checkpoint` in the config."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_model(checkpoint, flags: dict, device: str = "cpu"):
    """(model, diffusion) with the checkpoint's weights; a shape mismatch names the tensor."""
    model, diffusion = build_model_and_diffusion(flags, device)
    state = load_state_dict(checkpoint)
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise ValueError(f"{checkpoint}: tensor {name!r} missing; do the model flags match the checkpoint?")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{checkpoint}: tensor {name!r} has shape {tuple(state[name].shape)}, the flags "
                f"build {tuple(tensor.shape)}; check num_channels, channel_mult, "
                "attention_resolutions, num_res_blocks and learn_sigma."
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise ValueError(f"{checkpoint}: unexpected tensor {extra[0]!r}; do the model flags match?")
    model.load_state_dict(state)
    return model, diffusion


def save_model(model: torch.nn.Module, flags: dict, checkpoint, flags_path) -> None:
    """Writes the fp32 state_dict and the full flags (JSON)."""
    torch.save({k: v.detach().float().cpu() for k, v in model.state_dict().items()}, checkpoint)
    Path(flags_path).write_text(json.dumps(full_flags(flags), indent=2) + "\n")


def train_diffusion(
    images: np.ndarray,
    flags: dict,
    *,
    max_steps: int,
    max_minutes: float,
    batch_size: int,
    lr: float,
    ema_rate: float,
    seed: int,
    random_flip: bool,
    device: str = "cpu",
    log_every: int = 10,
):
    """Trains an ADM UNet on unlabeled images with guided-diffusion's training loss.

    images: (N, S, S, 3) uint8, S == flags["image_size"]. Timesteps are drawn uniformly.
    Stops after `max_steps` optimiser steps or `max_minutes` of wall time, whichever is first.
    The EMA weights use the warm-up rate min(ema_rate, (1 + step) / (10 + step)), so short
    budgets still average over their last steps rather than the random initialisation.

    Returns (ema_model, loss_rows): loss_rows is a list of dicts {step, seconds, loss} every
    `log_every` steps (loss: mean training loss over those steps, per pixel and channel).
    """
    flags = full_flags(flags)
    size = flags["image_size"]
    if images.shape[1:] != (size, size, 3):
        raise ValueError(f"images have shape {images.shape[1:]}, the model wants ({size}, {size}, 3)")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model, diffusion = build_model_and_diffusion({**flags, "use_fp16": False}, device)
    model.train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S) uint8

    rows, window = [], []
    start = time.monotonic()
    for step in range(1, max_steps + 1):
        index = torch.from_numpy(rng.integers(0, len(data), batch_size))
        x0 = data[index].to(device=device, dtype=torch.float32) / 127.5 - 1.0
        if random_flip:
            flip = torch.from_numpy(rng.random(batch_size) < 0.5).to(device)
            x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
        t = torch.from_numpy(rng.integers(0, diffusion.num_timesteps, batch_size)).to(device)
        loss = diffusion.training_losses(model, x0, t)["loss"].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        rate = min(ema_rate, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), model.parameters()):
                p_ema.lerp_(p, 1.0 - rate)
        window.append(loss.item())
        elapsed = time.monotonic() - start
        out_of_time = elapsed > 60.0 * max_minutes
        if step % log_every == 0 or step == max_steps or out_of_time:
            mean_loss = float(np.mean(window))
            rows.append(dict(step=step, seconds=round(elapsed, 2), loss=mean_loss))
            log.info("step %d  %.1f s  loss %.4f", step, elapsed, mean_loss)
            window = []
        if out_of_time:
            log.info("time budget of %.1f min reached after %d steps", max_minutes, step)
            break
    if not math.isfinite(rows[-1]["loss"]):
        raise RuntimeError("diffusion training diverged (loss is not finite); lower `lr`")
    return ema, rows
