"""Every registered feature source keeps the contract, and what lists the sources follows the registry."""

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from ddpmseg import backbones
from ddpmseg.backbones.contract import OPTIONAL, FeatureSource
from ddpmseg.model_input import NORMALISATIONS
from ddpmseg.plan import Plan

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(backbones.SOURCES))
def test_every_source_keeps_the_contract(name):
    source = backbones.source(name)
    assert isinstance(source, FeatureSource), [m for m in FeatureSource.__protocol_attrs__ if not hasattr(source, m)]
    assert all(isinstance(getattr(source, flag), bool) for flag in (
        "TAKES_TIMESTEPS", "PRETRAINED_BY_WORKFLOW", "DIFFUSION_STAGE", "HAS_MODEL_SEEDS", "RUNS_A_MODEL"))
    assert source.NORMALISATION in NORMALISATIONS and source.NAME and source.BUILT_FROM and source.FIGURE_AXES
    assert hasattr(source, "schedule_length") == source.TAKES_TIMESTEPS
    assert hasattr(source, "pretrain") == source.PRETRAINED_BY_WORKFLOW
    assert not source.HAS_MODEL_SEEDS or source.DIFFUSION_STAGE  # model seeds are the diffusion stage's
    public = {m for m in vars(source) if not m.startswith("_") and callable(getattr(source, m))}
    assert set(OPTIONAL) - public == {m for m in OPTIONAL if not hasattr(source, m)}


def test_no_source_is_asked_for_by_name_outside_its_own_module():
    pattern = re.compile(r"""[!=]=\\s*["'](%s)["']""" % "|".join(backbones.SOURCES))
    files = [p for folder in ("src", "rules", "workflow_scripts") for p in (REPO / folder).rglob("*")
             if p.suffix in (".py", ".smk") and "backbones" not in p.parts]
    found = [f"{p.relative_to(REPO)}:{n}" for p in files + [REPO / "Snakefile"]
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_the_readme_source_table_lists_the_registry_in_order():
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Methods", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", section, re.M)
    assert rows == list(backbones.SOURCES)


TOY_SOURCE = '''
"""A throwaway source for the test: each pixel's grey level at two scales."""
from ddpmseg.backbones.defaults import (  # noqa: F401
    DIFFUSION_STAGE, FIGURE_AXES, HAS_MODEL_SEEDS, complete_settings, model_origin, model_settings, sweep_layers,
)

NAME = "Toy"
TAKES_TIMESTEPS = False
NORMALISATION = "[-1, 1]"
BUILT_FROM = "no model"
PRETRAINED_BY_WORKFLOW = False
RUNS_A_MODEL = False
SETTINGS = {"type": "object", "additionalProperties": False,
            "properties": {"layers": {"anyOf": [{"type": "null"}, {"type": "array"}], "default": None}}}


def layer_table(settings, image_size):
    return {"full": (1, image_size), "half": (1, image_size // 2)}


def default_layers(settings, image_size):
    return ["full", "half"]


def build(settings, image_size, checkpoint, device, seed):
    return None


def activations(model, x, layers, timesteps=None, noise=None):
    import torch.nn.functional as F

    grey = x.mean(dim=1, keepdim=True)
    maps = {"full": grey, "half": F.avg_pool2d(grey, 2)}
    return {(layer, None): maps[layer] for layer in layers}
'''


def test_adding_a_source_is_one_module_and_one_registry_line(tmp_path, monkeypatch):
    (tmp_path / "toy_source.py").write_text(TOY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(backbones.SOURCES, "toy", "toy_source")  # the registry line
    assert isinstance(backbones.source("toy"), FeatureSource)

    from snakemake.utils import validate
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["methods"] = {"ddpm": {"source": "adm"}, "toy": {"source": "toy"}}
    validate(config, str(REPO / "schemas" / "config.schema.yaml"), set_default=True)
    plan = Plan(config)
    toy = plan.plans["creatures7"]["toy"]
    assert toy["layers"] == ["full", "half"] and toy["table"] == {"full": [1, 48], "half": [1, 24]}
    assert plan.method_keys("creatures7", "toy") == ["toy"] and plan.run_model_seed("creatures7", "toy") is None
    assert plan.probes.sweep("creatures7", "toy") == {"layers": ["full", "half"], "timesteps": [None],
                                               "kmeans": [("half", None)]}
    assert plan.stores.extraction("creatures7", "toy", "train", "cells").layers == ["full", "half"]
    assert plan.stores.cell_stores("creatures7", "toy", "train", plan.fixed_cells("creatures7", "toy")) == [
        "results/creatures7/features/toy/train/cells/features_full.zarr",
        "results/creatures7/features/toy/train/cells/features_half.zarr"]

    from ddpmseg.features import build_method_model, extract_features
    from ddpmseg.stores import open_store

    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    model, table, identity = build_method_model({**toy, "table": None}, 8, None, "cpu", 0)
    paths = extract_features("toy", model, images, ["a", "b", "c"], ["full", "half"], None, table, tmp_path / "s",
                             identity)
    half = open_store(paths[1])
    assert half.shape == (3, 1, 4, 4) and half.attrs["source"] == "toy" and half.attrs["method"] == "toy"
    expected = (images.astype(np.float32) / 127.5 - 1).mean(-1).reshape(3, 4, 2, 4, 2).mean((2, 4))
    np.testing.assert_allclose(half[:, 0].astype(np.float32), expected, atol=2e-3)
