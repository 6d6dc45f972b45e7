"""Does ranking pay? The active-labelling loop, simulated on the training split, with whole
images or regions as the unit that is labelled.

Both arms reveal the training split's ground truth round by round and retrain the ensemble on
what is revealed (Table 2's settings and budget; the rest of the split is the ignore label), then
score the fixed test split. The paper's rare-class rule (`ensemble.min_class_pixels`) is applied
once to the whole ground truth, as Table 2's training applies it to whole masks, so both arms
reveal the same cleaned labels and train with the rule off.

Image arm (`simulate`): starts from the first ``counts[0]`` images of Table 4's seeded
permutation (`experiments.labels.label_subset`: every strategy of a seed starts from the same
images); each round the rest of the split is ranked by the strategy (`ddpmseg.label_next.rank`,
the ensemble just trained, the images' pooled train features) and the picks are revealed whole.

Region arm (`simulate_regions`): the unit is a region of the split's regions
(`ddpmseg.regions`), its cost the pixels of the region that carry a ground-truth label (an
annotator fills it; a click per region). It starts from ``shares[0]`` of the split's labelled
pixels in seeded random regions (the same regions for every strategy of a seed); each round the
regions not yet asked are ranked (`ddpmseg.label_regions.rank_regions`, at most ``per_image``
of an image a round) and revealed until the round's share is reached (the last region may
overshoot it). Regions with no labelled pixel (a dataset's own ignore areas, such as padding
drawn into the source masks) are never asked. The last count or share is trained and scored,
not ranked.

A run's rows: round, images (with any labelled pixel), regions (asked so far; NaN for the image
arm), labelled_pixels, share (of the split's labelled pixels), miou (model size, the paper's
convention), added (what the round revealed: image indices, or image:region pairs).
"""

import textwrap

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ddpmseg.ensemble import relabel_rare_classes, train_ensemble  # noqa: E402
from ddpmseg.experiments.labels import label_subset  # noqa: E402
from ddpmseg.label_next import pooled_features, rank, score_images  # noqa: E402
from ddpmseg.label_regions import rank_regions, score_regions  # noqa: E402
from ddpmseg.metrics import mean_iou  # noqa: E402
from ddpmseg.predict import predict_images  # noqa: E402
from ddpmseg.stores import ImageSubset  # noqa: E402

ROUND_SALT = 1000  # the random strategy's seed in round r of run seed s: s * ROUND_SALT + r
START_SALT = 11  # the region arm's random start, apart from the random strategy's rounds


class _Loop:
    """What every round of a run shares: the cleaned ground truth, the ensemble settings with the
    rare-class rule off, and training + scoring on the currently revealed labels."""

    def __init__(self, train_stores, train_labels, test_stores, test_labels, classes, ignore_label, ensemble, vote,
                 convention, seed, device):
        self.train_stores, self.test_stores, self.test_labels = train_stores, test_stores, test_labels
        self.classes, self.ignore_label, self.vote, self.convention = classes, ignore_label, vote, convention
        self.seed, self.device, self.size = seed, device, train_labels.shape[-1]
        self.truth = relabel_rare_classes(train_labels, ignore_label, ensemble["min_class_pixels"])
        self.ensemble = {**ensemble, "min_class_pixels": 0}
        self.labelled = train_labels != ignore_label  # what an annotator labels (before the rule)
        self.total = int(np.count_nonzero(self.labelled))  # the 100% of the share axis

    def train_and_score(self, revealed: np.ndarray):
        """The ensemble trained on ``revealed`` (N, S, S) and its test mIoU."""
        (model,), _ = train_ensemble(self.train_stores, revealed, len(self.classes), self.ignore_label,
                                     seeds=[self.seed], device=self.device, **self.ensemble)
        [(majority, soft, _)] = predict_images([model], self.test_stores, len(self.test_labels), self.size, self.device)
        predictions = majority if self.vote == "majority" else soft
        return model, mean_iou(predictions, self.test_labels, len(self.classes), self.ignore_label, self.convention)

    def row(self, round_: int, asked: np.ndarray, regions, miou: float, added: list) -> dict:
        """A curve's row; asked (N, S, S) bool: the pixels shown to the annotator so far, of
        which those with a ground-truth label are what they labelled."""
        labelled = asked & self.labelled
        pixels = int(np.count_nonzero(labelled))
        return dict(round=round_, images=int(np.count_nonzero(labelled.any(axis=(1, 2)))), regions=regions,
                    labelled_pixels=pixels, share=pixels / self.total, miou=miou, added=";".join(map(str, added)))

    def revealed(self, asked: np.ndarray) -> np.ndarray:
        """(N, S, S) uint8: the cleaned ground truth at the ``asked`` pixels, the ignore label elsewhere."""
        return np.where(asked, self.truth, np.uint8(self.ignore_label))


