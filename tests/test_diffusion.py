import json

import numpy as np
import pytest
import torch

from ddpmseg.adm_flags import decoder_blocks, full_flags
from ddpmseg.diffusion import (
    build_model_and_diffusion, build_unet, infer_flags, load_model, save_model, train_diffusion,
)
from ddpmseg.errors import CheckpointError
from conftest import adm_stores
from ddpmseg.backbones import adm
from ddpmseg.backbones.adm import decoder_activations
from ddpmseg.stores import open_store

from conftest import TINY_FLAGS


def test_training_lowers_the_loss_and_saves_a_loadable_checkpoint(creatures32, tmp_path):
    images, _ = creatures32
    ema, rows, outcome = train_diffusion(
        images, TINY_FLAGS, max_steps=24, max_minutes=None, batch_size=4, lr=1e-3, ema_rate=0.999, seed=0,
        random_flip=True, log_every=6,
    )
    assert [r["step"] for r in rows] == [6, 12, 18, 24]
    assert (outcome["steps"], outcome["stopped_by"], outcome["torch_threads"]) == (24, "max_steps", torch.get_num_threads())
    assert rows[-1]["loss"] < 0.7 * rows[0]["loss"]
    save_model(ema, TINY_FLAGS, tmp_path / "model.pt", tmp_path / "flags.json")
    flags = json.loads((tmp_path / "flags.json").read_text())
    assert flags == full_flags(TINY_FLAGS)
    model, _, _ = load_model(tmp_path / "model.pt", flags)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, ema.state_dict()[name])


def test_a_stop_by_the_time_budget_is_an_outcome_not_a_silent_shorter_run(creatures32, caplog):
    _, rows, outcome = train_diffusion(
        creatures32[0], TINY_FLAGS, max_steps=50, max_minutes=1e-9, batch_size=2, lr=1e-3, ema_rate=0.999, seed=0,
        random_flip=False, log_every=10,
    )
    assert (outcome["steps"], outcome["max_steps"], outcome["stopped_by"]) == (1, 50, "max_minutes")
    assert rows[-1]["step"] == 1
    assert "STOPPED BY THE TIME BUDGET" in caplog.text and "1 of 50 steps" in caplog.text


def test_checkpoint_variants_fp16_and_module_prefix(tmp_path):
    model, _ = build_model_and_diffusion(TINY_FLAGS)
    state = {f"module.{k}": v.half() for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "ddp_fp16.pt")
    loaded, _, _ = load_model(tmp_path / "ddp_fp16.pt", TINY_FLAGS)
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([10])
    expected = decoder_activations(model, x, t, [3])[3]
    torch.testing.assert_close(decoder_activations(loaded, x, t, [3])[3], expected, atol=0.05, rtol=0.05)


def test_mismatched_flags_name_the_tensor_and_the_flag(tmp_path):
    model, _ = build_model_and_diffusion(TINY_FLAGS)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"m\.pt: tensor 'time_embed\.0\.weight' is \(128, 32\) in the checkpoint, "
                                         r"the flags build \(256, 64\); flag num_channels is probably wrong: "
                                         r"the checkpoint's shapes say 32, the flags say 64"):
        load_model(tmp_path / "m.pt", {**TINY_FLAGS, "num_channels": 64})
    with pytest.raises(ValueError, match=r"flag learn_sigma is probably wrong: the checkpoint's shapes say False"):
        load_model(tmp_path / "m.pt", {**TINY_FLAGS, "learn_sigma": True})
    with pytest.raises(ValueError, match=r"flag attention_resolutions is probably wrong: the checkpoint's shapes say '16'"):
        load_model(tmp_path / "m.pt", {**TINY_FLAGS, "attention_resolutions": "8"})
    with pytest.raises(CheckpointError, match="missing.pt: checkpoint not found"):
        load_model(tmp_path / "missing.pt", TINY_FLAGS)
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt: cannot read the model flags .* is it a guided-diffusion UNet"):
        load_model(tmp_path / "other.pt", TINY_FLAGS)
    with pytest.raises(ValueError, match="unknown model flag 'num_chanels'"):
        full_flags({"num_chanels": 3})


@pytest.mark.parametrize("content", ["garbage", "truncated", "object"])
def test_a_file_that_is_no_checkpoint_of_tensors_is_named_with_its_sha256_advice(tmp_path, content):
    path = tmp_path / "model.pt"
    if content == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif content == "truncated":
        torch.save(build_unet(TINY_FLAGS).state_dict(), path)
        path.write_bytes(path.read_bytes()[:5000])
    else:
        torch.save({"weight": torch.zeros(2), "epoch": 3}, path)
    with pytest.raises(CheckpointError) as raised:
        load_model(path, TINY_FLAGS)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and f"sha256sum {path}" in message
    assert "do not load it with weights_only=False" in message and "\n" not in message


ARCHITECTURES = [  # (flags beside image_size, image_size): guided-diffusion's sizes, 32, and odd ones
    ({}, 32), ({}, 64), ({}, 128), ({"num_channels": 64}, 512),  # GroupNorm needs >= 32 channels
    ({"channel_mult": "1,2,3", "attention_resolutions": "12"}, 48),
    ({"channel_mult": "1,2,2,4,4", "num_res_blocks": 3, "resblock_updown": False, "learn_sigma": False,
      "use_scale_shift_norm": False, "attention_resolutions": "16"}, 96),
    ({"channel_mult": "1", "attention_resolutions": "", "class_cond": True, "resblock_updown": False}, 32),  # one level: no up/down blocks
]


