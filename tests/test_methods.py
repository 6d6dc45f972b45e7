"""Methods resolved from the config: sources, settings, layer tables, and the config errors."""

import copy
import subprocess
import sys

import pytest
import yaml

from ddpmseg import backbones
from ddpmseg.methods import ConfigProblem, plans, validate_source_schemas, with_defaults

DATASET = {"image_size": 48, "diffusion": {"flags": {"image_size": 48, "num_channels": 32, "num_res_blocks": 1,
                                                     "channel_mult": "1,2,3"}, "checkpoint": None, "seeds": [0, 1]},
           "features": {"blocks": [0, 1, 2, 3], "timesteps": [50, 150]}}


def config(methods, dataset_methods=None):
    """A validated-looking config of one dataset 'd' (the 48x48 UNet of the default)."""
    return {"methods": methods, "datasets": {"d": {**copy.deepcopy(DATASET), "methods": dataset_methods or {}}}}


def test_every_source_schema_is_valid_and_its_defaults_pass():
    validate_source_schemas()


def test_default_methods_keep_todays_rows_layers_and_cells():
    with open("config.yaml") as f:
        default = yaml.safe_load(f)
    plan = plans(config(default["methods"]))["d"]
    assert list(plan) == ["ddpm", "unet_untrained", "pixels", "patch"]
    assert [p.name for p in plan.values()] == ["DDPM", "UNet (untrained)", "Pixels (RGB+xy)", "Patch (5x5 RGB+xy)"]
    assert plan["ddpm"].layers == ["b0", "b1", "b2", "b3"] and plan["ddpm"].timesteps == [50, 150]
    assert plan["ddpm"].table["b0"] == [96, 12] and plan["ddpm"].model_seeds == [0, 1]
    assert plan["unet_untrained"].settings["weights"] == "random"
    assert plan["patch"].layers == ["patch"] and plan["patch"].timesteps is None


def test_list_form_mapping_form_and_dataset_overrides():
    assert list(plans(config(["swav", "ddpm", "mae"]))["d"]) == ["ddpm", "mae", "swav"]  # the built-ins' order
    plan = plans(config({"ddpm": {}, "patch": None, "mae": {"train": {"max_steps": 7}},
                         "big": {"source": "swav", "name": "SwAV-w2", "arch": {"block": "bottleneck", "width": 128,
                                                                                "blocks": [3, 4, 6, 3]}}},
                        {"mae": {"checkpoint": "x.pth", "layers": ["block4"]}}))["d"]
    assert list(plan) == ["ddpm", "mae", "big"]  # built-ins first, then the others in config order
    mae = plan["mae"]
    assert mae.settings["train"]["max_steps"] == 7 and mae.settings["train"]["batch_size"] == 32  # defaults
    assert mae.checkpoint == "x.pth" and not mae.pretrain and mae.layers == ["block4"]
    assert mae.table["block4"] == [192, 12]  # patch 4 at 48
    big = plan["big"]
    assert big.name == "SwAV-w2" and big.pretrain
    assert sum(big.table[layer][0] for layer in big.layers) == 13440


@pytest.mark.parametrize("methods, dataset_methods, message", [
    ({"x": {"source": "vit"}}, {}, "methods.x.source: unknown feature source 'vit'; known: adm, diffusers_unet, stable_diffusion, mae, swav"),
    ({"x": {}}, {}, "methods.x: give its feature source"),
    (["ddpm", "dino"], {}, "methods: 'dino' is not a built-in method"),
    ({"mae": {"timesteps": [50]}}, {}, "methods.mae.timesteps: source 'mae' takes no diffusion timesteps"),
    ({"mae": {"arch": {"embed_dims": 8}}}, {}, "methods.mae.arch: unknown key 'embed_dims' (did you mean 'embed_dim'?)"),
    ({"swav": {}}, {"swav": {"layers": ["layer9.0"]}}, "method swav: layer 'layer9.0' does not exist; swav has layer1.0"),
    ({"ddpm": {"layers": ["b7"]}}, {}, "method ddpm: layer 'b7' does not exist"),
    ({"mae": {}}, {"mae": {"train": {"lr": -1}}}, "datasets.d.methods.mae.train.lr: -1 is less than or equal to"),
    ({"ddpm_m2": {"source": "adm"}}, {}, "methods.ddpm_m2: a method key is lower-case letters"),
    ({"ddpm": None}, {}, "every method is switched off"),
])
def test_config_errors_name_the_key(methods, dataset_methods, message):
    with pytest.raises(ConfigProblem) as error:
        plans(config(methods, dataset_methods))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_with_defaults_fills_nested_objects_without_touching_the_given():
    schema = backbones.source("swav").SETTINGS
    given = {"arch": {"width": 16}}
    filled = with_defaults(schema, given)
    assert filled["arch"] == {"width": 16, "block": "basic", "blocks": [1, 1, 1, 1]} and given == {"arch": {"width": 16}}
    assert filled["train"]["prototypes"] == 256


def test_planning_imports_no_torch():
    code = ("import sys, yaml\nfrom ddpmseg.methods import plans\n"
            f"plans({config(['ddpm', 'mae', 'swav', 'pixels', 'patch'])!r})\n"
            "print(sorted(m for m in ('torch', 'timm', 'lightly', 'guided_diffusion') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
