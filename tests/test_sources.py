"""Every registered feature source keeps the contract, and what lists the sources follows the
registry; what a source or a bundle can do is asked of it, never decided by its name or type
outside the registries."""

import dataclasses
import importlib
import re
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
        "TAKES_TIMESTEPS", "PRETRAINED_BY_WORKFLOW", "DIFFUSION_STAGE", "HAS_MODEL_SEEDS", "RUNS_A_MODEL", "EXPORTABLE"))
    assert source.NORMALISATION in NORMALISATIONS and source.NAME and source.BUILT_FROM and source.FIGURE_AXES
    assert not source.HAS_MODEL_SEEDS or source.DIFFUSION_STAGE  # model seeds are the diffusion stage's
    for member, flag in OPTIONAL.items():  # an optional member is there exactly where its flag says so
        assert callable(getattr(source, member, None)) == getattr(source, flag), (member, flag)


@pytest.mark.parametrize("name", ["pixels", "patch"])
def test_a_source_without_a_model_builds_an_empty_module(name):
    import torch

    source = backbones.source(name)
    model = source.build({"layers": None}, 8, None, "cpu", 0)
    assert isinstance(model, torch.nn.Module) and not list(model.parameters()) and not model.training
    assert source.identity_settings({"layers": None}) == {"layers": None}


def _workflow_lines(outside: tuple):
    """(file:line, text) of every line of the workflow's code (src, rules, workflow_scripts, the
    Snakefile), but in the folders or files named in `outside`."""
    files = [p for folder in ("src", "rules", "workflow_scripts") for p in (REPO / folder).rglob("*")
             if p.suffix in (".py", ".smk")] + [REPO / "Snakefile"]
    for path in files:
        where = path.relative_to(REPO)
        if not set(where.parts) & set(outside):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                yield f"{where}:{n}", line


def _source_patterns() -> dict:
    """{what: regex} of the ways code outside backbones/ could decide by a source's name or type."""
    names = "|".join(backbones.SOURCES)
    classes = sorted({name for module in backbones.SOURCES.values() for name in re.findall(
        r"^class (\w+)", Path(importlib.import_module(module).__file__).read_text(), re.M)})
    return {
        "compares a source's name": rf"""[!=]=\s*["']({names})["']|["']({names})["']\s*[!=]=""",
        "lists source names": rf"""[(\[{{,]\s*["']({names})["']\s*[,)\]}}]""",
        "asks a source hasattr": r"hasattr\(\s*[\w.]*source\b",
        "tests the type of a source's model": r"isinstance\(\s*[\w.]*model\b"
                                              + "".join(rf"|isinstance\([^)]*\b{name}\b" for name in classes),
    }


def _kind_patterns() -> dict:
    """{what: regex} of the ways code outside `segmenter.KINDS` could decide by a bundle's kind."""
    from ddpmseg.segmenter import KINDS

    kinds = "|".join(KINDS)
    return {
        "reads a bundle's kind": r"""\[["']kind["']\]""",
        "compares a kind": rf"""\b(kind|model)["']?\]?\s*[!=]=\s*["']({kinds})["']|["']({kinds})["']\s*[!=]=""",
        "lists kinds": rf"""\bin\s*[(\[{{]\s*["']({kinds})["']""",
    }


def test_the_guards_catch_what_they_forbid():
    """Each pattern of the two guards below catches the form it is for (a guard that matches
    nothing would pass as well)."""
    examples = {
        "compares a source's name": 'if plan["source"] == "adm":',
        "lists source names": 'EXPORTABLE = ("adm", "pixels", "patch")',
        "asks a source hasattr": 'shape = source.noise_shape(model) if hasattr(self.source, "noise_shape") else None',
        "tests the type of a source's model": "if not isinstance(self.model, torch.nn.Module):",
        "reads a bundle's kind": 'if segmenter.description["kind"] == "deeplab":',
        "compares a kind": 'if spec["model"] == "deeplab" and not pools:',
        "lists kinds": 'if kind in ("deeplab", "other"):',
    }
    patterns = {**_source_patterns(), **_kind_patterns()}
    assert [what for what, line in examples.items() if not re.search(patterns[what], line)] == []
    assert not any(re.search(p, 'lines.append(f"trained: {k}" for k in provenance if k != "ensemble")')
                   for p in patterns.values())


def test_no_source_is_asked_for_by_name_or_type_outside_the_sources():
    """What a source can do is its own declaration (`contract.FeatureSource`): no code outside
    backbones/ compares a source's name, lists source names, asks a source hasattr, or tests the
    type of a source's model."""
    found = [f"{where}: {what}" for where, line in _workflow_lines(("backbones",))
             for what, pattern in _source_patterns().items() if re.search(pattern, line)]
    assert found == []


def test_no_bundle_kind_is_tested_outside_the_kind_registry():
    """A segmenter bundle's kind picks its class in `segmenter.KINDS`, and the class says what
    differs (uncertainty, summary, graph, prediction): no other code reads a bundle's kind, or
    compares or lists kinds (a `segment` folder's model included)."""
    found = [f"{where}: {what}" for where, line in _workflow_lines(("segmenter.py",))
             for what, pattern in _kind_patterns().items() if re.search(pattern, line)]
    assert found == []


def test_the_readme_source_table_lists_the_registry_in_order():
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Methods", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", section, re.M)
    assert rows == list(backbones.SOURCES)


TOY_SOURCE = '''
"""A throwaway source for the test: each pixel's grey level at two scales."""
from ddpmseg.backbones.defaults import (  # noqa: F401
    DIFFUSION_STAGE, FIGURE_AXES, HAS_MODEL_SEEDS, complete_settings, identity_settings, model_origin, model_parts,
    model_settings, noise_shape, sweep_layers,
)

NAME = "Toy"
TAKES_TIMESTEPS = False
NORMALISATION = "[-1, 1]"
BUILT_FROM = "no model"
PRETRAINED_BY_WORKFLOW = False
RUNS_A_MODEL = False
EXPORTABLE = True
SETTINGS = {"type": "object", "additionalProperties": False,
            "properties": {"layers": {"anyOf": [{"type": "null"}, {"type": "array"}], "default": None}}}


def layer_table(settings, image_size):
    return {"full": (1, image_size), "half": (1, image_size // 2)}


def default_layers(settings, image_size):
    return ["full", "half"]


def build(settings, image_size, checkpoint, device, seed):
    return model_parts()


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
    assert toy.layers == ["full", "half"] and toy.table == {"full": [1, 48], "half": [1, 24]}
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
    model, table, identity = build_method_model(dataclasses.replace(toy, table=None), 8, None, "cpu", 0)
    paths = extract_features("toy", model, images, ["a", "b", "c"], ["full", "half"], None, table, tmp_path / "s",
                             identity)
    half = open_store(paths[1])
    assert half.shape == (3, 1, 4, 4) and half.attrs["source"] == "toy" and half.attrs["method"] == "toy"
    expected = (images.astype(np.float32) / 127.5 - 1).mean(-1).reshape(3, 4, 2, 4, 2).mean((2, 4))
    np.testing.assert_allclose(half[:, 0].astype(np.float32), expected, atol=2e-3)
