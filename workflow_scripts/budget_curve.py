"""<dataset>/budget_curve.csv and .png: the followed method's mIoU at every snapshot of
one diffusion training run, and the other methods' Table 2 mIoU as lines."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import pandas as pd

from ddpmseg.experiments.budget import budget_figure, budget_summary, first_clear_lead
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
with open(snakemake.input.training) as f:
    seconds = {int(step): s for step, s in json.load(f)["snapshot_seconds"].items()}
rows = []
for (key, steps, seed), path in zip(map(tuple, snakemake.params.runs), snakemake.input.metrics):
    with open(path) as f:
        miou = json.load(f)["miou"]
    rows.append(dict(method=snakemake.params.names[key], method_key=key, steps=steps,
                     minutes=None if steps is None else seconds[steps] / 60, seed=seed, miou=miou))
long = pd.DataFrame(rows)
summary = budget_summary(long)
summary.insert(0, "dataset", snakemake.wildcards.dataset)
summary.to_csv(snakemake.output.table, index=False)
followed = snakemake.params.names[snakemake.params.runs[0][0]]
lead = first_clear_lead(summary, followed)
verdict = (f"{followed} ahead of every other method by more than both spreads from {lead} steps" if lead
           else f"{followed} never clearly ahead of every other method")
log.info("%s\n%s", verdict, summary.to_string())
budget_figure(summary, followed, snakemake.params.table2_steps, f"{snakemake.wildcards.dataset}: {verdict}",
              snakemake.output.figure)
