"""results/table2.csv (methods x datasets, mean ± std over model seeds x MLP seeds, with notes
on the runs and the diffusion training), the long format, and where the spread comes from."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json
from pathlib import Path

import pandas as pd

from ddpmseg.runtime import start_rule
from ddpmseg.sweep import describe_cells
from ddpmseg.tables import collect_metrics, runs_note, spread_table, summary_table, training_note

log = start_rule(snakemake)
long = collect_metrics(dict(zip(map(tuple, snakemake.params.runs), snakemake.input.metrics)))
long.to_csv(snakemake.output.long, index=False)
spread_table(long).to_csv(snakemake.output.spread, index=False)
table = summary_table(long)
if snakemake.input.features:  # which (block, timestep) cells the DDPM row used, per dataset
    row = {}
    for path in snakemake.input.features:
        with open(path) as f:
            used = json.load(f)
        row[Path(path).parts[1]] = describe_cells(used["cells"], used["auto"])
    table.loc["DDPM features (timestep: blocks)"] = pd.Series(row)
table.loc["Runs (± over)"] = runs_note(long)
outcomes = {}
for path in snakemake.input.training:
    with open(path) as f:
        outcomes.setdefault(Path(path).parts[1], []).append(json.load(f))
if "DDPM" in table.index:
    table.loc["Diffusion training"] = [training_note(outcomes[d]) if d in outcomes else "checkpoint"
                                       for d in table.columns]
for dataset, dataset_outcomes in outcomes.items():
    for outcome in dataset_outcomes:
        if outcome["stopped_by"] != "max_steps":
            log.warning("%s: diffusion model seed %d STOPPED by max_minutes at %d of %d steps", dataset,
                        outcome["seed"], outcome["steps"], outcome["max_steps"])
table.to_csv(snakemake.output.table)
log.info("\n%s", table.to_string())
