"""One run (unit, strategy, seed) of the simulated labelling loop: the ensemble retrained round
by round on what is revealed of the training split, the rest ranked by the strategy."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)

import zarr

from ddpmseg.errors import UserError
from ddpmseg.experiments.active_labelling import simulate, simulate_regions
from ddpmseg.regions import read_regions
from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.stores import open_stores

log = start_rule(snakemake)
settings, unit = snakemake.params.settings, snakemake.params.unit
train = zarr.open_group(snakemake.input.train, mode="r")
test = zarr.open_group(snakemake.input.test, mode="r")
n_train = len(train.attrs["image_ids"])
if unit == "image" and settings["labels"][-1] > n_train:
    raise UserError(f"config: datasets.{snakemake.wildcards.dataset}.experiments.active_labelling.labels ends at "
                    f"{settings['labels'][-1]}, but {snakemake.input.train} has {n_train} training images; "
                    f"end at {n_train} or below")
ensemble = dict(snakemake.params.ensemble)
device = pick_device() if ensemble.pop("gpu") else "cpu"
evaluation = snakemake.params.evaluation
common = dict(strategy=snakemake.wildcards.strategy, seed=int(snakemake.wildcards.seed), classes=train.attrs["classes"],
              ignore_label=train.attrs["ignore_label"], ensemble=ensemble, vote=evaluation["vote"],
              convention=evaluation["miou_convention"], device=device, log=log)
splits = (open_stores(snakemake.params.stores["train_stores"]), train["labels"][:],
          open_stores(snakemake.params.stores["test_stores"]), test["labels"][:])
ids = train.attrs["image_ids"]
if unit == "image":
    curve = simulate(*splits, counts=settings["labels"], candidates=settings["candidates"], **common)
    curve["added"] = [";".join(ids[int(i)] for i in added.split(";") if i) for added in curve["added"]]
else:
    curve = simulate_regions(*splits, read_regions(snakemake.input.regions), shares=settings["regions"]["shares"],
                             per_image=settings["regions"]["per_image"], **common)
    curve["added"] = [";".join(f"{ids[int(pair.split(':')[0])]}:{pair.split(':')[1]}" for pair in added.split(";") if pair)
                      for added in curve["added"]]
curve.to_csv(snakemake.output[0], index=False)
