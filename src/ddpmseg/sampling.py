"""Images sampled from a diffusion model (the paper's `generate_dataset.py`, first half).

Sampling runs guided-diffusion's ancestral sampler (`p_sample_loop`) over the model's steps,
or over fewer, respaced ones: `timestep_respacing` "100" keeps 100 evenly spaced steps, "ddim50"
runs DDIM (eta 0) on 50 (the paper: all 1000 ancestral steps). A batch is seeded by (seed, batch
index) alone, so every batch is its own reproducible, cacheable unit and a run can stop and go on.
"""

import numpy as np
import torch

from ddpmseg.diffusion import load_model


def batch_seed(seed: int, batch: int) -> int:
    """The torch seed of one batch: independent streams for every (seed, batch)."""
    return int(np.random.SeedSequence([seed, batch]).generate_state(1)[0])


@torch.no_grad()
def sample_batch(checkpoint, flags: dict, n_images: int, seed: int, batch: int, timestep_respacing: str = "",
                 device: str = "cpu") -> np.ndarray:
    """n_images samples of the model at `checkpoint` (flags as `diffusion.load_model` takes them)
    -> (n_images, S, S, 3) uint8, x in [-1, 1] mapped to round((x + 1) * 127.5)."""
    model, diffusion, flags = load_model(checkpoint, {**flags, "timestep_respacing": timestep_respacing}, device)
    size = int(flags["image_size"])
    torch.manual_seed(batch_seed(seed, batch))  # the samplers draw from torch's global generator
    loop = diffusion.ddim_sample_loop if timestep_respacing.startswith("ddim") else diffusion.p_sample_loop
    x = loop(model, (n_images, 3, size, size), clip_denoised=True, device=device, progress=False)
    pixels = ((x.float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().numpy()
