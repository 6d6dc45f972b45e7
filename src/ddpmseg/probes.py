"""Probes of single cells, a (layer, timestep) of a feature source (a layer alone for a source
without timesteps): which features carry the semantics.

A probe is the paper's pixel MLP (`ensemble.train_ensemble`, usually with one member) trained
on the pixel features of one cell's store. Each cell is scored twice:

- on the test split, after training on the whole train split (the paper's Figure 2 protocol:
  train images, held-out images);
- by k-fold cross-validation inside the train split (image i is in fold i mod k): what
  `features: auto` chooses by, so that the test split never influences the choice.

Both pool intersections and unions over the scored images, as the paper's mIoU.
"""

import numpy as np
import pandas as pd

from ddpmseg.ensemble import train_ensemble
from ddpmseg.metrics import confusion_counts, iou_from_counts
from ddpmseg.predict import predict_images
from ddpmseg.stores import ImageSubset


def _fit_and_count(train_store, train_labels, train_index, eval_store, eval_labels, eval_index, *,
                   num_classes, ignore_label, convention, vote, seed, ensemble_settings, device):
    """Trains a probe on train_index images, predicts eval_index images: (intersection, union)."""
    (model,), _ = train_ensemble(
        [ImageSubset(train_store, train_index)], train_labels[train_index], num_classes, ignore_label,
        seeds=[seed], device=device, **ensemble_settings,
    )
    [(majority, soft, _)] = predict_images([model], [ImageSubset(eval_store, eval_index)], len(eval_index),
                                           eval_labels.shape[-1], device)
    predictions = majority if vote == "majority" else soft
    return confusion_counts(predictions, eval_labels[eval_index], num_classes, ignore_label, convention)


def probe_cell(train_store, train_labels, test_store, test_labels, num_classes: int, ignore_label: int, *,
               cv_folds: int, convention: str, vote: str, seed: int, ensemble_settings: dict,
               device: str = "cpu") -> dict:
    """Scores of one cell.

    train_store / test_store: Zarr arrays (N, C, H, W) of the cell; labels (N, S, S) uint8.
    ensemble_settings: keyword arguments of `train_ensemble` (n_members, batch_size, ...);
    the probes train and predict on `device`.
    Returns {"iou_test": [K floats, NaN for the ignore label], "miou_test": float,
    "iou_cv": [...], "miou_cv": float} with IoU as fractions.
    """
    common = dict(num_classes=num_classes, ignore_label=ignore_label, convention=convention, vote=vote,
                  seed=seed, ensemble_settings=ensemble_settings, device=device)
    all_train = np.arange(len(train_labels))
    test_counts = _fit_and_count(train_store, train_labels, all_train, test_store, test_labels,
                                 np.arange(len(test_labels)), **common)
    if not 2 <= cv_folds <= len(train_labels):
        raise ValueError(f"cv_folds must be between 2 and the {len(train_labels)} train images, got {cv_folds}")
    cv_intersection, cv_union = np.zeros(num_classes, np.int64), np.zeros(num_classes, np.int64)
    for fold in range(cv_folds):
        held_out = all_train[all_train % cv_folds == fold]
        intersection, union = _fit_and_count(train_store, train_labels, all_train[all_train % cv_folds != fold],
                                             train_store, train_labels, held_out, **common)
        cv_intersection += intersection
        cv_union += union
    iou_test = iou_from_counts(*test_counts, ignore_label)
    iou_cv = iou_from_counts(cv_intersection, cv_union, ignore_label)
    return {"iou_test": iou_test.tolist(), "miou_test": float(np.nanmean(iou_test)),
            "iou_cv": iou_cv.tolist(), "miou_cv": float(np.nanmean(iou_cv))}


def class_area_split(labels: np.ndarray, classes: list, ignore_label: int, small_fraction: float) -> dict:
    """Splits the classes by their average area in the annotated images (the paper's Figure 3).

    A class's average area is the mean over images of its share of the image's pixels (0
    where absent). Sorted by it, the first floor(small_fraction x K') of the K' scored classes
    (all but the ignore label) are "small", the rest "large". Returns {"small": [ids],
    "large": [ids], "mean_area": {class name: fraction}, "rule": a sentence stating the split}.
    """
    scored = [c for c in range(len(classes)) if c != ignore_label]
    pixels = labels.shape[1] * labels.shape[2]
    area = {c: float(np.mean([(image == c).sum() / pixels for image in labels])) for c in scored}
    order = sorted(scored, key=lambda c: (area[c], c))
    n_small = int(np.floor(small_fraction * len(order)))
    if not 1 <= n_small < len(order):
        raise ValueError(f"small_fraction {small_fraction} leaves no small or no large class among {len(order)}")
    rule = (f"small = the {n_small} of {len(order)} classes with the smallest average area in the "
            f"{len(labels)} annotated train images (fraction {small_fraction}); large = the other {len(order) - n_small}")
    return {"small": sorted(order[:n_small]), "large": sorted(order[n_small:]),
            "mean_area": {classes[c]: area[c] for c in order}, "rule": rule}


def probe_table(cells: list, split: dict) -> pd.DataFrame:
    """One row per cell, sorted by depth then timestep.

    cells: dicts of `probe_cell` plus layer, timestep (None without), depth (the layer's index
    in forward order), channels, resolution. Columns: layer, timestep (Int64, empty without),
    depth, channels, resolution, miou, miou_small, miou_large (test split) and miou_cv
    (cross-validation inside the train split); fractions in [0, 1].
    """
    rows = []
    for cell in cells:
        iou = np.array(cell["iou_test"], dtype=float)
        rows.append(dict(layer=cell["layer"], timestep=cell["timestep"], depth=cell["depth"], channels=cell["channels"],
                         resolution=cell["resolution"], miou=cell["miou_test"],
                         miou_small=float(np.nanmean(iou[split["small"]])),
                         miou_large=float(np.nanmean(iou[split["large"]])), miou_cv=cell["miou_cv"]))
    table = pd.DataFrame(rows)
    table["timestep"] = table["timestep"].astype("Int64")
    return table.sort_values(["depth", "timestep"]).reset_index(drop=True)


def kmeans_maps(store, n_images: int, k: int, seed: int) -> np.ndarray:
    """k-means (scikit-learn) of each image's pixel features in one store, at the layer's resolution.

    store: Zarr array (N, C, H, W). Returns (n_images, H, W) int cluster ids, per image
    renumbered by cluster size (0 = largest), so colours are comparable between panels.
    """
    from sklearn.cluster import KMeans

    maps = []
    for i in range(n_images):
        features = np.asarray(store[i], dtype=np.float32)
        channels, height, width = features.shape
        pixels = features.reshape(channels, -1).T
        ids = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(pixels)
        by_size = np.argsort(-np.bincount(ids, minlength=k), kind="stable")
        maps.append(np.argsort(by_size)[ids].reshape(height, width))
    return np.stack(maps)
