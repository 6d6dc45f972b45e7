"""Figures 2 and 3 of one method: probe mIoU by (layer, timestep), and over small vs large classes."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import pandas as pd
import zarr

from ddpmseg.plots import probe_figure, small_large_figure
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
dataset, probes, name = snakemake.wildcards.dataset, snakemake.params.settings, snakemake.params.name
table = pd.read_csv(snakemake.input.csv)
with open(snakemake.input.split) as f:
    split = json.load(f)
classes = zarr.open_group(snakemake.input.test, mode="r").attrs["classes"]
members = f"{probes['n_members']} MLP" + ("s" if probes["n_members"] > 1 else "")
per = snakemake.params.axes
probe_figure(table, f"{dataset}, {name}: probe mIoU per {per} ({members} per cell; dashed: the ensemble's)",
             snakemake.output.fig2, marked=[tuple(c) for c in snakemake.params.marked])
small_large_figure(table, split, classes, f"{dataset}, {name}: probe mIoU on the test images, small vs large classes",
                   snakemake.output.fig3)
log.info("wrote %s and %s", snakemake.output.fig2, snakemake.output.fig3)
