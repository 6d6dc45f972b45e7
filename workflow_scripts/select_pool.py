"""Ranks a labelled pool by the paper's per-image uncertainty (mean of the top 10% JS values)
and drops the most uncertain `uncertainty_portion` (floor of portion x images); draws samples
from the most certain to the most uncertain with their labels."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from PIL import Image

from ddpmseg.distill import select_most_certain
from ddpmseg.plots import pool_figure
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
scores = pd.concat([pd.read_csv(Path(folder) / "uncertainty.csv", dtype={"image": str}).assign(folder=folder)
                    for folder in snakemake.input.pool], ignore_index=True)
selection = select_most_certain(scores, snakemake.params.portion)
selection.to_csv(snakemake.output.selection, index=False)
ranked = selection.sort_values("rank")
shown = ranked.iloc[np.unique(np.linspace(0, len(ranked) - 1, min(8, len(ranked))).round().astype(int))]
images = [np.asarray(Image.open(Path(r.folder) / f"{r.image}.png")) for r in shown.itertuples()]
labels = [np.load(Path(r.folder) / f"{r.image}.npy") for r in shown.itertuples()]
classes = zarr.open_group(snakemake.input.split, mode="r").attrs["classes"]
pool_figure(images, labels, shown, classes, snakemake.params.title, snakemake.output.figure)
log.info("kept %d of %d images (dropped the %d most uncertain)", int(selection.kept.sum()), len(selection),
         int((~selection.kept).sum()))
