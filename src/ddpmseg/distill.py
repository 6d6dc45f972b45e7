"""The labelled pool of a distillation (DatasetDDPM): which images are kept, and reading them.

A labelled pool is a set of folders in the paper's dataset layout, one per labelling job:
NAME.png (RGB) + NAME.npy (uint8 labels of the ensemble's vote) per image and uncertainty.csv
(image, js_mean, js_top10: the mean and the top-10% mean of the image's per-pixel
Jensen-Shannon divergence, nats).
"""

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def select_most_certain(scores: pd.DataFrame, portion: float) -> pd.DataFrame:
    """`scores` (image, js_top10, ...) with rank (0 = most certain, by js_top10, ties by image
    name) and kept (False for the floor(portion x n) most uncertain images), in the input order."""
    order = scores.sort_values(["js_top10", "image"], kind="stable").index
    ranked = scores.assign(rank=pd.Series(np.arange(len(scores)), index=order))
    n_dropped = int(np.floor(portion * len(scores)))
    return ranked.assign(kept=ranked["rank"] < len(scores) - n_dropped)


def load_kept(selection: pd.DataFrame) -> tuple:
    """The kept images and labels of a selection (columns folder, image, kept), in its order:
    (N, S, S, 3) uint8 and (N, S, S) uint8."""
    kept = selection[selection["kept"]]
    images = np.stack([np.asarray(Image.open(Path(r.folder) / f"{r.image}.png").convert("RGB")) for r in kept.itertuples()])
    labels = np.stack([np.load(Path(r.folder) / f"{r.image}.npy") for r in kept.itertuples()])
    return images, labels
