"""Random re-splits of the labelled images (`evaluation.resplits: K`), as Generic Diffusion
Feature (Meng et al., NeurIPS 2024) evaluates Horse-21: a fixed split of 20-30 test images is a
noisy measure. Re-split r draws, from a generator seeded with (RESPLIT_SEED, r), which of the
train + test images train (as many as the fixed train split has) and which are scored; every MLP
seed trains Table 2's ensemble on it. The stores of both fixed splits are read as one
(`stores.ImageSubset`), so nothing is extracted again. Scored at the model's size, as Table 2 by
default."""

import numpy as np
import pandas as pd

from ddpmseg.ensemble import train_runs
from ddpmseg.metrics import mean_iou
from ddpmseg.predict import predict_images
from ddpmseg.stores import ImageSubset

RESPLIT_SEED = 2024  # the generator of re-split r is seeded with [RESPLIT_SEED, r]


def resplit(n_train: int, n_test: int, r: int) -> tuple:
    """(train, test): sorted indices into the fixed split's train images followed by its test
    images (0..n_train + n_test - 1), n_train of them training, the others scored."""
    order = np.random.default_rng([RESPLIT_SEED, r]).permutation(n_train + n_test)
    return sorted(order[:n_train].tolist()), sorted(order[n_train:].tolist())


def score_resplit(train_stores, test_stores, labels: np.ndarray, train: list, test: list, *, seeds: list,
                  settings: dict, runs_own_stores: bool, num_classes: int, ignore_label: int, vote: str,
                  convention: str, device: str = "cpu") -> pd.DataFrame:
    """Trains every seed's ensemble on the images `train` and scores it on `test` (`resplit`'s).

    train_stores / test_stores: a method's stores of the fixed splits, in the same order (run-major
    when `runs_own_stores`: each seed's share its own noise); labels (n_train + n_test, S, S)
    uint8: the train split's then the test split's; settings: `train_ensemble`'s. Returns one row
    per seed: seed, miou (of `vote`), miou_majority, miou_soft (fractions), train_images, test_images.
    """
    joined = [[train_store, test_store] for train_store, test_store in zip(train_stores, test_stores)]
    train_views, test_views = ([ImageSubset(parts, chosen) for parts in joined] for chosen in (train, test))
    models, _ = train_runs(train_views, seeds, dict(labels=labels[train], num_classes=num_classes,
                                                    ignore_label=ignore_label, device=device, **settings),
                           runs_own_stores)
    per_run = len(test_views) // len(seeds) if runs_own_stores else len(test_views)
    groups = ([([model], test_views[k * per_run : (k + 1) * per_run]) for k, model in enumerate(models)]
              if runs_own_stores else [(models, test_views)])
    predictions = [p for group_models, views in groups
                   for p in predict_images(group_models, views, len(test), labels.shape[-1], device,
                                           outputs=("majority", "soft"))]
    rows = []
    for seed, (majority, soft) in zip(seeds, predictions):
        scores = {name: mean_iou(votes, labels[test], num_classes, ignore_label, convention)
                  for name, votes in (("majority", majority), ("soft", soft))}
        rows.append(dict(seed=seed, miou=scores[vote], miou_majority=scores["majority"], miou_soft=scores["soft"],
                         train_images=len(train), test_images=len(test)))
    return pd.DataFrame(rows)
