"""Which regions to label next: every region (`ddpmseg.regions`) of the images scored by one
ensemble, ranked by a strategy, and picked at most `per_image` per image.

A region's scores (`region_scores`), from the members' softmax at its pixels: `js_mean`, the
mean Jensen-Shannon divergence between the members (nats); `js_<class>`, the share of that mean
carried by the pixels the soft vote gives the class (they sum to js_mean); `area_<class>`, the
share of its pixels the soft vote gives the class.

Strategies (`rank_regions`):
  uncertainty: the highest js_mean first;
  balanced:    the highest sum_c w_c * js_<c> first, w_c = 1 / sqrt(max(p_c, 0.001)), where p_c is
               the share of all candidate regions' pixels that the soft vote gives class c: a
               region's disagreement counts more where it sits on a class the ensemble predicts
               little (eyes and mouths of a face, shoes and bags of a person), so the batch does
               not fill with the boundaries of the big classes;
  random:      a seeded permutation (the baseline).
Picking walks the ranking and takes a region unless its image already gave `per_image`, until
`count` regions are taken or, with a pixel budget, their `cost` reaches it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ddpmseg.predict import image_probabilities
from ddpmseg.stores import native_maps
from ddpmseg.votes import PIXEL_OUTPUTS

REGION_STRATEGIES = ("uncertainty", "balanced", "random")
BALANCE_FLOOR = 1e-3  # p_c below this counts as this: a class never predicted does not take over
RANDOM_SALT = 7  # keeps the random strategy's generator apart from the ensembles' of the same seed


def region_scores(js: np.ndarray, predicted: np.ndarray, regions: np.ndarray, classes: list) -> pd.DataFrame:
    """One image's regions scored: js (S, S) per-pixel JS (nats), predicted (S, S) the soft
    vote's class, regions (S, S) int32 (-1: in none) -> one row per region: region, region_pixels,
    js_mean, js_<class>, area_<class> (module docstring)."""
    inside = regions >= 0
    ids, k = regions[inside], len(classes)
    n = int(ids.max()) + 1 if ids.size else 0
    pixels = np.bincount(ids, minlength=n)
    key = ids * k + predicted[inside]
    js_by_class = np.bincount(key, weights=js[inside], minlength=n * k).reshape(n, k) / pixels[:, None]
    area_by_class = np.bincount(key, minlength=n * k).reshape(n, k) / pixels[:, None]
    table = pd.DataFrame({"region": np.arange(n), "region_pixels": pixels, "js_mean": js_by_class.sum(axis=1)})
    for c, name in enumerate(classes):
        table[f"js_{name}"] = js_by_class[:, c]
    for c, name in enumerate(classes):
        table[f"area_{name}"] = area_by_class[:, c]
    return table


def score_regions(model, stores, regions, size: int, classes: list, device: str = "cpu") -> pd.DataFrame:
    """`region_scores` of every region of every image of the stores by one ensemble: one row
    per region with its image's index (`image`, in store order) first. regions: (N, S, S)
    int32, an array or a Zarr array (read one image at a time)."""
    model = model.to(device)
    tables = []
    with torch.no_grad():
        for i in range(regions.shape[0]):
            [p] = image_probabilities([model], native_maps(stores, i, device), size)
            js = PIXEL_OUTPUTS["js"](p).cpu().numpy().reshape(size, size)
            predicted = PIXEL_OUTPUTS["soft"](p).cpu().numpy().reshape(size, size)
            tables.append(region_scores(js, predicted, np.asarray(regions[i]), classes).assign(image=i))
    table = pd.concat(tables, ignore_index=True)
    return table[["image", *[c for c in table.columns if c != "image"]]]


def class_weights(table: pd.DataFrame, classes: list) -> np.ndarray:
    """(C,) the balanced strategy's w_c = 1 / sqrt(max(p_c, BALANCE_FLOOR)), p_c the share of
    the table's pixels (all its regions) that the soft vote gives class c."""
    areas = table[[f"area_{name}" for name in classes]].to_numpy(np.float64) * table["region_pixels"].to_numpy(np.float64)[:, None]
    shares = areas.sum(axis=0) / max(areas.sum(), 1.0)
    return 1.0 / np.sqrt(np.maximum(shares, BALANCE_FLOOR))


def rank_regions(table: pd.DataFrame, strategy: str, classes: list, per_image: int, *, count: int | None = None,
                 budget: float | None = None, cost: str = "region_pixels", seed: int = 0) -> pd.DataFrame:
    """The candidate regions ranked: ``table`` (one row per region, `score_regions`' columns)
    with columns rank (1 = label first), priority (what the strategy ordered by) and picked,
    rows in rank order. Picks walk the ranking, skip a region whose image already gave
    ``per_image``, and stop after ``count`` regions or once the picks' ``cost`` column sums to
    ``budget`` or more (the region that crosses it is taken). Ties go to the earlier row."""
    if strategy not in REGION_STRATEGIES:
        raise ValueError(f"unknown region strategy {strategy!r}; use one of {', '.join(REGION_STRATEGIES)}")
    if strategy == "uncertainty":
        priority = table["js_mean"].to_numpy(np.float64)
    elif strategy == "balanced":
        priority = table[[f"js_{name}" for name in classes]].to_numpy(np.float64) @ class_weights(table, classes)
    else:
        priority = np.full(len(table), np.nan)
    if strategy == "random":
        order = np.random.default_rng([RANDOM_SALT, seed]).permutation(len(table))
    else:
        order = np.lexsort((np.arange(len(table)), -priority))
    ranked = table.iloc[order].copy()
    ranked.insert(0, "rank", np.arange(1, len(order) + 1))
    ranked.insert(1, "priority", priority[order])
    ranked.insert(2, "picked", _picks(ranked["image"].to_numpy(), ranked[cost].to_numpy(np.float64), per_image,
                                      count, budget))
    return ranked


def _picks(images: np.ndarray, costs: np.ndarray, per_image: int, count: int | None, budget: float | None) -> np.ndarray:
    """(R,) bool over regions in rank order: `rank_regions`' picking rule."""
    picked = np.zeros(len(images), bool)
    taken, spent, per = 0, 0.0, {}
    for i, image in enumerate(images.tolist()):
        if (count is not None and taken >= count) or (budget is not None and spent >= budget):
            break
        if per.get(image, 0) >= per_image:
            continue
        picked[i] = True
        per[image] = per.get(image, 0) + 1
        taken, spent = taken + 1, spent + costs[i]
    return picked
