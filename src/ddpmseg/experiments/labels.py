"""Table 4 of the paper: mIoU against the number of labelled training images.

Each MLP seed draws its own subsets of the train split, nested: one seeded permutation of the
images, of which a subset of n takes the first n, so the 10 are inside the 20. The whole split
is Table 2's run (reused). A subset trains with Table 2's ensemble and budget on Table 2's train
stores: the images outside it get the ignore label everywhere, so their pixels never enter a
buffer and their features are never read.
"""

import numpy as np
import pandas as pd

SUBSET_SALT = 4  # keeps the subsets' generator apart from the ensemble's generator of the same seed


def label_subset(n_images: int, n: int, seed: int) -> list:
    """The sorted indices of the n training images that seed `seed` labels, n <= n_images."""
    if not 1 <= n <= n_images:
        raise ValueError(f"a subset of {n} of {n_images} training images")
    order = np.random.default_rng([SUBSET_SALT, seed]).permutation(n_images)
    return sorted(int(i) for i in order[:n])


def table4(long: pd.DataFrame, reported: dict) -> pd.DataFrame:
    """Cells "mean ± std" (percent, over model seeds x MLP seeds, ddof=0) per method (rows) and
    (dataset, labelled images) (columns "<dataset>: <n>", counts falling, per dataset in order of
    appearance); long: rows with dataset, method, labels, miou. reported: {dataset: {n: mIoU in
    percent}} of the paper's DDPM, a row "DDPM (paper)" where any is given."""
    reported = {d: {str(n): v for n, v in counts.items()} for d, counts in reported.items()}
    stats = long.groupby(["method", "dataset", "labels"], sort=False)["miou"].agg(mean="mean", std=lambda s: s.std(ddof=0))
    cells = stats.apply(lambda r: f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}", axis=1)
    columns = [(d, n) for d in dict.fromkeys(long["dataset"]) for n in sorted(set(long.loc[long.dataset == d, "labels"]), reverse=True)]
    table = cells.unstack(["dataset", "labels"]).reindex(columns=pd.MultiIndex.from_tuples(columns))
    table = table.loc[list(dict.fromkeys(long["method"]))]
    if any(reported.values()):
        table.loc["DDPM (paper)"] = [f"{reported[d][str(n)]:.1f}" if str(n) in reported.get(d, {}) else "" for d, n in columns]
    table.columns = [f"{d}: {n}" for d, n in columns]
    table.index.name = "method"
    return table
