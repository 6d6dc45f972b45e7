"""The SwAV feature source: layer tables of the paper's RN50 / RN50w2, official checkpoint
loading, early exit, checkpoint errors and the workflow's own SwAV pretraining."""

import logging
import math
import pathlib
import subprocess
import sys

import jsonschema
import numpy as np
import pytest
import torch

from ddpmseg import methods
from ddpmseg.backbones import swav
from ddpmseg.errors import CheckpointError

RN50 = {"block": "bottleneck", "blocks": [3, 4, 6, 3], "width": 64}
RN50W2 = {**RN50, "width": 128}
# The paper's RN50 layers at 256x256 (its FeatureExtractorSwAV: inputs of layer[::2]).
RN50_DEFAULT_TABLE = {
    "layer1.0": (64, 64), "layer1.2": (256, 64), "layer2.0": (256, 64), "layer2.2": (512, 32),
    "layer3.0": (512, 32), "layer3.2": (1024, 16), "layer3.4": (1024, 16), "layer4.0": (1024, 16),
    "layer4.2": (2048, 8),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def settings(arch=None, **train) -> dict:
    """The schema's defaults, with another arch and train values."""
    return methods.with_defaults(swav.SETTINGS, {"arch": arch or {}, "train": train})


def save_official(model, path) -> None:
    """`model`'s weights in SwAV's DataParallel layout, with a projection head and prototypes."""
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    state["module.projection_head.0.weight"] = torch.zeros(2048, 4)
    state["module.prototypes.weight"] = torch.zeros(3000, 128)
    torch.save({"epoch": 800, "state_dict": state}, path)


def n_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def default_table(arch: dict, size: int) -> dict:
    table = swav.layer_table(settings(arch), size)
    return {layer: table[layer] for layer in swav.default_layers(settings(arch), size)}


def test_defaults_follow_the_schema():
    def check(schema, where):
        for key, sub in schema["properties"].items():
            assert "default" in sub and sub.get("description"), f"{where}.{key}"
            if sub.get("type") == "object":
                assert sub["additionalProperties"] is False
                assert sub["default"] == {}, f"{where}.{key}: its keys carry the defaults"
                check(sub, f"{where}.{key}")

    assert swav.SETTINGS["additionalProperties"] is False
    check(swav.SETTINGS, "swav")
    jsonschema.Draft202012Validator.check_schema(swav.SETTINGS)
    validator = jsonschema.Draft202012Validator(swav.SETTINGS)
    validator.validate(settings())
    validator.validate(settings(RN50, max_minutes=5.0))
    for bad in ({**settings(), "arch": {"width": 64, "depth": 3}}, {**settings(), "layers": []},
                settings({"blocks": [3, 4, 6]}), settings({"block": "wide"})):
        assert not validator.is_valid(bad)


def test_layer_table_of_the_papers_resnets():
    table = swav.layer_table(settings(RN50), 256)
    assert list(table) == [f"layer{i}.{j}" for i, n in enumerate([3, 4, 6, 3], start=1) for j in range(n)]
    assert default_table(RN50, 256) == RN50_DEFAULT_TABLE
    assert sum(c for c, _ in RN50_DEFAULT_TABLE.values()) == 6720
    assert default_table(RN50W2, 256) == {k: (2 * c, r) for k, (c, r) in RN50_DEFAULT_TABLE.items()}
    assert sum(c for c, _ in default_table(RN50W2, 256).values()) == 13440
    # Odd sides round up at every stride-2 step: 100 -> 50 -> 25 (stem), 13, 7, 4.
    basic = swav.layer_table(settings({"block": "basic", "blocks": [1, 2, 1, 1], "width": 8}), 100)
    assert basic == {"layer1.0": (8, 25), "layer2.0": (8, 25), "layer2.1": (16, 13), "layer3.0": (16, 13),
                     "layer4.0": (32, 7)}
    assert swav.default_layers(settings({"blocks": [1, 2, 3, 5]}), 64) == [
        "layer1.0", "layer2.0", "layer3.0", "layer3.2", "layer4.0", "layer4.2", "layer4.4"]


@pytest.fixture(scope="module")
def rn50(tmp_path_factory):
    """A random RN50 (seed 3) saved in the official layout and loaded back."""
    path = tmp_path_factory.mktemp("swav") / "rn50.pth"
    save_official(swav.build(settings(RN50), 256, None, "cpu", seed=3), path)
    return swav.build(settings(RN50), 256, path, "cpu", seed=0)


def test_rn50_loads_official_layout_and_gives_the_papers_maps(rn50):
    model = rn50
    assert not model.training
    assert 23.4e6 < n_parameters(model) < 23.6e6
    random_same_seed = swav.build(settings(RN50), 256, None, "cpu", seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), random_same_seed.state_dict().values()))
    x = torch.randn(1, 3, 256, 256)
    maps = swav.activations(model, x, list(RN50_DEFAULT_TABLE))
    assert list(maps) == [(layer, None) for layer in RN50_DEFAULT_TABLE]
    for (layer, _), act in maps.items():
        channels, resolution = RN50_DEFAULT_TABLE[layer]
        assert act.shape == (1, channels, resolution, resolution) and act.dtype == torch.float32
    assert sum(act.shape[1] for act in maps.values()) == 6720