@pytest.mark.parametrize("extra,size", ARCHITECTURES)
def test_flags_are_inferred_from_checkpoint_shapes_at_any_size(tmp_path, extra, size):
    """From a checkpoint and its image_size alone, the architecture is rebuilt exactly (the
    512x512 model's fractional channel_mult included) and loads with its weights."""
    flags = {"image_size": size, "num_channels": 32, "num_res_blocks": 2, "learn_sigma": True,
             "resblock_updown": True, "attention_resolutions": "32,16,8", "num_head_channels": 8, **extra}
    torch.manual_seed(0)
    model = build_unet(flags)
    torch.save({k: v.half() for k, v in model.state_dict().items()}, tmp_path / "m.pt")
    inferred = infer_flags(model.state_dict(), size)
    for name in ("num_res_blocks", "learn_sigma", "resblock_updown", "class_cond"):
        assert inferred[name] == full_flags(flags)[name]
    loaded, _, resolved = load_model(tmp_path / "m.pt", {"image_size": size, "num_head_channels": 8})
    assert {k: v.shape for k, v in loaded.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert resolved["num_channels"] == flags["num_channels"]
    x, t = torch.randn(1, 3, size, size), torch.tensor([100])
    torch.testing.assert_close(decoder_activations(loaded, x, t, [1])[1], decoder_activations(model, x, t, [1])[1],
                               atol=0.02, rtol=0.02)  # weights stored as fp16


def test_sizes_without_a_default_channel_mult_ask_for_one():
    with pytest.raises(ValueError, match='image_size 48 has no default channel_mult .* set the flag channel_mult'):
        build_unet({"image_size": 48})
    with pytest.raises(ValueError, match="outside the supported 32..512"):
        build_unet({"image_size": 1024})


PAPER_FLAGS = {  # the paper's 256x256 ADM (paper-reference.md); fp32 here, the checkpoints are fp16
    "attention_resolutions": "32,16,8", "class_cond": False, "diffusion_steps": 1000, "dropout": 0.1,
    "image_size": 256, "learn_sigma": True, "noise_schedule": "linear", "num_channels": 256,
    "num_head_channels": 64, "num_res_blocks": 2, "resblock_updown": True, "use_fp16": False,
    "use_scale_shift_norm": True,
}
PAPER_DECODER = [(1024, 8)] * 2 + [(1024, 16)] * 3 + [(1024, 32)] + [(512, 32)] * 2 + [(512, 64)] * 3 \
    + [(512, 128)] + [(256, 128)] * 2 + [(256, 256)] * 4  # (channels, resolution) of output_blocks 0-17


def test_full_size_adm_256_has_the_papers_decoder():
    """The real architecture at full width (552.8M parameters). The probe pass runs on a 64x64
    input, a quarter of the size: every resolution is then a quarter of the table's."""
    model, _ = build_model_and_diffusion(PAPER_FLAGS)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(552.8e6, rel=1e-3)
    x, t = torch.zeros(1, 3, 64, 64), torch.zeros(1, dtype=torch.long)
    shapes = {b: tuple(a.shape[1:]) for b, a in decoder_activations(model, x, t, range(18)).items()}
    assert [(c, 4 * h) for c, h, w in shapes.values()] == PAPER_DECODER
    assert all(h == w for _, h, w in shapes.values())
    assert list(adm.layer_table({"flags": PAPER_FLAGS}, 256).values()) == PAPER_DECODER  # from the flags alone
    assert decoder_blocks(PAPER_FLAGS) == PAPER_DECODER
    assert sum(shapes[b][0] for b in (5, 6, 7, 8, 12)) * 3 == 8448  # the paper's features per pixel


@pytest.mark.parametrize("prefix", ["", "module."])
def test_official_layout_fp16_checkpoint_gives_the_papers_feature_shapes(tmp_path, prefix):
    """A checkpoint in the official format (the paper's architecture at 1/8 width, fp16
    tensors, with or without DataParallel's prefix) loads through the same path as the real
    ones, and extraction at 256x256 gives the paper's blocks {5,6,7,8,12} at their resolutions."""
    flags = {**PAPER_FLAGS, "num_channels": 32}
    model, _ = build_model_and_diffusion(flags)
    torch.save({prefix + k: v.half() for k, v in model.state_dict().items()}, tmp_path / "official.pt")
    loaded, diffusion, _ = load_model(tmp_path / "official.pt", flags)
    images = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    paths = adm_stores(loaded, diffusion, images, tmp_path / "features", blocks=[5, 6, 7, 8, 12], timesteps=[50],
                       flags=flags, batch_images=2)
    shapes = {p.name: open_store(str(p)).shape for p in paths}
    assert shapes == {  # the table's channels / 8 (num_channels 32 instead of 256), same resolutions
        "features_b5_t50.zarr": (2, 128, 32, 32), "features_b6_t50.zarr": (2, 64, 32, 32),
        "features_b7_t50.zarr": (2, 64, 32, 32), "features_b8_t50.zarr": (2, 64, 64, 64),
        "features_b12_t50.zarr": (2, 32, 128, 128),
    }