def simulate(train_stores, train_labels: np.ndarray, test_stores, test_labels: np.ndarray, *, counts: list,
             strategy: str, seed: int, candidates: int, classes: list, ignore_label: int, ensemble: dict,
             vote: str, convention: str, device: str = "cpu", log=None) -> pd.DataFrame:
    """One run of the image arm: a row per count (module docstring). train_stores / test_stores:
    the method's stores (N, C, H, W) of the two splits, labels (N, S, S) uint8; ensemble:
    `train_ensemble`'s settings."""
    loop = _Loop(train_stores, train_labels, test_stores, test_labels, classes, ignore_label, ensemble, vote,
                 convention, seed, device)
    n_train = len(train_labels)
    labelled = label_subset(n_train, counts[0], seed)
    vectors = pooled_features(train_stores, n_train)
    rows, added = [], labelled
    for round_, count in enumerate(counts):
        asked = np.zeros(train_labels.shape, bool)
        asked[labelled] = True
        model, miou = loop.train_and_score(loop.revealed(asked))
        rows.append(loop.row(round_, asked, np.nan, miou, added))
        if log:
            log.info("image %s seed %d: %d labelled, mIoU %.4f", strategy, seed, count, miou)
        if round_ + 1 == len(counts):
            break
        taken = set(labelled)
        rest = [i for i in range(n_train) if i not in taken]
        scores = score_images(model, [ImageSubset(s, rest) for s in train_stores], len(rest), loop.size, classes, device)
        ranked = rank(scores.assign(index=rest), vectors[rest], vectors[labelled], strategy,
                      counts[round_ + 1] - count, seed * ROUND_SALT + round_, candidates)
        added = sorted(int(i) for i in ranked.loc[ranked["picked"], "index"])
        labelled = sorted(labelled + added)
    return pd.DataFrame(rows)


def region_costs(regions: np.ndarray, labels: np.ndarray, ignore_label: int) -> pd.DataFrame:
    """Every region with a labelled pixel: rows image, region, region_pixels (the region's size),
    labelled (its pixels that carry a label: what revealing it costs). regions (N, S, S) int32,
    labels (N, S, S) uint8."""
    tables = []
    for i, (cells, label) in enumerate(zip(regions, labels)):
        inside = cells >= 0
        n = int(cells.max()) + 1
        pixels = np.bincount(cells[inside], minlength=n)
        labelled = np.bincount(cells[inside], weights=label[inside] != ignore_label, minlength=n).astype(int)
        tables.append(pd.DataFrame({"image": i, "region": np.arange(n), "region_pixels": pixels, "labelled": labelled}))
    table = pd.concat(tables, ignore_index=True)
    return table[table["labelled"] > 0].reset_index(drop=True)


def asked_pixels(regions: np.ndarray, picks) -> np.ndarray:
    """(N, S, S) bool: the pixels of every picked (image, region) of ``picks``; regions (N, S, S) int32."""
    asked = np.zeros(regions.shape, bool)
    for image, region in picks:
        asked[image] |= regions[image] == region
    return asked


