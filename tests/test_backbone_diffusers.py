"""The diffusers UNet2DModel feature source, on small randomly initialised models built from config
dicts and saved as local diffusers folders (nothing is downloaded)."""

import json

import numpy as np
import pytest
import torch

from ddpmseg import backbones
from ddpmseg.errors import CheckpointError
from ddpmseg.methods import ConfigProblem, plan, with_defaults

source = backbones.source("diffusers_unet")
SIZE = 16
ARCH = {"block_out_channels": [8, 16, 16], "layers_per_block": 1, "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"], "attention_head_dim": 4, "norm_num_groups": 4}


def settings(**given):
    return with_defaults(source.SETTINGS, {"arch": ARCH, "timesteps": [5, 40], **given})


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory):
    """A pipeline folder as the DDPM checkpoints ship it: model_index.json, unet/, scheduler/."""
    from diffusers import DDPMScheduler, UNet2DModel

    folder = tmp_path_factory.mktemp("ddpm-pipeline")
    torch.manual_seed(3)
    UNet2DModel(sample_size=SIZE, **ARCH).save_pretrained(folder / "unet")
    DDPMScheduler(num_train_timesteps=100).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline", "unet": ["diffusers", "UNet2DModel"],
                                                         "scheduler": ["diffusers", "DDPMScheduler"]}))
    return folder


def test_layer_table_agrees_with_the_activations_and_early_exit_with_a_full_forward(pipeline_folder):
    given = settings(checkpoint=str(pipeline_folder))
    table = source.layer_table(given, SIZE)
    assert list(table)[:4] == ["up0_res0", "up0_res1", "up0", "up1_res0"] and "up1_attn1" in table
    model = source.build(given, SIZE, str(pipeline_folder), "cpu", seed=0)
    assert (model.unet.config.sample_size, model.scheduler.config.num_train_timesteps) == (SIZE, 100)
    assert isinstance(model, torch.nn.Module) and not model.training and list(model.state_dict())[0].startswith("unet.")
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    noise = torch.randn(1, 3, SIZE, SIZE)
    maps = source.activations(model, x, list(table), [5, 40], noise)
    assert {layer: (m.shape[1], m.shape[2]) for (layer, t), m in maps.items() if t == 5} == table
    assert all(m.shape[0] == 2 and m.dtype == torch.float32 for m in maps.values())
    # early exit: a shallow layer alone is the same tensor as in the full run, and the full forward
    # of plain hooks (no stop) gives the same maps
    calls = []
    late = model.unet.conv_out.register_forward_hook(lambda m, i, o: calls.append(1))
    assert torch.equal(source.activations(model, x, ["up0_res1"], [5, 40], noise)["up0_res1", 40], maps["up0_res1", 40])
    late.remove()
    assert calls == []  # the forward pass stopped before the output layer
    seen = {}
    handles = [model.unet.up_blocks[1].attentions[0].register_forward_hook(lambda m, i, o: seen.setdefault("a", o))]
    t = torch.tensor([5, 40, 5, 40])
    x_t = model.scheduler.add_noise(x.repeat_interleave(2, dim=0), noise.expand(4, -1, -1, -1), t)
    with torch.no_grad():
        model.unet(x_t, t)
    handles[0].remove()
    assert torch.equal(seen["a"].reshape(2, 2, *seen["a"].shape[1:])[:, 1], maps["up1_attn0", 40])
    # add_noise is sqrt(abar) x0 + sqrt(1 - abar) eps of the folder's schedule
    abar = model.scheduler.alphas_cumprod[40]
    assert torch.allclose(x_t[1], abar.sqrt() * x[0] + (1 - abar).sqrt() * noise[0], atol=1e-6)


def test_model_folder_and_pipeline_folder_give_the_same_model(pipeline_folder, tmp_path):
    from diffusers import DDPMScheduler, UNet2DModel

    model_folder = tmp_path / "model"
    UNet2DModel.from_pretrained(pipeline_folder / "unet").save_pretrained(model_folder)
    DDPMScheduler.from_pretrained(pipeline_folder / "scheduler").save_config(model_folder)
    a = source.build(settings(), SIZE, str(pipeline_folder), "cpu", 0)
    b = source.build(settings(), SIZE, str(model_folder), "cpu", 0)
    for (name, p), q in zip(a.unet.state_dict().items(), b.unet.state_dict().values()):
        assert torch.equal(p, q), name
    random = source.build(settings(weights="random"), SIZE, str(pipeline_folder), "cpu", 0)
    assert not torch.equal(random.unet.conv_in.weight, a.unet.conv_in.weight)
    assert source.layer_table(settings(checkpoint=str(model_folder)), SIZE) == source.layer_table(settings(), SIZE)


