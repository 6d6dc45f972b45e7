"""Which unlabeled images to label next: every image of the pool scored by a method's ensemble,
and ranked by a strategy.

Scores of an image (from its members' softmax at every pixel, `image_scores`): the
Jensen-Shannon divergence between the members (DatasetGAN's and the paper's code's image score,
the mean of the top 10% of pixels, `js_top10`; and its mean), the soft vote's entropy and margin
(top mean probability less the second, averaged: small = hesitant), and the share of the image
that each class takes in the soft vote (`area_<class>`).

Strategies (`rank`): `uncertainty` (highest js_top10 first); `diversity` (k-center greedy on
pooled features, `k_center_greedy`: each pick the image farthest from everything labelled or
picked before, so ten near-duplicates are not all picked); `uncertainty+diversity` (k-center
greedy among the `candidates` x count most uncertain); `random` (a seeded permutation, the
baseline). A ranking orders the whole pool: the strategy's picks first, in pick order.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import torch

from ddpmseg.predict import image_probabilities
from ddpmseg.stores import native_maps
from ddpmseg.votes import PIXEL_OUTPUTS, image_uncertainty_score

STRATEGIES = ("uncertainty", "diversity", "uncertainty+diversity", "random")
RANDOM_SALT = 5  # keeps the random strategy's generator apart from the ensembles' of the same seed


def image_scores(probabilities: torch.Tensor, classes: list) -> dict:
    """One image's scores: probabilities (M, P, C) of M members at its P pixels -> {js_top10,
    js_mean, entropy_mean (nats), margin_mean, area_<class> (fraction of pixels, soft vote)}."""
    js = PIXEL_OUTPUTS["js"](probabilities).cpu().numpy()
    soft = PIXEL_OUTPUTS["soft"](probabilities)
    areas = torch.bincount(soft, minlength=len(classes)).double() / soft.numel()
    return {"js_top10": image_uncertainty_score(js), "js_mean": float(js.mean()),
            "entropy_mean": float(PIXEL_OUTPUTS["entropy"](probabilities).mean()),
            "margin_mean": float(PIXEL_OUTPUTS["margin"](probabilities).mean()),
            **{f"area_{name}": float(a) for name, a in zip(classes, areas.tolist())}}


def score_images(model, stores, n_images: int, size: int, classes: list, device: str = "cpu") -> pd.DataFrame:
    """`image_scores` of every image of the stores (one row per image, in store order) by one
    ensemble, image by image (memory does not grow with the pool)."""
    model = model.to(device)
    rows = []
    with torch.no_grad():
        for i in range(n_images):
            [p] = image_probabilities([model], native_maps(stores, i, device), size)
            rows.append(image_scores(p, classes))
    return pd.DataFrame(rows)


def pooled_features(stores, n_images: int) -> np.ndarray:
    """(n_images, D) float32: per image, each store's map averaged over its pixels, scaled to unit
    length per store (so every cell weighs the same whatever its width), the stores concatenated
    and divided by sqrt(number of stores): unit vectors, distances in [0, 2]."""
    parts = []
    for store in stores:
        means = np.stack([np.asarray(store[i], np.float32).mean(axis=(1, 2)) for i in range(n_images)])
        parts.append(means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12))
    return (np.concatenate(parts, axis=1) / np.sqrt(len(stores))).astype(np.float32)


def k_center_greedy(vectors: np.ndarray, labelled: np.ndarray, count: int | None = None) -> tuple:
    """Farthest-first traversal (Sener and Savarese's k-center greedy): ``count`` (default all)
    picks among the rows of ``vectors`` (N, D), each the row farthest (Euclidean) from the rows
    of ``labelled`` (L, D) and the picks before it. With nothing labelled the first pick is the
    row nearest the mean (the most typical image). Ties go to the lower index. Returns (picks,
    distances): indices in pick order and each one's distance at its pick (0 for an exact
    duplicate of something before it)."""
    x = torch.from_numpy(np.asarray(vectors, np.float64))
    count = len(x) if count is None else min(count, len(x))
    if len(labelled):
        nearest = torch.cdist(x, torch.from_numpy(np.asarray(labelled, np.float64))).min(dim=1).values
    else:
        nearest = torch.full((len(x),), float("inf"), dtype=torch.float64)
    picks, distances = [], []
    for _ in range(count):
        if torch.isinf(nearest).all():  # nothing labelled yet: the image nearest the mean
            pick = int(torch.cdist(x.mean(dim=0, keepdim=True), x)[0].argmin())
        else:
            pick = int(torch.argmax(torch.where(torch.isnan(nearest), -1.0, nearest)))
        picks.append(pick)
        distances.append(float(nearest[pick]))
        nearest = torch.minimum(nearest, torch.cdist(x[pick : pick + 1], x)[0])
        nearest[pick] = float("nan")  # picked: never again
    return picks, distances


def rank(scores: pd.DataFrame, vectors: np.ndarray, labelled: np.ndarray, strategy: str, count: int,
         seed: int = 0, candidates: int = 5, exclude: np.ndarray | None = None) -> pd.DataFrame:
    """The pool ranked: ``scores`` (one row per image, `score_images`' columns) with columns rank
    (1 = label first), picked (the first ``count``) and priority (what the strategy ordered by:
    js_top10, or for the diversity strategies the pick's distance to what was chosen before),
    rows in rank order. vectors (N, D): the images' `pooled_features`; labelled (L, D): those of
    the images already labelled (the diversity strategies stay away from them). Images where
    ``exclude`` (N,) bool is set (already labelled) come last, never picked, priority NaN."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    exclude = np.zeros(len(scores), bool) if exclude is None else np.asarray(exclude, bool)
    keep = np.flatnonzero(~exclude)
    uncertainty = scores["js_top10"].to_numpy(np.float64)
    by_uncertainty = sorted(keep.tolist(), key=lambda i: (-uncertainty[i], i))
    priority = np.full(len(scores), np.nan)
    if strategy == "uncertainty":
        order = by_uncertainty
        priority[keep] = uncertainty[keep]
    elif strategy == "random":
        order = [int(keep[i]) for i in np.random.default_rng([RANDOM_SALT, seed]).permutation(len(keep))]
    elif strategy == "diversity":
        chosen, distances = k_center_greedy(vectors[keep], labelled)
        order = keep[chosen].tolist()
        priority[order] = distances
    else:  # k-center greedy among the most uncertain; past them where they hold only copies
        order = _diverse_among_uncertain(vectors, labelled, by_uncertainty, count, candidates, priority)
    order += np.flatnonzero(exclude).tolist()
    ranked = scores.iloc[order].copy()
    ranked.insert(0, "rank", np.arange(1, len(order) + 1))
    ranked.insert(1, "picked", (ranked["rank"] <= count) & ~exclude[order])
    ranked.insert(2, "already_labelled", exclude[order])
    ranked.insert(3, "priority", priority[order])
    return ranked


def _diverse_among_uncertain(vectors: np.ndarray, labelled: np.ndarray, by_uncertainty: list, count: int,
                             candidates: int, priority: np.ndarray) -> list:
    """uncertainty+diversity's order: ``count`` k-center greedy picks among the ``candidates`` x
    count most uncertain images; where these run out of images unlike the ones chosen (a pick
    at distance 0: an exact copy), the remaining picks come from the whole pool. Then the rest
    by uncertainty. Writes each pick's distance into ``priority``."""
    pool = by_uncertainty[: max(count, candidates * count)]
    chosen, distances = k_center_greedy(vectors[pool], labelled, count)
    picks = [pool[i] for i, d in zip(chosen, distances) if d > 0]
    priority[picks] = [d for d in distances if d > 0]
    if len(picks) < min(count, len(by_uncertainty)):
        rest = [i for i in by_uncertainty if i not in set(picks)]
        seen = np.concatenate([np.asarray(labelled, np.float32).reshape(-1, vectors.shape[1]), vectors[picks]])
        more, more_distances = k_center_greedy(vectors[rest], seen, count - len(picks))
        picks += [rest[i] for i in more]
        priority[[rest[i] for i in more]] = more_distances
    taken = set(picks)
    return picks + [i for i in by_uncertainty if i not in taken]


def training_match(pool_images, labelled_images) -> np.ndarray:
    """(N,) int: for each pool image ((S, S, 3) arrays, any iterable: read one at a time) the
    index of the labelled image it is pixel for pixel at the model's size, -1 for none; e.g. an
    image of a batch copied into the training folder while it stays in the pool that trains the
    diffusion model."""
    def digest(image) -> str:
        return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()

    seen = {}
    for i, image in enumerate(labelled_images):
        seen.setdefault(digest(image), i)
    return np.array([seen.get(digest(image), -1) for image in pool_images], int)


def already_labelled(pool_images, labelled_images) -> np.ndarray:
    """(N,) bool: which pool images are one of the labelled images (`training_match`)."""
    return training_match(pool_images, labelled_images) >= 0
