"""Does ranking the pool pay? The active-labelling loop, simulated on the training split.

One run (strategy, seed) starts from the first ``counts[0]`` images of Table 4's seeded
permutation of the training split (`experiments.labels.label_subset`: every strategy of a seed
starts from the same images), then for every further count trains the ensemble on the labelled
images (Table 2's settings and budget, the others' pixels ignored), scores the fixed test split,
ranks the rest of the training split by the strategy (`ddpmseg.label_next.rank`, the ensemble
just trained, the images' pooled train features) and reveals the labels of the picks. The last
count is trained and scored, not ranked. Curves: mIoU (model size, the paper's convention)
against labelled images; a curve's area is its trapezoid area divided by the span of counts:
the mean mIoU over the label budget, comparable across strategies.
"""

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ddpmseg.ensemble import mask_outside, train_ensemble  # noqa: E402
from ddpmseg.experiments.labels import label_subset  # noqa: E402
from ddpmseg.label_next import pooled_features, rank, score_images  # noqa: E402
from ddpmseg.metrics import mean_iou  # noqa: E402
from ddpmseg.predict import predict_images  # noqa: E402
from ddpmseg.stores import ImageSubset  # noqa: E402

ROUND_SALT = 1000  # the random strategy's seed in round r of run seed s: s * ROUND_SALT + r


def simulate(train_stores, train_labels: np.ndarray, test_stores, test_labels: np.ndarray, *, counts: list,
             strategy: str, seed: int, candidates: int, classes: list, ignore_label: int, ensemble: dict,
             vote: str, convention: str, device: str = "cpu", log=None) -> pd.DataFrame:
    """One run of the loop: a row per count (round, labels, miou, added: the image indices
    picked to reach it, ';'-joined). train_stores / test_stores: the method's stores (N, C, H,
    W) of the two splits, labels (N, S, S) uint8; ensemble: `train_ensemble`'s settings."""
    n_train, size = len(train_labels), train_labels.shape[-1]
    labelled = label_subset(n_train, counts[0], seed)
    vectors = pooled_features(train_stores, n_train)
    rows, added = [], labelled
    for round_, count in enumerate(counts):
        (model,), _ = train_ensemble(train_stores, mask_outside(train_labels, labelled, ignore_label), len(classes),
                                     ignore_label, seeds=[seed], device=device, **ensemble)
        [(majority, soft, _)] = predict_images([model], test_stores, len(test_labels), size, device)
        miou = mean_iou(majority if vote == "majority" else soft, test_labels, len(classes), ignore_label, convention)
        rows.append(dict(round=round_, labels=count, miou=miou, added=";".join(map(str, added))))
        if log:
            log.info("%s seed %d: %d labelled, mIoU %.4f", strategy, seed, count, miou)
        if round_ + 1 == len(counts):
            break
        taken = set(labelled)
        rest = [i for i in range(n_train) if i not in taken]
        scores = score_images(model, [ImageSubset(s, rest) for s in train_stores], len(rest), size, classes, device)
        ranked = rank(scores.assign(index=rest), vectors[rest], vectors[labelled], strategy,
                      counts[round_ + 1] - count, seed * ROUND_SALT + round_, candidates)
        added = sorted(int(i) for i in ranked.loc[ranked["picked"], "index"])
        labelled = sorted(labelled + added)
    return pd.DataFrame(rows)


def area_under_curve(curve: pd.DataFrame) -> float:
    """A curve's (labels, miou) trapezoid area divided by the span of labels: its mean mIoU over
    the label budget (the mIoU itself for a single count)."""
    curve = curve.sort_values("labels")
    x, y = curve["labels"].to_numpy(float), curve["miou"].to_numpy(float)
    return float(y[0]) if len(x) == 1 else float(np.trapezoid(y, x) / (x[-1] - x[0]))


def summary(long: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, strategy): the area under the curve (percent) mean and std (ddof=0) over
    seeds, and the mean ± std mIoU (percent) at every count (columns "<n> labels")."""
    areas = long.groupby(["dataset", "strategy", "seed"], sort=False).apply(area_under_curve, include_groups=False)
    table = areas.groupby(["dataset", "strategy"], sort=False).agg(
        auc_mean=lambda a: 100 * a.mean(), auc_std=lambda a: 100 * a.std(ddof=0), seeds="size")
    at_count = long.groupby(["dataset", "strategy", "labels"], sort=False)["miou"].agg(
        lambda m: f"{100 * m.mean():.1f} ± {100 * m.std(ddof=0):.1f}").unstack("labels")
    at_count.columns = [f"{n} labels" for n in at_count.columns]
    return table.join(at_count).round({"auc_mean": 2, "auc_std": 2}).reset_index()


def figure(long: pd.DataFrame, title: str, path) -> None:
    """mIoU against labelled images, one panel per dataset, a line per strategy (mean over seeds,
    band ± std), the area under each curve in the legend."""
    datasets = list(dict.fromkeys(long["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(max(6.4, 5.2 * len(datasets)), 4.4), squeeze=False,
                             layout="constrained")
    table = summary(long).set_index(["dataset", "strategy"])
    for ax, dataset in zip(axes[0], datasets):
        rows = long[long["dataset"] == dataset]
        for k, (strategy, curve) in enumerate(rows.groupby("strategy", sort=False)):
            stats = curve.groupby("labels")["miou"].agg(["mean", lambda m: m.std(ddof=0)]) * 100
            stats.columns = ["mean", "std"]
            auc = table.loc[(dataset, strategy)]
            ax.plot(stats.index, stats["mean"], marker="o", color=f"C{k}",
                    label=f"{strategy} (area {auc['auc_mean']:.1f} ± {auc['auc_std']:.1f})")
            ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"], color=f"C{k}",
                            alpha=0.15)
        ax.set(xlabel="labelled training images", ylabel="test mIoU (%)", title=dataset)
        ax.set_xticks(sorted(rows["labels"].unique()))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(textwrap.fill(title, 90), fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
