"""A region batch (`label_next: {unit: region}`): the regions of the pool picked by
`label_regions.rank_regions`, written as a batch an annotator works through. Beside what an
image batch holds (images/, masks/, overlays/, batch.csv, batch.json), per image:

  asked/ID.png     the asked pixels at the photo's own size (8-bit: 255 asked, 0 not);
  masks/ID.png     the pre-annotation: the ensemble's guess in the asked regions, elsewhere the
                   image's earlier labels where it is already partly labelled (a pool image in
                   the training split), else the ignore label;
  overlays/ID.png  the photo with the asked regions outlined and the guess coloured in them;

and batch.csv has a row per image (its best region's rank, the asked regions' ids at the model's
size, their pixels and mean JS), regions.csv a row per picked region. A region's pixels at the
photo's own size are those whose centre falls in it at the model's size
(`regions.at_original_size`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddpmseg.regions import at_original_size


def image_rows(picked: pd.DataFrame) -> pd.DataFrame:
    """The picked regions (rows of `rank_regions` with `image` the pool index, `image_id`,
    `file`) grouped by image, in the order of each image's best rank: columns index (pool
    index), rank, image, file, regions (';'-joined ids), asked_pixels (model size), js_mean
    (pixel-weighted over its regions)."""
    rows = []
    for index, group in picked.groupby("image", sort=False):
        rows.append({"index": int(index), "rank": int(group["rank"].min()), "image": group["image_id"].iloc[0],
                     "file": group["file"].iloc[0], "regions": ";".join(map(str, sorted(group["region"]))),
                     "asked_pixels": int(group["region_pixels"].sum()),
                     "js_mean": float(np.average(group["js_mean"], weights=group["region_pixels"]))})
    return pd.DataFrame(rows).sort_values("rank", kind="stable").reset_index(drop=True)


def asked_regions(regions: np.ndarray, ids, height: int, width: int, non_square: str) -> np.ndarray:
    """(H, W) int32: the region id at each pixel of the photo where the region is one of
    ``ids``, -1 elsewhere; regions (S, S) of the image at the model's size."""
    at_size = at_original_size(regions, height, width, non_square)
    return np.where(np.isin(at_size, list(ids)), at_size, -1).astype(np.int32)


def pre_annotation(guess: np.ndarray, asked: np.ndarray, earlier: np.ndarray | None, ignore_label: int) -> np.ndarray:
    """(H, W) uint8: ``guess`` where ``asked``, elsewhere ``earlier`` (the image's labels so
    far, (H, W)) or, where it has none, the ignore label."""
    rest = np.full(guess.shape, ignore_label, np.uint8) if earlier is None else earlier.astype(np.uint8)
    return np.where(asked, guess, rest).astype(np.uint8)