def test_missing_or_wrong_folder_fails_with_one_line_naming_it(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*nothing is downloaded"):
        source.layer_table(settings(checkpoint=str(tmp_path / "absent")), SIZE)
    conditional = tmp_path / "sd" / "unet"
    conditional.mkdir(parents=True)
    (conditional / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    with pytest.raises(CheckpointError, match=r"sd/unet: holds a 'UNet2DConditionModel', not a UNet2DModel") as error:
        source.layer_table(settings(checkpoint=str(tmp_path / "sd")), SIZE)
    assert "\n" not in str(error.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        source.layer_table(settings(checkpoint=str(empty)), SIZE)
    dataset = {"image_size": SIZE, "diffusion": {}, "features": {"timesteps": [10]}}
    with pytest.raises(ConfigProblem, match=r"^config: datasets.d method hf: .*absent: diffusers folder not found"):
        plan("hf", {"source": "diffusers_unet", "checkpoint": str(tmp_path / "absent")}, "d", dataset)


def test_plan_takes_the_datasets_timesteps_and_pretrains_only_trained_weights():
    dataset = {"image_size": SIZE, "diffusion": {}, "features": {"timesteps": [10, 50]}}
    trained = plan("hf", {"source": "diffusers_unet", "arch": ARCH}, "d", dataset)
    assert (trained.timesteps, trained.layers, trained.pretrain) == ([10, 50], ["up1"], True)
    assert trained.table["up1"] == [16, 16]
    control = plan("hf_random", {"source": "diffusers_unet", "arch": ARCH, "weights": "random"}, "d", dataset)
    assert control.pretrain is False


def test_the_folders_schedule_bounds_the_timesteps(pipeline_folder):
    """A folder's scheduler config, not the `scheduler` setting, gives the schedule's length:
    t 99 exists in the 100-step folder, t 100 stops the plan with one line."""
    assert source.schedule_length(settings()) == 1000  # the workflow's own model: `scheduler`
    assert source.schedule_length(settings(checkpoint=str(pipeline_folder), scheduler={"num_train_timesteps": 500})) == 100
    dataset = {"image_size": SIZE, "diffusion": {}, "features": {"timesteps": [10]}}
    assert plan("hf", {"source": "diffusers_unet", "checkpoint": str(pipeline_folder), "timesteps": [99]}, "d",
                dataset).timesteps == [99]
    with pytest.raises(ConfigProblem, match=r"^config: datasets.d method hf: timestep 100 does not exist: its noise "
                                            r"schedule has 100 steps \(t in 0..99\)$"):
        plan("hf", {"source": "diffusers_unet", "checkpoint": str(pipeline_folder), "timesteps": [5, 100]}, "d", dataset)


def test_pretrain_is_deterministic_and_build_reads_its_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8)
    given = settings(train={"max_steps": 3, "batch_size": 2, "log_every": 1}, scheduler={"num_train_timesteps": 50})
    first, rows, outcome = source.pretrain(given, images, "cpu")
    second, _, _ = source.pretrain(given, images, "cpu")
    assert all(torch.equal(first["model"][k], second["model"][k]) for k in first["model"])
    assert [r["step"] for r in rows] == [1, 2, 3] and outcome["stopped_by"] == "max_steps"
    fresh = source.build(settings(weights="random"), SIZE, None, "cpu", seed=given["train"]["seed"])
    assert not torch.equal(fresh.unet.conv_in.weight, first["model"]["conv_in.weight"])  # it trained (EMA moved)
    torch.save(first, tmp_path / "model.pt")
    model = source.build(given, SIZE, str(tmp_path / "model.pt"), "cpu", seed=0)
    assert torch.equal(model.unet.conv_in.weight, first["model"]["conv_in.weight"])
    assert model.scheduler.config.num_train_timesteps == 50
    other = settings(arch={**ARCH, "block_out_channels": [8, 16, 32]})
    with pytest.raises(CheckpointError, match=r"model.pt: tensor .* check methods.<method>.arch"):
        source.build(other, SIZE, str(tmp_path / "model.pt"), "cpu", seed=0)


def test_import_needs_no_torch():
    import subprocess
    import sys

    code = "import sys; import ddpmseg.backbones.diffusers_unet; print('torch' in sys.modules or 'diffusers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_a_folder_checkpoint_has_one_sha256_of_its_files(pipeline_folder, tmp_path):
    import shutil

    from ddpmseg.download import sha256_of

    copy = tmp_path / "copy"
    shutil.copytree(pipeline_folder, copy)
    assert sha256_of(copy) == sha256_of(pipeline_folder) and len(sha256_of(copy)) == 64
    (copy / "scheduler" / "scheduler_config.json").write_text("{}")
    assert sha256_of(copy) != sha256_of(pipeline_folder)
