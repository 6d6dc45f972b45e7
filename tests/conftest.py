"""Shared fixtures: small real data from the embedded generator, and a tiny ADM UNet."""

import numpy as np
import pytest

from ddpmseg.synthetic import render_sample

TINY_FLAGS = dict(
    image_size=32,
    num_channels=32,
    num_res_blocks=1,
    channel_mult="1,2",
    attention_resolutions="16",
    num_heads=2,
    learn_sigma=False,
    diffusion_steps=100,
)


@pytest.fixture(scope="session")
def creatures32():
    """12 rendered creatures at 32x32: images (12, 32, 32, 3) uint8, labels (12, 32, 32) uint8."""
    rng = np.random.default_rng(123)
    samples = [render_sample(rng, 32) for _ in range(12)]
    return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


@pytest.fixture(scope="session")
def tiny_model():
    """(model, diffusion) of a tiny random ADM UNet (4 decoder blocks), fp32 on CPU."""
    import torch

    from ddpmseg.diffusion import build_model_and_diffusion, randomize_weights

    model, diffusion = build_model_and_diffusion(TINY_FLAGS)
    randomize_weights(model, seed=0)
    torch.manual_seed(0)
    return model, diffusion
