"""The Stable Diffusion feature source, on a small randomly initialised pipeline built from config
dicts and saved as a local diffusers folder (nothing is downloaded)."""

import json

import numpy as np
import pytest
import torch

from ddpmseg import backbones
from ddpmseg.errors import CheckpointError
from ddpmseg.methods import BUILTIN, ConfigProblem, plan, with_defaults

source = backbones.source("stable_diffusion")
SIZE = 16  # the VAE below halves it: 8x8 latents


def settings(folder, **given):
    return with_defaults(source.SETTINGS, {"checkpoint": str(folder), "timesteps": [10, 261], **given})


def test_layer_table_at_the_latent_resolution_agrees_with_the_activations(sd_pipeline):
    table = source.layer_table(settings(sd_pipeline), SIZE)
    assert table == {"up0_res0": (16, 4), "up0_res1": (16, 4), "up0": (16, 8), "up1_res0": (8, 8), "up1_attn0": (8, 8),
                     "up1_res1": (8, 8), "up1_attn1": (8, 8), "up1": (8, 8)}
    model = source.build(settings(sd_pipeline), SIZE, str(sd_pipeline), "cpu", seed=0)
    assert source.noise_shape(model, SIZE) == (4, 8, 8) and model.prompt_embedding.shape == (1, 8, 16)
    assert isinstance(model, torch.nn.Module) and {name for name, _ in model.named_children()} == {"unet", "vae"}
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    noise = torch.randn(1, 4, 8, 8)
    maps = source.activations(model, x, list(table), [10, 261], noise)
    assert {layer: (m.shape[1], m.shape[2]) for (layer, t), m in maps.items() if t == 10} == table
    # early exit: a shallow layer alone is the same tensor, and the output layer never runs
    calls = []
    late = model.unet.conv_out.register_forward_hook(lambda m, i, o: calls.append(1))
    assert torch.equal(source.activations(model, x, ["up0"], [10, 261], noise)["up0", 261], maps["up0", 261])
    late.remove()
    assert calls == []
    # the same maps as the UNet run by hand on the VAE's scaled latent mean, noised with add_noise
    latent = model.vae.encode(x[1:]).latent_dist.mean * model.vae.config.scaling_factor
    abar = model.scheduler.alphas_cumprod[261]
    z_t = abar.sqrt() * latent + (1 - abar).sqrt() * noise
    seen = {}
    hook = model.unet.up_blocks[1].attentions[1].register_forward_hook(lambda m, i, o: seen.setdefault("a", o[0]))
    with torch.no_grad():
        model.unet(z_t, torch.tensor([261]), encoder_hidden_states=model.prompt_embedding)
    hook.remove()
    torch.testing.assert_close(seen["a"], maps["up1_attn1", 261][1:], atol=1e-5, rtol=1e-5)


def test_prompt_conditions_the_attention_maps_and_draws_are_averaged(sd_pipeline):
    x = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    empty = source.build(settings(sd_pipeline), SIZE, str(sd_pipeline), "cpu", 0)
    bedroom = source.build(settings(sd_pipeline, prompt="a photo of a bedroom"), SIZE, str(sd_pipeline), "cpu", 0)
    noise = torch.randn(1, 4, 8, 8)
    a = source.activations(empty, x, ["up1_attn0"], [10], noise)["up1_attn0", 10]
    b = source.activations(bedroom, x, ["up1_attn0"], [10], noise)["up1_attn0", 10]
    assert not torch.allclose(a, b)
    three = source.build(settings(sd_pipeline, noise_draws=3), SIZE, str(sd_pipeline), "cpu", 0)
    draws = torch.randn(1, 12, 8, 8)
    assert source.noise_shape(three, SIZE) == (12, 8, 8)
    mean = source.activations(three, x, ["up1"], [10, 261], draws)
    single = [source.activations(empty, x, ["up1"], [10, 261], d) for d in draws.chunk(3, dim=1)]
    torch.testing.assert_close(mean["up1", 261], sum(s["up1", 261] for s in single) / 3)
    random = source.build(settings(sd_pipeline, weights="random"), SIZE, str(sd_pipeline), "cpu", 1)
    assert not torch.equal(random.unet.conv_in.weight, empty.unet.conv_in.weight)
    assert torch.equal(random.vae.encoder.conv_in.weight, empty.vae.encoder.conv_in.weight)  # the VAE is kept


