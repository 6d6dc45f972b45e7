"""Feature sources: where a method's pixel features come from, one module per source.

A method of the workflow (a row of Table 2) is a source plus its settings (`methods:` in the
config). Every source keeps the contract `contract.FeatureSource`, so that the workflow plans
and runs it without asking which source it is. Adding a source means one module here, one line
in `SOURCES` and its test file (tests/test_backbone_<name>.py); tests/test_sources.py checks
every entry against the contract, and the README's source table against this registry.
"""

import importlib
from types import ModuleType

# source name -> module; the order is the README's method list.
SOURCES = {
    "adm": "ddpmseg.backbones.adm",
    "diffusers_unet": "ddpmseg.backbones.diffusers_unet",
    "stable_diffusion": "ddpmseg.backbones.stable_diffusion",
    "mae": "ddpmseg.backbones.mae",
    "swav": "ddpmseg.backbones.swav",
    "timm": "ddpmseg.backbones.timm_model",
    "pixels": "ddpmseg.backbones.pixels",
    "patch": "ddpmseg.backbones.patch",
}


def source(name: str) -> ModuleType:
    """The module of source `name`; KeyError lists the known ones."""
    if name not in SOURCES:
        raise KeyError(f"unknown feature source {name!r}; known: {', '.join(SOURCES)}")
    return importlib.import_module(SOURCES[name])


def pretraining_budget(default_steps: int) -> dict:
    """The JSON-schema properties of `train` that every source the workflow pretrains shares:
    its budget (max_steps), time guard (max_minutes), torch threads and loss-row interval."""
    return {
        "max_steps": {"description": "Optimiser steps: the training's budget.", "type": "integer", "minimum": 1,
                      "default": default_steps},
        "max_minutes": {"description": "A guard that stops training early (the weights then depend on the machine's "
                                       "speed; the outcome says so); null = no limit.",
                        "anyOf": [{"type": "null"}, {"type": "number", "exclusiveMinimum": 0}], "default": None},
        "threads": {"description": "Torch threads of the training job (a setting recorded in training.json, never "
                                   "taken from --cores).", "type": "integer", "minimum": 1, "default": 2},
        "log_every": {"description": "Steps per loss row (each row: the mean loss over those steps).",
                      "type": "integer", "minimum": 1, "default": 10},
    }


def store_name(layer: str, timestep: int | None) -> str:
    """File name of the store of one layer (at one diffusion step): features_<layer>[_t<t>].zarr."""
    return f"features_{layer}.zarr" if timestep is None else f"features_{layer}_t{timestep}.zarr"
