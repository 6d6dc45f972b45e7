import json

import pytest
import torch

from ddpmseg.diffusion import build_model_and_diffusion, full_flags, load_model, save_model, train_diffusion
from ddpmseg.features import decoder_activations

from conftest import TINY_FLAGS


def test_training_lowers_the_loss_and_saves_a_loadable_checkpoint(creatures32, tmp_path):
    images, _ = creatures32
    ema, rows = train_diffusion(
        images, TINY_FLAGS, max_steps=24, max_minutes=30, batch_size=4, lr=1e-3, ema_rate=0.999, seed=0,
        random_flip=True, log_every=6,
    )
    assert [r["step"] for r in rows] == [6, 12, 18, 24]
    assert rows[-1]["loss"] < 0.7 * rows[0]["loss"]
    save_model(ema, TINY_FLAGS, tmp_path / "model.pt", tmp_path / "flags.json")
    flags = json.loads((tmp_path / "flags.json").read_text())
    assert flags == full_flags(TINY_FLAGS)
    model, _ = load_model(tmp_path / "model.pt", flags)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, ema.state_dict()[name])


def test_checkpoint_variants_fp16_and_module_prefix(tmp_path):
    model, _ = build_model_and_diffusion(TINY_FLAGS)
    state = {f"module.{k}": v.half() for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "ddp_fp16.pt")
    loaded, _ = load_model(tmp_path / "ddp_fp16.pt", TINY_FLAGS)
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([10])
    expected = decoder_activations(model, x, t, [3])[3]
    torch.testing.assert_close(decoder_activations(loaded, x, t, [3])[3], expected, atol=0.05, rtol=0.05)


def test_mismatched_flags_name_the_tensor(tmp_path):
    model, _ = build_model_and_diffusion(TINY_FLAGS)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"m\.pt: tensor '[\w.]+' has shape .* check num_channels"):
        load_model(tmp_path / "m.pt", {**TINY_FLAGS, "num_channels": 64})
    with pytest.raises(FileNotFoundError, match="missing.pt: checkpoint not found"):
        load_model(tmp_path / "missing.pt", TINY_FLAGS)
    with pytest.raises(ValueError, match="unknown model flags"):
        full_flags({"num_chanels": 3})