def test_extraction_stores_latent_maps_described_by_the_source(sd_pipeline, tmp_path):
    from ddpmseg.features import extract_features
    from ddpmseg.stores import open_store

    given = settings(sd_pipeline, noise_draws=2)
    model = source.build(given, SIZE, str(sd_pipeline), "cpu", 0)
    images = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    paths = extract_features("stable_diffusion", model, images, ["a", "b", "c"], ["up1"], [10], source.layer_table(
        given, SIZE), tmp_path, {"settings": given}, batch_images=2, noise_mode="per_image")
    store = open_store(paths[0])
    assert store.shape == (3, 8, 8, 8) and store.attrs["source"] == "stable_diffusion"
    assert store.attrs["settings"]["noise_draws"] == 2 and store.attrs["resolution"] == 8 and store.attrs["image_size"] == SIZE
    one_by_one = extract_features("stable_diffusion", model, images, ["a", "b", "c"], ["up1"], [10], source.layer_table(
        given, SIZE), tmp_path / "one_by_one", {}, batch_images=1, noise_mode="per_image")
    np.testing.assert_allclose(open_store(one_by_one[0])[:], store[:], atol=2e-3)  # each image's noise, any batching


def test_missing_or_wrong_folders_fail_with_one_line(sd_pipeline, tmp_path):
    dataset = {"image_size": SIZE, "diffusion": {}, "features": {"timesteps": [10]}}
    with pytest.raises(ConfigProblem, match=r"^config: datasets.d method sd: stable_diffusion needs `checkpoint`"):
        plan("sd", {"source": "stable_diffusion"}, "d", dataset)
    with pytest.raises(ConfigProblem, match="absent: Stable Diffusion folder not found"):
        plan("sd", {"source": "stable_diffusion", "checkpoint": str(tmp_path / "absent")}, "d", dataset)
    (tmp_path / "partial" / "unet").mkdir(parents=True)
    with pytest.raises(CheckpointError, match=r"partial: lacks vae/, text_encoder/, tokenizer/, scheduler/"):
        source.layer_table(settings(tmp_path / "partial"), SIZE)
    import shutil

    wrong = tmp_path / "wrong"
    shutil.copytree(sd_pipeline, wrong)
    (wrong / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(CheckpointError, match=r"wrong/unet: holds a 'UNet2DModel', not a UNet2DConditionModel"):
        source.layer_table(settings(wrong), SIZE)
    with pytest.raises(ConfigProblem, match="not divisible by the VAE's factor 2"):
        plan("sd", {"source": "stable_diffusion", "checkpoint": str(sd_pipeline)}, "d", {**dataset, "image_size": 15})


def test_dift_preset_and_dataset_timesteps(sd_pipeline):
    dataset = {"image_size": SIZE, "diffusion": {}, "features": {"timesteps": [10, 50]}}
    dift = plan("dift", {**BUILTIN["dift"], "checkpoint": str(sd_pipeline)}, "d", dataset)
    assert (dift.name, dift.layers, dift.timesteps, dift.settings["noise_draws"]) == ("DIFT (SD)", ["up1"], [261], 8)
    plain = plan("sd", {"source": "stable_diffusion", "checkpoint": str(sd_pipeline)}, "d", dataset)
    assert (plain.layers, plain.timesteps, plain.pretrain) == (["up0"], [10, 50], False)  # 2 up blocks: up0


def test_import_needs_no_torch():
    import subprocess
    import sys

    code = ("import sys; import ddpmseg.backbones.stable_diffusion; "
            "print(any(m in sys.modules for m in ('torch', 'diffusers', 'transformers')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
