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


def adm_stores(model, diffusion, images, out_dir, blocks, timesteps, flags=TINY_FLAGS, **options):
    """The ADM source's stores of `blocks` (ints) at `timesteps` for a (model, diffusion) pair
    (`features.extract_features`); returns their paths, block-major. `options`: noise_seed,
    noise_device, batch_images."""
    from ddpmseg.backbones import adm
    from ddpmseg.features import extract_features

    table = adm.layer_table({"flags": flags}, images.shape[1])
    return extract_features("adm", adm.Adm(model, diffusion, flags), images, list(range(len(images))),
                            [adm.layer_name(b) for b in blocks], timesteps, table, out_dir, {}, **options)


def control_store(images, kind, out_dir):
    """The store of control `kind` ('pixels' or 'patch') of `images`, written under out_dir."""
    from ddpmseg import backbones
    from ddpmseg.features import extract_features, open_store

    table = backbones.source(kind).layer_table({}, images.shape[1])
    [path] = extract_features(kind, None, images, list(range(len(images))), [kind], None, table, out_dir, {})
    return open_store(path)
