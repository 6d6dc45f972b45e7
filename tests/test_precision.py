"""bfloat16 on CPUs: what each setting resolves to, and that bf16 extraction and ensembles stay
close to float32 while really running in bf16."""

import numpy as np
import pytest
import torch

from conftest import adm_stores
from ddpmseg import precision
from ddpmseg.ensemble import train_ensemble
from ddpmseg.mlp import BatchedMLPEnsemble, load_ensemble
from ddpmseg.stores import open_store


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_only_on_cpus_with_native_bf16_and_never_on_a_gpu(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert precision.resolve("auto", "cpu") == ("bf16" if native else "float32")
    assert precision.resolve("bf16", "cpu") == "bf16" and precision.resolve("float32", "cpu") == "float32"
    assert precision.resolve("auto", "cuda") == "float32" and precision.resolve("bf16", "cuda:0") == "float32"
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        precision.resolve("fp8", "cpu")


def test_bf16_extraction_is_close_to_float32_and_recorded(tiny_model, creatures32, tmp_path):
    model, diffusion = tiny_model
    images = creatures32[0][:3]
    stores = {}
    for name in ("float32", "bf16"):
        [path] = adm_stores(model, diffusion, images, tmp_path / name, blocks=[2], timesteps=[20], precision=name)
        stores[name] = open_store(path)
    exact, low = (stores[n][:].astype(np.float32) for n in ("float32", "bf16"))
    assert stores["bf16"].attrs["precision"] == "bf16" and stores["float32"].attrs["precision"] == "float32"
    relative = np.abs(low - exact).max() / np.abs(exact).max()
    assert 0 < relative < 0.05  # bf16 has 8 bits of mantissa: a few percent through the UNet, not zero


def test_bf16_ensemble_trains_and_predicts_close_to_float32(creatures32, tmp_path):
    generator = torch.Generator().manual_seed(0)
    model = BatchedMLPEnsemble(n_members=2, in_features=40, num_classes=5, seed=0).eval()
    x = torch.randn(2, 300, 40, generator=generator)
    exact = model(x)
    model.matmul_dtype = torch.bfloat16
    low = model(x)
    assert 0 < (low - exact).abs().max() < 0.02 * exact.abs().max()
    # training in bf16 from real features: the loss falls, the saved weights are float32 and
    # load in either precision
    images, labels = creatures32
    from conftest import control_store

    store = control_store(images[:6], "patch", tmp_path)
    settings = dict(n_members=2, batch_size=64, lr=1e-3, max_epochs=2, early_stop_epoch=1, patience=50,
                    min_class_pixels=20, buffer_mb=0.1, cache_mb=0.01)
    (trained,), history = train_ensemble([store], labels[:6], 7, 255, seeds=[0], precision="bf16", **settings)
    assert trained.matmul_dtype == torch.bfloat16 and trained.weight0.dtype == torch.float32
    assert history[-1]["mean_loss"] < history[0]["mean_loss"]
    torch.save(trained.state_dict(), tmp_path / "ensemble.pt")
    assert load_ensemble(tmp_path / "ensemble.pt", "bf16").matmul_dtype == torch.bfloat16
    assert load_ensemble(tmp_path / "ensemble.pt").matmul_dtype == torch.float32
