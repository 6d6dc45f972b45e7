"""One probe: the pixel MLP on a single cell's store (a layer, at a timestep where the source
has them), scored on the test split and by cross-validation inside the train split."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json
import time

import zarr

from ddpmseg.runtime import pick_device, start_rule

from ddpmseg.stores import open_store
from ddpmseg.probes import probe_cell

log = start_rule(snakemake)
probes, evaluation = snakemake.params.probes, snakemake.params.evaluation
ensemble = {k: v for k, v in snakemake.params.ensemble.items()  # a probe reads one cell: nothing to aggregate
            if k not in ("n_members", "gpu", "aggregation", "aggregation_width")}
device = pick_device() if snakemake.params.ensemble["gpu"] else "cpu"
train, test = zarr.open_group(snakemake.input.train, mode="r"), zarr.open_group(snakemake.input.test, mode="r")
train_store = open_store(snakemake.params.stores["train_store"])
test_store = open_store(snakemake.params.stores["test_store"])
start = time.monotonic()
scores = probe_cell(
    train_store, train["labels"][:], test_store, test["labels"][:], len(train.attrs["classes"]),
    train.attrs["ignore_label"], cv_folds=probes["cv_folds"], convention=evaluation["miou_convention"],
    vote=evaluation["vote"], seed=probes["seed"], ensemble_settings={**ensemble, "n_members": probes["n_members"]},
    device=device,
)
cell = {**snakemake.params.cell, "channels": int(train_store.shape[1]), "resolution": int(train_store.shape[2]), **scores,
        "seconds": round(time.monotonic() - start, 1)}
with open(snakemake.output[0], "w") as f:
    json.dump(cell, f, indent=1)
log.info("layer %s t %s: mIoU test %.4f, cv %.4f (%.0f s)", cell["layer"], cell["timestep"], cell["miou_test"],
         cell["miou_cv"], cell["seconds"])
