"""Tables shaped like the paper's Table 2: methods as rows, datasets as columns."""

import json

import pandas as pd

METHOD_NAMES = {
    "ddpm": "DDPM",
    "unet_untrained": "UNet (untrained)",
    "pixels": "Pixels (RGB+xy)",
    "patch": "Patch (5x5 RGB+xy)",
}


def collect_metrics(metric_files: dict) -> pd.DataFrame:
    """Long format, one row per (dataset, method, seed).

    metric_files: {(dataset, method, seed): path of a metrics.json}. Columns: dataset, method
    (display name), method_key, seed, miou, miou_majority, miou_soft, vote, convention;
    mIoU values are fractions in [0, 1].
    """
    rows = []
    for (dataset, method, seed), path in metric_files.items():
        with open(path) as f:
            metrics = json.load(f)
        rows.append(
            dict(
                dataset=dataset,
                method=METHOD_NAMES[method],
                method_key=method,
                seed=seed,
                miou=metrics["miou"],
                miou_majority=metrics["miou_majority"],
                miou_soft=metrics["miou_soft"],
                vote=metrics["vote"],
                convention=metrics["convention"],
            )
        )
    return pd.DataFrame(rows)


def summary_table(long: pd.DataFrame) -> pd.DataFrame:
    """Cells "mean ± std" of mIoU in percent over seeds (std with ddof=0, as numpy's default).

    Rows: methods in the order of METHOD_NAMES; columns: datasets in order of appearance.
    """
    stats = long.groupby(["method", "dataset"], sort=False)["miou"].agg(
        mean="mean", std=lambda s: s.std(ddof=0)
    )
    cells = stats.apply(lambda r: f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}", axis=1).unstack("dataset")
    order = [name for name in METHOD_NAMES.values() if name in cells.index]
    datasets = list(dict.fromkeys(long["dataset"]))
    table = cells.loc[order, datasets]
    table.index.name = "method"
    return table
