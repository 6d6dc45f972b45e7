"""The learned mixing weights of a method's ensembles (`ensemble.aggregation: learned`): one row
per (seed, member, cell) in a CSV, and their mean per cell drawn over (layer, timestep)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import pandas as pd
import torch

from ddpmseg.plots import cell_weights_figure
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
with open(snakemake.input.features) as f:
    cells = json.load(f)["cells"]
rows = []
for seed, path in zip(snakemake.params.seeds, snakemake.input.models):
    weights = torch.load(path, map_location="cpu", weights_only=True)["cell_weights"]  # (members, cells)
    rows += [dict(seed=seed, member=m, layer=layer, timestep=timestep, weight=float(weights[m, k]))
             for m in range(len(weights)) for k, (layer, timestep) in enumerate(cells)]
table = pd.DataFrame(rows)
table.to_csv(snakemake.output.table, index=False)
cell_weights_figure(table, f"{snakemake.wildcards.dataset}, {snakemake.params.name}: learned cell weights\n"
                    f"mean over {table[['seed', 'member']].drop_duplicates().shape[0]} members of "
                    f"{len(snakemake.params.seeds)} seeds", snakemake.output.figure)
log.info("wrote %s and %s", snakemake.output.table, snakemake.output.figure)