def test_rn50w2_loads_official_layout_and_gives_the_papers_maps(tmp_path):
    random = swav.build(settings(RN50W2), 256, None, "cpu", seed=1)
    assert 93.8e6 < n_parameters(random) < 94.0e6  # 4x RN50's 23.5M: every width doubled
    assert random.conv1.weight.shape == (128, 3, 7, 7) and random.layer4[2].bn3.num_features == 4096
    save_official(random, tmp_path / "rn50w2.pth")
    model = swav.build(settings(RN50W2), 256, tmp_path / "rn50w2.pth", "cpu", seed=0)
    assert torch.equal(model.layer4[2].conv3.weight, random.layer4[2].conv3.weight)
    del random
    maps = swav.activations(model, torch.randn(1, 3, 256, 256), swav.default_layers(settings(RN50W2), 256))
    table = default_table(RN50W2, 256)
    assert {layer: (a.shape[1], a.shape[2]) for (layer, _), a in maps.items()} == table
    assert sum(a.shape[1] for a in maps.values()) == 13440


def test_torchvision_resnet50_weights_give_the_papers_hooked_inputs(tmp_path):
    """The paper's extractor: torchvision's resnet50, fc = Identity, pre-hooks on layer[::2]."""
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet50().eval()
    reference.fc = torch.nn.Identity()
    save_official(reference, tmp_path / "torchvision.pth")
    model = swav.build(settings(RN50), 64, tmp_path / "torchvision.pth", "cpu", seed=0)
    hooked = {}

    def save_input(name):
        return lambda block, args: hooked.update({name: args[0]})

    for i in range(1, 5):
        for j, block in enumerate(getattr(reference, f"layer{i}")[::2]):
            block.register_forward_pre_hook(save_input(f"layer{i}.{2 * j}"))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pooled = reference(x)
        assert torch.allclose(model(x), pooled, atol=1e-5)
    maps = swav.activations(model, x, swav.default_layers(settings(RN50), 64))
    assert list(hooked) == [layer for layer, _ in maps]
    for (layer, _), act in maps.items():
        assert torch.allclose(act, hooked[layer], atol=1e-5), layer


