"""Table 3 of the paper: segmentation trained on real against synthetic annotated images."""

import pandas as pd


def table3(long: pd.DataFrame, reported: dict) -> pd.DataFrame:
    """Cells "mean ± std" (mIoU percent over a row's runs, std with ddof=0) per row (the
    method's ensembles, DatasetDDPM, the released synthetic datasets' DeepLabs) and column
    "<dataset>: <training data>" (real, or an annotated set's name), both in order of appearance
    in `long` (rows with dataset, method, train, miou as a fraction); a row has cells only where
    it has runs. reported: {dataset: {row: {training data: mIoU in percent}}}, the paper's
    numbers, as rows "<row> (paper)" where any is given."""
    stats = long.groupby(["method", "dataset", "train"], sort=False)["miou"].agg(mean="mean", std=lambda s: s.std(ddof=0))
    cells = stats.apply(lambda r: f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}", axis=1)
    columns = list(dict.fromkeys(zip(long["dataset"], long["train"])))
    table = cells.unstack(["dataset", "train"]).reindex(columns=pd.MultiIndex.from_tuples(columns))
    table = table.loc[list(dict.fromkeys(long["method"]))].fillna("")
    paper_rows = dict.fromkeys(row for rows in reported.values() for row in rows)
    for row in paper_rows:
        table.loc[f"{row} (paper)"] = [f"{reported.get(d, {}).get(row, {})[t]:.1f}"
                                       if t in reported.get(d, {}).get(row, {}) else "" for d, t in columns]
    table.columns = [f"{d}: {t}" for d, t in columns]
    table.index.name = "method"
    return table
