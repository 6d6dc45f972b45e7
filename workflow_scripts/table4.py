"""results/table4.csv: mIoU against the number of labelled training images (methods x
(dataset, count)), with the paper's DDPM numbers where configured, and its long format."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)

import pandas as pd
import zarr

from ddpmseg.experiments.labels import table4
from ddpmseg.runtime import start_rule
from ddpmseg.tables import collect_metrics

log = start_rule(snakemake)
whole = {d: len(zarr.open_group(path, mode="r").attrs["image_ids"]) for d, path in zip(snakemake.params.datasets, snakemake.input.train)}
parts = []
for (dataset, key, n, model_seed, seed), path in zip(map(tuple, snakemake.params.runs), snakemake.input.metrics):
    run = collect_metrics({(dataset, key, model_seed, seed): path}, snakemake.params.names)
    parts.append(run.assign(labels=whole[dataset] if n is None else n))
long = pd.concat(parts, ignore_index=True)
long.to_csv(snakemake.output.long, index=False)
table = table4(long, snakemake.params.reported)
table.to_csv(snakemake.output.table)
log.info("\n%s", table.to_string())