def test_early_exit_equals_hooks_on_a_full_forward(rn50):
    model = rn50
    x = torch.randn(2, 3, 256, 256)
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    names = {block: f"layer{i}.{j}" for i, stage in enumerate(stages, start=1) for j, block in enumerate(stage)}

    def forward_with_hook(hook, run):
        handles = [block.register_forward_pre_hook(hook) for block in names]
        try:
            return run()
        finally:
            for handle in handles:
                handle.remove()

    recorded, ran = {}, []
    with torch.no_grad():  # clones: a later in-place change of a block input would show as a difference
        forward_with_hook(lambda block, args: recorded.setdefault(names[block], args[0].clone()), lambda: model(x))
    subset = ["layer3.0", "layer1.2"]
    maps = forward_with_hook(lambda block, args: ran.append(names[block]), lambda: swav.activations(model, x, subset))
    assert set(maps) == {(layer, None) for layer in subset}
    for layer in subset:
        assert torch.equal(maps[layer, None], recorded[layer]), layer
    assert ran == ["layer1.0", "layer1.1", "layer1.2", "layer2.0", "layer2.1", "layer2.2", "layer2.3"]
    with pytest.raises(ValueError, match="layer5.0"):
        swav.activations(model, x, ["layer5.0"])


@pytest.mark.parametrize("saved, built, message", [
    ({"width": 16}, {"width": 32}, "tensor 'conv1.weight' is (16, 3, 7, 7) in the checkpoint, the settings build "
                                   "(32, 3, 7, 7); check arch.width (the checkpoint's says 16)"),
    ({"block": "bottleneck"}, {}, "tensor 'layer1.0.conv1.weight' is (32, 32, 1, 1) in the checkpoint, the settings "
                                  "build (32, 32, 3, 3); check arch.block (the checkpoint's says 'bottleneck')"),
    ({}, {"blocks": [2, 1, 1, 1]}, "tensor 'layer1.1.conv1.weight' is absent in the checkpoint, the settings build "
                                   "(32, 32, 3, 3); check arch.blocks (the checkpoint's says [1, 1, 1, 1])"),
])
def test_checkpoint_of_another_architecture_names_file_tensor_and_setting(tmp_path, saved, built, message):
    path = tmp_path / "other.pth"
    save_official(swav.build(settings(saved), 64, None, "cpu", seed=0), path)
    with pytest.raises(CheckpointError) as error:
        swav.build(settings(built), 64, path, "cpu", seed=0)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


def test_garbage_or_missing_checkpoint_fails_with_checkpoint_error(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="garbage.pth"):
        swav.build(settings(), 64, garbage, "cpu", seed=0)
    with pytest.raises(CheckpointError, match="not found"):
        swav.build(settings(), 64, tmp_path / "absent.pth", "cpu", seed=0)
    no_resnet = tmp_path / "no_resnet.pth"
    torch.save({"state_dict": {"module.encoder.weight": torch.zeros(3)}}, no_resnet)
    with pytest.raises(CheckpointError, match="tensor 'conv1.weight' is absent in the checkpoint.*holds no ResNet"):
        swav.build(settings(), 64, no_resnet, "cpu", seed=0)


@pytest.fixture(scope="module")
def unlabeled():
    return np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)


def test_pretrain_is_reproducible_and_gives_a_loadable_official_checkpoint(tmp_path, unlabeled):
    tiny = settings(max_steps=5, batch_size=8, log_every=2, freeze_prototypes_steps=2, seed=4)
    checkpoint, rows, outcome = swav.pretrain(tiny, unlabeled, "cpu")
    again, rows_again, _ = swav.pretrain(tiny, unlabeled, "cpu")

    state = checkpoint["state_dict"]
    assert list(checkpoint) == ["state_dict"] and all(k.startswith("module.") for k in state)
    assert "module.conv1.weight" in state and "module.layer4.0.bn2.running_var" in state
    assert any(k.startswith("module.projection_head.") for k in state)
    assert any(k.startswith("module.prototypes.") for k in state)
    assert list(state) == list(again["state_dict"])
    assert all(torch.equal(state[k], again["state_dict"][k]) for k in state)
    assert [(r["step"], r["loss"]) for r in rows] == [(r["step"], r["loss"]) for r in rows_again]
    assert [r["step"] for r in rows] == [2, 4, 5] and all(np.isfinite(r["loss"]) and r["seconds"] >= 0 for r in rows)
    assert outcome.pop("uniform_assignment_loss") == pytest.approx(math.log(tiny["train"]["prototypes"]))
    assert outcome == dict(steps=5, max_steps=5, max_minutes=None, stopped_by="max_steps",
                           seconds=outcome["seconds"], seed=4, torch_threads=1)

    torch.save(checkpoint, tmp_path / "pretrained.pth")
    model = swav.build(tiny, 32, tmp_path / "pretrained.pth", "cpu", seed=0)
    untrained = swav.build(tiny, 32, None, "cpu", seed=4)  # the same initial weights
    assert torch.equal(model.conv1.weight, state["module.conv1.weight"])
    assert not torch.equal(model.conv1.weight, untrained.conv1.weight)
    maps = swav.activations(model, torch.randn(1, 3, 32, 32), swav.default_layers(tiny, 32))
    assert {layer: tuple(a.shape[1:3]) for (layer, _), a in maps.items()} == swav.layer_table(tiny, 32)


