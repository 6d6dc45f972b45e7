"""table2.csv (methods x datasets, mean ± std over model seeds x MLP seeds, with notes
on the runs, the layers of each model method and each trained model's budget and time), the long
format, and where the spread comes from."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import pandas as pd

from ddpmseg.runtime import start_rule
from ddpmseg.sweep import describe_cells
from ddpmseg.tables import (collect_metrics, distill_note, labels_note, resplit_rows, runs_note, spread_table,
                            summary_table, training_note)

log = start_rule(snakemake)
names = snakemake.params.names
long = collect_metrics(dict(zip(map(tuple, snakemake.params.runs), snakemake.input.metrics)), names)
long.to_csv(snakemake.output.long, index=False)
spread_table(long).to_csv(snakemake.output.spread, index=False)
table = summary_table(long)
if snakemake.input.resplits:  # evaluation.resplits: the same methods on random re-splits, below the fixed split's
    table = pd.concat([table, resplit_rows(pd.read_csv(snakemake.input.resplits[0])).reindex(columns=table.columns)])
notes = {}  # row -> {dataset: text}, below the mIoU rows
for (dataset, method), path in zip(snakemake.params.described, snakemake.input.features):  # cells each used
    with open(path) as f:
        used = json.load(f)
    notes.setdefault(f"{names[method]}: layers", {})[dataset] = describe_cells([tuple(c) for c in used["cells"]],
                                                                                used["auto"])
notes["Runs (± over)"] = runs_note(long).to_dict()
notes["Trained on"] = labels_note(long).to_dict()
outcomes = {}  # (row, dataset) -> training.json dicts
for dataset, path in zip(snakemake.params.training_datasets, snakemake.input.training):
    with open(path) as f:
        outcome = json.load(f)
    row = "Diffusion training" if "method" not in outcome else f"{names[outcome['method']]} training"
    outcomes.setdefault((row, dataset), []).append(outcome)
    if outcome["stopped_by"] != "max_steps":
        log.warning("%s: %s (seed %d) STOPPED by max_minutes at %d of %d steps", dataset, row, outcome["seed"],
                    outcome["steps"], outcome["max_steps"])
if snakemake.params.trained_adm:  # a dataset whose diffusion model is a given checkpoint says so
    notes["Diffusion training"] = dict.fromkeys(table.columns, "checkpoint")
for (row, dataset), dataset_outcomes in outcomes.items():
    notes.setdefault(row, {})[dataset] = training_note(dataset_outcomes)
distilled = {}  # (row, dataset) -> training.json dicts of the DeepLab of each seed
for (dataset, key, _), path in zip(snakemake.params.distill_runs, snakemake.input.distill):
    with open(path) as f:
        distilled.setdefault((f"{names[key]}: times", dataset), []).append(json.load(f))
for (row, dataset), runs in distilled.items():
    notes.setdefault(row, {})[dataset] = distill_note(runs)
table = pd.concat([table, pd.DataFrame.from_dict(notes, orient="index").reindex(columns=table.columns)])
table.index.name = "method"
table.to_csv(snakemake.output.table)
log.info("\n%s", table.to_string())
