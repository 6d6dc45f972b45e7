"""table4.csv: mIoU against the number of labelled training images (methods x
(dataset, count)), with the paper's DDPM numbers where configured, and its long format."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)

import zarr

from ddpmseg.experiments.labels import table4
from ddpmseg.runtime import start_rule
from ddpmseg.tables import collect_runs

log = start_rule(snakemake)
whole = {d: len(zarr.open_group(path, mode="r").attrs["image_ids"]) for d, path in zip(snakemake.params.datasets, snakemake.input.train)}
long = collect_runs(snakemake.params.runs, snakemake.input.metrics, snakemake.params.names,
                    lambda dataset, n: {"labels": whole[dataset] if n is None else n})
long.to_csv(snakemake.output.long, index=False)
table = table4(long, snakemake.params.reported)
table.to_csv(snakemake.output.table)
log.info("\n%s", table.to_string())
