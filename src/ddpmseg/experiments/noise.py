"""Table 5 of the paper: stochastic feature extraction. Three ways to noise the images before
the UNet reads them, rows as in the paper (noise shared between train and test, shared across t):

- "+ +" shared: one noise tensor for every image and timestep, in training and evaluation
  (Table 2's run, reused);
- "+ -" per_timestep: one noise tensor per timestep, the same in training and evaluation;
- "- -" fresh: noise of its own for every (image, timestep), K train extractions with K seeds
  of which each buffer of the pixel stream reads one (in place of the paper's fresh noise at
  every iteration), and test features with a seed no training draw has.

Only sources that take timesteps have this axis.
"""

import pandas as pd

VARIANTS = {  # name -> (share across train/test, share across t), the paper's Table 5 rows
    "shared": ("+", "+"),
    "per_timestep": ("+", "-"),
    "fresh": ("-", "-"),
}
TEST_SEED_OFFSET = 10**6  # fresh test noise: base + 10**6, never one of the K train draws' base + 1 + k


def variant_folders(variant: str, split: str, draws: int) -> list:
    """The store folders (under a split's folder) of a variant: one, or for fresh train features
    one per draw."""
    if variant == "per_timestep":
        return ["noise_per_timestep"]
    if variant == "fresh":
        return [f"noise_fresh{k}" for k in range(draws)] if split == "train" else ["noise_fresh_test"]
    raise ValueError(f"unknown noise variant {variant!r}")


def folder_noise(folder: str, base_seed: int) -> tuple:
    """(noise mode of `ddpmseg.features.batch_noise`, noise seed) of a variant's store folder."""
    if folder == "noise_per_timestep":
        return "per_timestep", base_seed
    if folder == "noise_fresh_test":
        return "per_image", base_seed + TEST_SEED_OFFSET
    return "per_image", base_seed + 1 + int(folder.removeprefix("noise_fresh"))


def table5(long: pd.DataFrame, reported: dict) -> pd.DataFrame:
    """Rows (method, variant) with columns "share train/test", "share across t", then one
    "mean ± std" column (percent, over model seeds x MLP seeds, ddof=0) per dataset; long:
    dataset, method, variant, miou. reported: {dataset: [the paper's DDPM "+ +", "+ -", "- -"]},
    rows "DDPM (paper)" where any is given."""
    stats = long.groupby(["method", "variant", "dataset"], sort=False)["miou"].agg(mean="mean", std=lambda s: s.std(ddof=0))
    cells = stats.apply(lambda r: f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}", axis=1).unstack("dataset")
    datasets = list(dict.fromkeys(long["dataset"]))
    rows = []
    methods = list(dict.fromkeys(long["method"]))
    for method in methods + (["DDPM (paper)"] if any(reported.values()) else []):
        for k, (variant, (train_test, across_t)) in enumerate(VARIANTS.items()):
            if method == "DDPM (paper)":
                values = [f"{reported[d][k]:.1f}" if reported.get(d) else "" for d in datasets]
            else:
                values = [cells.loc[(method, variant), d] for d in datasets]
            rows.append([method, train_test, across_t, *values])
    return pd.DataFrame(rows, columns=["method", "share train/test", "share across t", *datasets]).set_index("method")
