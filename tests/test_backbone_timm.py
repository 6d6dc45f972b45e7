"""The timm source: a ViT with registers (DINOv2's) and a ConvNeXt with random weights; stores
equal to timm's own forward_intermediates, early exit equal to the full forward, local weights
files, and the config errors at parse time."""

import copy

import numpy as np
import pytest
import torch

from ddpmseg import methods
from ddpmseg.backbones import timm_model
from ddpmseg.errors import CheckpointError
from ddpmseg.features import extract_features
from ddpmseg.methods import ConfigProblem, plans
from ddpmseg.stores import open_store

VIT = "vit_small_patch14_reg4_dinov2.lvd142m"  # 4 register tokens and a class token before the patches
CONVNEXT = "convnext_atto.d2_in1k"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def settings(model: str, input_size: int, layers=None) -> dict:
    completed = methods.with_defaults(timm_model.SETTINGS, {"model": model, "pretrained": False,
                                                            "input_size": input_size, "layers": layers})
    return timm_model.complete_settings(completed, {})


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)


def model_input(images: np.ndarray, model) -> torch.Tensor:
    """What the source feeds the model: the images resized to its input size, normalised by its config."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=(model.ddpmseg_input_size,) * 2, mode="bilinear",
                                        align_corners=False, antialias=False)
    mean, std = torch.tensor(model.ddpmseg_mean).view(1, 3, 1, 1), torch.tensor(model.ddpmseg_std).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.mark.parametrize("name, size, layers, expected", [
    (VIT, 56, [2, -1], {"blocks.2": (384, 4), "blocks.11": (384, 4)}),
    (CONVNEXT, 64, ["stages.1", -1], {"stages.1": (80, 8), "stages.3": (320, 2)}),
])
def test_stores_equal_timms_own_forward_intermediates(tmp_path, images, name, size, layers, expected):
    method = settings(name, size, layers)
    assert method["layers"] == list(expected) and method["input_size"] == size
    table = timm_model.layer_table(method, 32)
    assert {layer: table[layer] for layer in expected} == expected
    model = timm_model.build(method, 32, None, "cpu", seed=3)
    paths = extract_features("timm", model, images, ["a", "b", "c"], method["layers"], None, table, tmp_path,
                             {"method": "test"}, batch_images=3)  # the reference's batch: the same kernels
    names = [info["module"] for info in model.feature_info]
    with torch.no_grad():
        reference = model.forward_intermediates(model_input(images, model), indices=[names.index(layer) for layer in
                                                expected], intermediates_only=True)
    for path, layer, fmap in zip(paths, expected, reference):
        store = open_store(path)
        assert store.shape == (3, *expected[layer][:1], *expected[layer][1:] * 2)
        assert store.attrs["normalisation"] == "[0, 1]" and store.attrs["layer"] == layer
        # the same numbers up to float16 rounding: a CPU's kernels may round a float32 sum
        # differently between the two calls (one float16 step on 24 of 18432 values, seen on one
        # machine), so nearly all values are equal and the rest within 1.5 steps (rtol 2e-3)
        stored, expected_map = store[:], fmap.numpy()
        assert (stored == expected_map.astype(np.float16)).mean() > 0.99
        np.testing.assert_allclose(stored.astype(np.float32), expected_map, rtol=2e-3, atol=1e-6)


def test_early_exit_equals_hooks_on_a_full_forward(images):
    """A ViT's block outputs (class and 4 register tokens dropped, patches on their grid) and a
    ConvNeXt's stage outputs, hooked while the whole model runs, equal the source's maps, which
    stop after the deepest requested layer."""
    for name, size, layer, prefix in [(VIT, 42, "blocks.5", 5), (CONVNEXT, 64, "stages.2", None)]:
        method = settings(name, size, [layer])
        model = timm_model.build(method, 32, None, "cpu", seed=0)
        hooked = {}
        module = model.get_submodule(layer)
        handle = module.register_forward_hook(lambda _m, _i, output: hooked.setdefault("out", output))
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            model(model_input(images, model))
        handle.remove()
        out = hooked["out"]
        if prefix is not None:  # (B, 5 + L, D) tokens -> (B, D, h, h) patches
            grid = size // 14
            out = out[:, prefix:].transpose(1, 2).reshape(len(images), -1, grid, grid)
        maps = timm_model.activations(model, x, [layer])
        torch.testing.assert_close(maps[layer, None], out, rtol=1e-5, atol=1e-5)


def test_a_local_weights_file_round_trips(tmp_path, images):
    method = settings(CONVNEXT, 64, [-1])
    saved = timm_model.build(method, 32, None, "cpu", seed=7)
    for suffix in (".pth", ".safetensors"):
        path = tmp_path / f"weights{suffix}"
        if suffix == ".pth":
            torch.save(saved.state_dict(), path)
        else:
            from safetensors.torch import save_file

            save_file(saved.state_dict(), path)
        loaded = timm_model.build(method, 32, path, "cpu", seed=0)
        assert all(torch.equal(a, b) for a, b in zip(saved.state_dict().values(), loaded.state_dict().values()))
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        torch.testing.assert_close(timm_model.activations(loaded, x, ["stages.3"]),
                                   timm_model.activations(saved, x, ["stages.3"]), rtol=0, atol=0)
    other = tmp_path / "other.pth"
    torch.save(timm_model.build(settings(VIT, 28), 32, None, "cpu", seed=0).state_dict(), other)
    with pytest.raises(CheckpointError, match=f"{other}: not a weights file of {CONVNEXT}"):
        timm_model.build(method, 32, other, "cpu", seed=0)


DATASET = {"image_size": 32, "diffusion": {"flags": {"image_size": 32}, "checkpoint": None, "seeds": [0]},
           "features": {"blocks": [0], "timesteps": [50]}}


def config(method: dict) -> dict:
    return {"methods": {"dino": {"source": "timm", "pretrained": False, **method}},
            "datasets": {"d": copy.deepcopy(DATASET)}}


def test_a_timm_method_is_one_config_line_planned_with_its_table():
    plan = plans(config({"model": VIT, "input_size": 56}))["d"]["dino"]
    assert plan.layers == ["blocks.8", "blocks.9", "blocks.10", "blocks.11"]  # the last 4
    assert plan.table["blocks.11"] == [384, 4] and plan.settings["input_size"] == 56
    assert plans(config({"model": VIT}))["d"]["dino"].settings["input_size"] == 518  # its pretrained config's


@pytest.mark.parametrize("method, message", [
    ({"model": "vit_smal_patch14_reg4_dinov2"}, "method dino: model: timm has no model 'vit_smal_patch14_reg4_dinov2'; "
                                               "did you mean vit_small_patch14_reg4_dinov2"),
    ({"model": "resnet18.no_such_tag"}, "method dino: model: resnet18 has no pretrained tag 'no_such_tag'; it has "
                                        "resnet18.a1_in1k"),
    ({"model": CONVNEXT, "layers": [4]}, "method dino: layers: index 4 is out of range: convnext_atto.d2_in1k has "
                                         "4 layers"),
    ({"model": CONVNEXT, "layers": ["blocks.0"]}, "method dino: layer 'blocks.0' does not exist; timm has stages.0"),
])
def test_config_errors_name_the_key_at_parse_time(method, message):
    with pytest.raises(ConfigProblem, match=message.replace(".", r"\.").replace("(", r"\(")):
        plans(config(method))
