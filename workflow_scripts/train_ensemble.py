"""Trains the pixel classifier ensembles of all seeds together on streamed features (one after
another where each run has stores of its own: per-run noise); saves one state_dict and one
training history per seed."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import pandas as pd
import torch
import zarr

from ddpmseg.ensemble import train_ensemble
from ddpmseg.features import open_stores, pick_device
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
data = zarr.open_group(snakemake.input.data, mode="r")
seeds = snakemake.params.seeds
settings = dict(snakemake.params.settings)
device = pick_device() if settings.pop("gpu") else "cpu"
log.info("training on %s", device)
stores = open_stores(snakemake.input.stores)
per_run = len(stores) // len(seeds) if snakemake.params.runs_own_stores else len(stores)
cells = [[s.attrs["layer"], s.attrs["timestep"]] for s in stores[:per_run]]
with open(snakemake.output.features, "w") as f:  # which features this method's ensembles use
    json.dump({"stores": list(snakemake.input.stores), "cells": cells, "auto": snakemake.params.auto,
               "torch_threads": snakemake.params.torch_threads}, f, indent=1)
train = dict(labels=data["labels"][:], num_classes=len(data.attrs["classes"]), ignore_label=data.attrs["ignore_label"],
             device=device, **settings)
if snakemake.params.runs_own_stores:
    models, history = [], []
    for k, seed in enumerate(seeds):
        run_models, run_history = train_ensemble(stores[k * per_run : (k + 1) * per_run], seeds=[seed], **train)
        models += run_models
        history += run_history
else:
    models, history = train_ensemble(stores, seeds=seeds, **train)
history = pd.DataFrame(history)
for seed, model, model_path, history_path in zip(seeds, models, snakemake.output.models, snakemake.output.histories):
    torch.save(model.state_dict(), model_path)
    history[history.seed == seed].drop(columns="seed").to_csv(history_path, index=False)
