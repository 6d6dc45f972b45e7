"""Trains the pixel classifier ensembles of all seeds together on streamed features (one after
another where each run has stores of its own, per-run noise, or labels of its own, Table 4's
subsets); saves one state_dict, one training history and the count of its labelled training
images and pixels (training_labels.json: at the model's size, the ignore label and the padding
excluded) per seed."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import pandas as pd
import torch
import zarr

from ddpmseg.ensemble import split_draws, train_runs
from ddpmseg.errors import UserError
from ddpmseg.experiments.labels import label_subset
from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.stores import open_stores
from ddpmseg.precision import resolve

log = start_rule(snakemake)
data = zarr.open_group(snakemake.input.data, mode="r")
seeds = snakemake.params.seeds
settings = dict(snakemake.params.settings)
device = pick_device() if settings.pop("gpu") else "cpu"
log.info("training on %s", device)
stores = open_stores(snakemake.params.stores)
draws = snakemake.params.get("noise_draws", 1)  # Table 5's fresh noise: the stores of every draw, draw-major
if draws > 1:
    stores, settings["noise_draws"] = split_draws(stores, draws)
per_run = len(stores) // len(seeds) if snakemake.params.runs_own_stores else len(stores)
cells = [[s.attrs["layer"], s.attrs["timestep"]] for s in stores[:per_run]]
with open(snakemake.output.features, "w") as f:  # which features this method's ensembles use
    json.dump({"stores": list(snakemake.params.stores), "cells": cells, "auto": snakemake.params.auto,
               "torch_threads": snakemake.params.torch_threads, "precision": resolve(settings["precision"], device)},
              f, indent=1)
train = dict(labels=data["labels"][:], num_classes=len(data.attrs["classes"]), ignore_label=data.attrs["ignore_label"],
             device=device, **settings)
labelled, subsets = snakemake.params.get("labelled_images"), None  # Table 4: each seed labels n images of its own
if labelled is not None:
    ids = data.attrs["image_ids"]
    if labelled >= len(ids):
        raise UserError(f"config: datasets.{snakemake.wildcards.dataset}.experiments.labels lists {labelled}, but "
                        f"{snakemake.input.data} has {len(ids)} training images; list counts below {len(ids)}")
    subsets = {seed: label_subset(len(ids), labelled, seed) for seed in seeds}
    with open(snakemake.output.subsets, "w") as f:
        json.dump({str(seed): [ids[i] for i in subset] for seed, subset in subsets.items()}, f, indent=1)
for seed, path in zip(seeds, snakemake.output.training_labels):  # what each run is trained on, as labelled
    used = train["labels"] if subsets is None else train["labels"][subsets[seed]]
    with open(path, "w") as f:
        json.dump({"train_images": len(used), "train_labelled_pixels": int((used != train["ignore_label"]).sum())}, f)
models, history = train_runs(stores, seeds, train, snakemake.params.runs_own_stores, subsets)
history = pd.DataFrame(history)
for seed, model, model_path, history_path in zip(seeds, models, snakemake.output.models, snakemake.output.histories):
    torch.save(model.state_dict(), model_path)
    history[history.seed == seed].drop(columns="seed").to_csv(history_path, index=False)
