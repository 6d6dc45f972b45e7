"""Figure 6 of the paper: robustness to the image corruptions of Hendrycks & Dietterich (ICLR
2019), from the `imagecorruptions` package (its 15 ImageNet-C corruptions and 4 extra ones).

The pixel classifiers trained on clean images segment corrupted test images; the paper reports
the mean IoU over the corruption types at severities 1, 3 and 5 ("weak", "medium", "strong").
The package is old: it runs through `imagecorruptions_compat`, which gives its functions back the
numpy and scikit-image names they lost; a corruption that still fails with the installed
libraries is left out with its error as the reason (`check_corruptions`). Corrupted images are
reproducible: every (corruption, severity, image) seeds numpy's global generator, which the
package draws from, with a hash of its names.
"""

import contextlib
import io
import warnings
import zlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SEVERITY_NAMES = {1: "weak", 3: "medium", 5: "strong"}  # the paper's Figure 6


def corruption_names() -> list:
    """Every corruption of the package, in its order (19)."""
    from imagecorruptions import get_corruption_names

    return list(get_corruption_names("all"))


def corrupt_image(image: np.ndarray, corruption: str, severity: int, image_id: str) -> np.ndarray:
    """image (S, S, 3) uint8 -> the same shape, uint8, corrupted; the same for the same names."""
    with _quiet():
        from ddpmseg.experiments.imagecorruptions_compat import corrupt

        np.random.seed(zlib.crc32(f"{corruption}/{severity}/{image_id}".encode()))
        out = np.asarray(corrupt(image, corruption, severity))
    if out.shape != image.shape:
        raise ValueError(f"{corruption} at severity {severity} gave shape {out.shape} for an image of {image.shape}")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8) if out.dtype != np.uint8 else out


def corrupt_images(images: np.ndarray, image_ids, corruption: str, severity: int) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, S, S, 3) uint8, every image by `corrupt_image`."""
    return np.stack([corrupt_image(image, corruption, severity, image_id) for image, image_id in zip(images, image_ids)])


def check_corruptions(image: np.ndarray, names, severities) -> dict:
    """Which corruptions work here: {"usable": [names], "left_out": {name: "Error: message"}},
    each tried on `image` (S, S, 3) uint8 at every severity."""
    usable, left_out = [], {}
    for name in names:
        try:
            for severity in severities:
                corrupt_image(image, name, severity, "check")
            usable.append(name)
        except Exception as error:  # the package's own failures with today's libraries: the reason is kept
            left_out[name] = f"{type(error).__name__}: {error}"
    return {"usable": usable, "left_out": left_out}


@contextlib.contextmanager
def _quiet():
    """The package's deprecation warnings (pkg_resources, skimage) and prints, kept out of the logs."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def robustness_summary(long: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, method, severity): the mean over corruption types of the mIoU, averaged over
    runs, with its std over runs (each run's mean over corruptions); severity 0 is the clean test
    split. long: dataset, method, method_key, seed, corruption, severity, miou. Columns: dataset,
    method, severity, miou, std, corruptions (how many were averaged), in percent."""
    per_run = long.groupby(["dataset", "method", "method_key", "seed", "severity"], sort=False).agg(
        miou=("miou", "mean"), corruptions=("corruption", "nunique")).reset_index()
    summary = per_run.groupby(["dataset", "method", "severity"], sort=False).agg(
        miou=("miou", "mean"), std=("miou", lambda s: s.std(ddof=0)), corruptions=("corruptions", "max")).reset_index()
    summary[["miou", "std"]] *= 100
    return summary.sort_values(["dataset", "severity"], kind="stable").round(2)


def figure6(summary: pd.DataFrame, path) -> None:
    """One panel per dataset: mIoU (percent) at clean / weak / medium / strong corruptions (or
    whichever severities were run), one line per method, error bars ± std over runs."""
    datasets = list(dict.fromkeys(summary["dataset"]))
    methods = list(dict.fromkeys(summary["method"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.8 * len(datasets), 4.4), squeeze=False, layout="constrained")
    for ax, dataset in zip(axes[0], datasets):
        rows = summary[summary["dataset"] == dataset]
        severities = sorted(rows["severity"].unique())
        for k, method in enumerate(methods):
            line = rows[rows["method"] == method].set_index("severity").reindex(severities)
            dodge = (k - (len(methods) - 1) / 2) * 0.04  # error bars side by side, not on top of each other
            ax.errorbar(np.arange(len(severities)) + dodge, line["miou"], yerr=line["std"], marker="o", capsize=3,
                        color=f"C{k}", label=method)
        ax.set_xticks(range(len(severities)),
                      ["clean" if s == 0 else f"{SEVERITY_NAMES.get(s, 'severity')} ({s})" for s in severities])
        n_corruptions = int(rows.loc[rows["severity"] > 0, "corruptions"].max())
        ax.set_title(f"{dataset}: mean over {n_corruptions} corruptions", fontsize=10)
        ax.set_ylabel("mIoU on the test split (%)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(methods), 2 * len(datasets)), fontsize=8,
               frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)
