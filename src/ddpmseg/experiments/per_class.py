"""Per-class IoU (the paper's Appendix D): classes as rows, methods as columns, mean ± std in
percent over every run of a method (model seeds x MLP seeds), as Table 2's cells."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def collect_per_class(per_class_files: dict, names: dict) -> pd.DataFrame:
    """Long format, one row per (run, class), the ignore label's row left out.

    per_class_files: {(method folder, seed): path of a per_class_iou.csv (class_id, class, iou)};
    names: {method folder: table row}. Columns: method, method_key, seed, class_id, class, iou
    (a fraction in [0, 1]).
    """
    parts = []
    for (key, seed), path in per_class_files.items():
        rows = pd.read_csv(path).dropna(subset=["iou"])
        parts.append(rows.assign(method=names[key], method_key=key, seed=seed))
    return pd.concat(parts, ignore_index=True)[["method", "method_key", "seed", "class_id", "class", "iou"]]


def per_class_table(long: pd.DataFrame) -> pd.DataFrame:
    """Cells "mean ± std" (percent, std with ddof=0) of each class's IoU over a method's runs:
    rows the classes in label order, then "mIoU" (each run's mean over the classes, as Table 2's
    cell), columns the methods in order of appearance."""
    run = ["method", "method_key", "seed"]
    miou = long.groupby(run, sort=False)["iou"].mean().reset_index().assign(**{"class": "mIoU", "class_id": np.inf})
    both = pd.concat([long, miou], ignore_index=True)
    stats = both.groupby(["class_id", "class", "method"], sort=False)["iou"].agg(mean="mean", std=lambda s: s.std(ddof=0))
    cells = stats.apply(lambda r: f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}", axis=1).unstack("method")
    cells = cells.sort_index(level="class_id").droplevel("class_id")
    return cells[list(dict.fromkeys(long["method"]))]


def per_class_figure(long: pd.DataFrame, title: str, path) -> None:
    """Horizontal grouped bars: one group per class (top to bottom in label order), one bar per
    method (mean IoU in percent over its runs, whiskers ± std), the methods' mIoU in the legend."""
    methods = list(dict.fromkeys(long["method"]))
    classes = long.drop_duplicates("class_id").sort_values("class_id")["class"].tolist()
    stats = long.groupby(["class", "method"])["iou"].agg(["mean", lambda s: s.std(ddof=0)]) * 100
    stats.columns = ["mean", "std"]
    miou = long.groupby(["method", "method_key", "seed"])["iou"].mean().groupby("method").mean() * 100
    height = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + len(classes) * (0.25 + 0.12 * len(methods))), layout="constrained")
    for k, method in enumerate(methods):
        y = np.arange(len(classes)) + (k - (len(methods) - 1) / 2) * height
        means = [stats.loc[(c, method), "mean"] for c in classes]
        stds = [stats.loc[(c, method), "std"] for c in classes]
        ax.barh(y, means, height=height, xerr=stds, color=f"C{k}", error_kw={"elinewidth": 0.8, "capsize": 1.5},
                label=f"{method} (mIoU {miou[method]:.1f})")
    ax.set_yticks(np.arange(len(classes)), classes)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("IoU on the test split (%), mean ± std over runs")
    ax.grid(axis="x", alpha=0.3)
    fig.legend(loc="outside lower center", ncol=min(len(methods), 3), fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