def test_pretrain_stops_at_max_minutes(unlabeled, caplog):
    tiny = settings(max_steps=50, max_minutes=1e-9, batch_size=4, local_crops=0)
    with caplog.at_level(logging.WARNING, logger="ddpmseg.backbones.swav"):
        checkpoint, rows, outcome = swav.pretrain(tiny, unlabeled, "cpu")
    assert outcome["steps"] == 1 and outcome["stopped_by"] == "max_minutes" and outcome["max_minutes"] == 1e-9
    assert [r["step"] for r in rows] == [1]
    assert "STOPPED BY THE TIME BUDGET" in caplog.text
    assert "module.layer4.0.conv2.weight" in checkpoint["state_dict"]


FASSEG_POOL = pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fasseg_face6" / "unlabeled"


@pytest.mark.skipif(not FASSEG_POOL.is_dir(), reason="shared fasseg_face6 dataset not available")
def test_queue_keeps_swav_from_collapsing_to_uniform_assignment():
    """Without the queue, 16 images a step give codes too even for 256 prototypes: the model
    predicts every prototype alike and the loss settles at ln(256), step after step. With the queue
    (512 past embeddings in the codes' batch) the codes stay uneven and the loss keeps moving off
    ln(K) from batch to batch. (Whether it also ends below ln(K) within 200 steps depends on the
    CPU's float rounding: on one machine it did, on another it hovered at ln(K) + 0.003 on
    average.) Every 6th FASSEG pool face at 32x32, the default ResNet; losses are 10-step means,
    read after step 100."""
    from PIL import Image

    files = sorted(FASSEG_POOL.iterdir())[::6]
    faces = np.stack([np.asarray(Image.open(f).convert("RGB").resize((32, 32), Image.BICUBIC)) for f in files])
    ln_k = math.log(swav.SETTINGS["properties"]["train"]["properties"]["prototypes"]["default"])
    late_losses = {}
    for queue_length in (512, 0):
        run = settings(max_steps=200, batch_size=16, local_crops=2, log_every=10, queue_length=queue_length)
        late_losses[queue_length] = np.array([row["loss"] for row in swav.pretrain(run, faces, "cpu")[1]
                                              if row["step"] > 100])
    assert len(late_losses[0]) == len(late_losses[512]) == 10
    assert np.abs(late_losses[0] - ln_k).max() < 0.01  # pinned at uniform assignment
    assert np.ptp(late_losses[512]) > 0.05 and np.abs(late_losses[512] - ln_k).max() > 0.05


def test_import_needs_no_torch():
    code = ("import sys, ddpmseg.backbones.swav as s\n"
            "from ddpmseg.methods import with_defaults\n"
            "defaults = with_defaults(s.SETTINGS, {})\n"
            "assert s.default_layers(defaults, 256) == list(s.layer_table(defaults, 256))\n"
            "print(sorted(m for m in ('torch', 'timm', 'lightly') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
