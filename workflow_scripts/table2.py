"""results/table2.csv (methods x datasets, mean ± std over seeds) and the long format."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json
from pathlib import Path

import pandas as pd

from ddpmseg.runtime import start_rule
from ddpmseg.sweep import describe_cells
from ddpmseg.tables import collect_metrics, summary_table

log = start_rule(snakemake)
long = collect_metrics(dict(zip(map(tuple, snakemake.params.runs), snakemake.input.metrics)))
long.to_csv(snakemake.output.long, index=False)
table = summary_table(long)
if snakemake.input.features:  # which (block, timestep) cells the DDPM row used, per dataset
    row = {}
    for path in snakemake.input.features:
        with open(path) as f:
            used = json.load(f)
        row[Path(path).parts[1]] = describe_cells(used["cells"], used["auto"])
    table.loc["DDPM features (timestep: blocks)"] = pd.Series(row)
table.to_csv(snakemake.output.table)
log.info("\n%s", table.to_string())
