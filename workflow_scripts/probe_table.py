"""The sweep's table: one row per cell (layer, timestep); and the small/large class split."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import zarr

from ddpmseg.probes import class_area_split, probe_table
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
train = zarr.open_group(snakemake.input.train, mode="r")
split = class_area_split(train["labels"][:], train.attrs["classes"], train.attrs["ignore_label"],
                         snakemake.params.small_fraction)
cells = []
for path in snakemake.input.cells:
    with open(path) as f:
        cells.append(json.load(f))
table = probe_table(cells, split)
table.to_csv(snakemake.output.csv, index=False)
with open(snakemake.output.split, "w") as f:
    json.dump(split, f, indent=2)
best = table.loc[table["miou"].idxmax()]
log.info("%d cells; best on test: layer %s t %s, mIoU %.4f", len(table), best["layer"], best["timestep"], best["miou"])
