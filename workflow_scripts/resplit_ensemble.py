"""One method's ensembles of every seed trained on a re-split's training images and scored on its
others (`ddpmseg.experiments.resplits`), from Table 2's stores of both fixed splits."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import numpy as np
import zarr

from ddpmseg.experiments.resplits import score_resplit
from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.stores import open_stores

log = start_rule(snakemake)
train, test = (zarr.open_group(path, mode="r") for path in (snakemake.input.train, snakemake.input.test))
position = {f"{split}/{image}": k for k, (split, image) in enumerate(
    [("train", i) for i in train.attrs["image_ids"]] + [("test", i) for i in test.attrs["image_ids"]])}
with open(snakemake.input.split) as f:
    split = json.load(f)
settings = dict(snakemake.params.ensemble)
device = pick_device() if settings.pop("gpu") else "cpu"
evaluation = snakemake.params.evaluation
scores = score_resplit(
    open_stores(snakemake.params.stores["train_stores"]), open_stores(snakemake.params.stores["test_stores"]),
    np.concatenate([train["labels"][:], test["labels"][:]]), [position[name] for name in split["train"]],
    [position[name] for name in split["test"]], seeds=snakemake.params.seeds, settings=settings,
    runs_own_stores=snakemake.params.runs_own_stores, num_classes=len(train.attrs["classes"]),
    ignore_label=train.attrs["ignore_label"], vote=evaluation["vote"], convention=evaluation["miou_convention"],
    device=device)
scores.to_csv(snakemake.output[0], index=False)
log.info("re-split %s:\n%s", snakemake.wildcards.resplit, scores.to_string(index=False))
