"""A dataset's simulated labelling loop: every run's curve in one long CSV, each arm's mean ± std
over seeds at every round, and the figure."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)

import pandas as pd

from ddpmseg.experiments.active_labelling import figure, summary
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
dataset = snakemake.wildcards.dataset
parts = [pd.read_csv(path, dtype={"added": str}).assign(dataset=dataset, method=snakemake.params.method, unit=unit,
                                                        strategy=strategy, seed=seed)
         for (unit, strategy, seed), path in zip(snakemake.params.runs, snakemake.input.runs)]
long = pd.concat(parts, ignore_index=True)[["dataset", "method", "unit", "strategy", "seed", "round", "images", "regions",
                                            "labelled_pixels", "share", "miou", "added"]]
long.to_csv(snakemake.output.long, index=False)
table = summary(long)
table.to_csv(snakemake.output.summary, index=False)
figure(long, f"{dataset}: labelling loop simulated on the training split, {snakemake.params.method} ensemble "
             f"({long['seed'].nunique()} seeds)", snakemake.output.figure)
log.info("\n%s", table.to_string(index=False))