def simulate_regions(train_stores, train_labels: np.ndarray, test_stores, test_labels: np.ndarray,
                     regions: np.ndarray, *, shares: list, strategy: str, seed: int, per_image: int, classes: list,
                     ignore_label: int, ensemble: dict, vote: str, convention: str, device: str = "cpu",
                     log=None) -> pd.DataFrame:
    """One run of the region arm: a row per share (module docstring). regions: (N, S, S) int32
    of the training split (`ddpmseg.regions`); the rest as `simulate`."""
    loop = _Loop(train_stores, train_labels, test_stores, test_labels, classes, ignore_label, ensemble, vote,
                 convention, seed, device)
    costs = region_costs(regions, train_labels, ignore_label)
    start = rank_regions(costs, "random", classes, per_image, budget=shares[0] * loop.total, cost="labelled",
                         seed=START_SALT * ROUND_SALT + seed)
    picks = list(start.loc[start["picked"], ["image", "region"]].itertuples(index=False, name=None))
    asked, rows = set(), []
    for round_ in range(len(shares)):
        asked |= set(picks)
        mask = asked_pixels(regions, asked)
        model, miou = loop.train_and_score(loop.revealed(mask))
        row = loop.row(round_, mask, len(asked), miou, [f"{i}:{r}" for i, r in sorted(picks)])
        rows.append(row)
        if log:
            log.info("region %s seed %d: %d regions, %.2f%% of the labelled pixels, mIoU %.4f", strategy, seed,
                     len(asked), 100 * row["share"], miou)
        if round_ + 1 == len(shares):
            break
        open_ = costs[[(i, r) not in asked for i, r in zip(costs["image"], costs["region"])]]
        scored = score_regions(model, train_stores, regions, loop.size, classes, device)
        table = open_.merge(scored.drop(columns="region_pixels"), on=["image", "region"], how="left")
        budget = shares[round_ + 1] * loop.total - row["labelled_pixels"]
        ranked = rank_regions(table, strategy, classes, per_image, budget=budget, cost="labelled",
                              seed=seed * ROUND_SALT + round_)
        picks = list(ranked.loc[ranked["picked"], ["image", "region"]].itertuples(index=False, name=None))
    return pd.DataFrame(rows)


def summary(long: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, unit, strategy, round), over seeds: images and regions (mean), share (mean,
    percent of the split's labelled pixels), miou_mean and miou_std (percent, ddof=0), seeds."""
    keys = ["dataset", "unit", "strategy", "round"]
    table = long.groupby(keys, sort=False).agg(
        images=("images", "mean"), regions=("regions", "mean"), share=("share", lambda s: 100 * s.mean()),
        miou_mean=("miou", lambda m: 100 * m.mean()), miou_std=("miou", lambda m: 100 * m.std(ddof=0)),
        seeds=("seed", "size"))
    return table.round({"images": 1, "regions": 1, "share": 2, "miou_mean": 2, "miou_std": 2}).reset_index()


def figure(long: pd.DataFrame, title: str, path) -> None:
    """mIoU against the share of the training split's labelled pixels (log axis), one panel per
    dataset, a line per arm (mean over seeds, band ± std; regions dashed). Points are only what
    was run: below the image arms' first point (one image's share) they are not drawn, and the
    span is shaded as out of their reach. The full split's mIoU, where an image arm reached it,
    is a dotted line."""
    datasets = list(dict.fromkeys(long["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(max(6.4, 5.6 * len(datasets)), 4.6), squeeze=False,
                             layout="constrained")
    table = summary(long)
    for ax, dataset in zip(axes[0], datasets):
        rows = table[table["dataset"] == dataset]
        for k, ((unit, strategy), arm) in enumerate(rows.groupby(["unit", "strategy"], sort=False)):
            clicks = f", {arm['regions'].iloc[-1]:.0f} clicks" if unit == "region" else ""
            ax.plot(arm["share"], arm["miou_mean"], marker="o" if unit == "image" else "s", color=f"C{k}",
                    linestyle="-" if unit == "image" else "--", label=f"{unit} {strategy}{clicks}")
            ax.fill_between(arm["share"], arm["miou_mean"] - arm["miou_std"], arm["miou_mean"] + arm["miou_std"],
                            color=f"C{k}", alpha=0.12)
        images = rows[rows["unit"] == "image"]
        if len(images):
            full = images[images["share"] >= 99.99]
            if len(full):
                ax.axhline(full["miou_mean"].max(), color="0.3", linestyle=":", linewidth=1,
                           label=f"whole split labelled: {full['miou_mean'].max():.1f}")
            lowest = images["share"].min()
            if lowest > rows["share"].min():
                ax.axvspan(rows["share"].min() * 0.8, lowest, color="0.5", alpha=0.1, linewidth=0)
                ax.text(lowest, ax.get_ylim()[0], " below one image:\n no image-arm point", fontsize=7,
                        ha="right", va="bottom", color="0.3")
        ax.set_xscale("log")
        low, high = rows["share"].min(), rows["share"].max()
        ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if low / 1.5 <= t <= high * 1.5]
        ax.set_xticks(ticks, [f"{t:g}%" for t in ticks], fontsize=8)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set(xlabel="labelled pixels (share of the training split's, log scale)", ylabel="test mIoU (%)",
               title=dataset)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(textwrap.fill(title, 100), fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
