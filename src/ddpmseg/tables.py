"""Tables shaped like the paper's Table 2: methods as rows, datasets as columns."""

import json
import re

import pandas as pd

def method_of(key: str) -> str:
    """The method of a result folder: 'ddpm_m2' (model seed 2) -> 'ddpm'."""
    return re.sub(r"_m\d+$", "", key)


def collect_metrics(metric_files: dict, names: dict) -> pd.DataFrame:
    """Long format, one row per run, in the order of `metric_files`.

    metric_files: {(dataset, method folder, model seed or None, seed): path of a metrics.json};
    the folder is a method key, 'ddpm_m<d>' for an extra model seed; names: {method key: table
    row}. Columns: dataset, method (the row name), method_key (the folder), model_seed (empty for the controls), seed,
    miou, miou_majority, miou_soft, vote, convention; mIoU values are fractions in [0, 1];
    auroc_uncertainty (of the pixel uncertainty for the misclassified pixels) and ece (the soft
    vote's expected calibration error, a fraction), NaN where the metrics.json has none;
    train_images and train_labelled_pixels (the run's labelled training images and their labelled
    pixels at the model's size), empty for a run without them (a distilled DeepLab).
    """
    rows = []
    for (dataset, key, model_seed, seed), path in metric_files.items():
        with open(path) as f:
            metrics = json.load(f)
        rows.append(
            dict(
                dataset=dataset,
                method=names[method_of(key)],
                method_key=key,
                model_seed=model_seed,
                seed=seed,
                miou=metrics["miou"],
                miou_majority=metrics["miou_majority"],
                miou_soft=metrics["miou_soft"],
                vote=metrics["vote"],
                convention=metrics["convention"],
                auroc_uncertainty=metrics.get("auroc_uncertainty", float("nan")),
                ece=metrics.get("ece", float("nan")),
                train_images=metrics.get("train_images"),
                train_labelled_pixels=metrics.get("train_labelled_pixels"),
            )
        )
    long = pd.DataFrame(rows)
    for column in ("model_seed", "train_images", "train_labelled_pixels"):
        long[column] = long[column].astype("Int64")
    return long


def collect_runs(runs, paths, names: dict, describe) -> pd.DataFrame:
    """The long table of an experiment, one row per run (`collect_metrics`'s columns): `runs`
    (dataset, method folder, x, model seed or None, seed) in the order of their metrics.json
    `paths`; `describe(dataset, x)` gives the columns that x adds (Table 4: the labelled images;
    Table 5: the noise variant and its draws)."""
    parts = []
    for (dataset, key, x, model_seed, seed), path in zip(map(tuple, runs), paths):
        run = collect_metrics({(dataset, key, model_seed, seed): path}, names)
        parts.append(run.assign(**describe(dataset, x)))
    return pd.concat(parts, ignore_index=True)


def summary_table(long: pd.DataFrame) -> pd.DataFrame:
    """Cells "mean ± std" of mIoU in percent over all runs of a method on a dataset: model seeds
    x MLP seeds (std with ddof=0, as numpy's default).

    Rows: methods and columns: datasets, in order of appearance.
    """
    stats = long.groupby(["method", "dataset"], sort=False)["miou"].agg(
        mean="mean", std=lambda s: s.std(ddof=0)
    )
    cells = stats.apply(lambda r: f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}", axis=1).unstack("dataset")
    table = cells.loc[list(dict.fromkeys(long["method"])), list(dict.fromkeys(long["dataset"]))]
    table.index.name = "method"
    return table


def resplit_rows(long: pd.DataFrame) -> pd.DataFrame:
    """Table 2's rows of the random re-splits (`evaluation.resplits`), from table2_resplits.csv's
    long table: "<method> (re-splits)" with "mean ± std" in percent over all its runs (model
    seeds x re-splits x MLP seeds, std with ddof=0), and a row "Re-splits (± over)" saying how
    many of each; rows in order of appearance, columns the datasets."""
    table = summary_table(long)
    table.index = [f"{method} (re-splits)" for method in table.index]
    notes = {dataset: f"{runs['resplit'].nunique()} random splits x {runs['seed'].nunique()} MLP seeds"
             for dataset, runs in long.groupby("dataset", sort=False)}
    return pd.concat([table, pd.DataFrame({"Re-splits (± over)": notes}).T])


def spread_table(long: pd.DataFrame) -> pd.DataFrame:
    """Where the spread of Table 2 comes from, one row per (dataset, method).

    Columns: models (model seeds; 1 for the controls), mlp_seeds, mean, std (over all runs, as
    in Table 2), between_models (std of the per-model means over model seeds), within_model
    (mean over models of the std over MLP seeds); mIoU in percent, std with ddof=0.
    """
    rows = []
    for (dataset, method), runs in long.groupby(["dataset", "method"], sort=False):
        per_model = runs.groupby(runs["model_seed"].fillna(-1))["miou"]
        rows.append(dict(
            dataset=dataset, method=method, models=per_model.ngroups, mlp_seeds=runs["seed"].nunique(),
            mean=100 * runs["miou"].mean(), std=100 * runs["miou"].std(ddof=0),
            between_models=100 * per_model.mean().std(ddof=0),
            within_model=100 * per_model.std(ddof=0).mean(),
        ))
    return pd.DataFrame(rows).round(2)


def runs_note(long: pd.DataFrame) -> pd.Series:
    """Per dataset, what a cell's ± is over: "3 model seeds x 5 MLP seeds (controls: 5 MLP seeds)"."""
    notes = {}
    for dataset, runs in long.groupby("dataset", sort=False):
        models = runs["model_seed"].dropna().nunique()
        seeds = runs["seed"].nunique()
        text = f"{models} model seed{'s' if models != 1 else ''} x {seeds} MLP seeds" if models else f"{seeds} MLP seeds"
        if models and runs["model_seed"].isna().any():
            text += f" (controls: {seeds} MLP seeds)"
        notes[dataset] = text
    return pd.Series(notes)


def labels_note(long: pd.DataFrame) -> pd.Series:
    """Per dataset, what the ensembles are trained on: "20 images, 232,845 labelled pixels" (at the
    model's size), each different count where runs differ (runs without counts left out)."""
    notes = {}
    for dataset, runs in long.dropna(subset=["train_labelled_pixels"]).groupby("dataset", sort=False):
        counts = runs[["train_images", "train_labelled_pixels"]].drop_duplicates()
        notes[dataset] = "; ".join(f"{images} images, {pixels:,} labelled pixels"
                                   for images, pixels in counts.itertuples(index=False))
    return pd.Series(notes, dtype=object)


def training_note(outcomes: list) -> str:
    """A table cell on one dataset's training of a model, from its training.json dicts: "250
    steps, 4.1 min" (under 90 s in seconds; several models: "250 steps, 3 models, 4.1 min each"), with every stop by
    the time budget named, e.g. "...; STOPPED by max_minutes: model seed 1 at 183 of 250 steps"."""
    steps = sorted({o["max_steps"] for o in outcomes})
    seconds = sum(o["seconds"] for o in outcomes) / len(outcomes)
    text = "/".join(str(s) for s in steps) + " steps" + (f", {len(outcomes)} models" if len(outcomes) > 1 else "")
    text += (f", {seconds:.0f} s" if seconds < 90 else f", {seconds / 60:.1f} min") + (" each" if len(outcomes) > 1 else "")
    stopped = [o for o in outcomes if o["stopped_by"] != "max_steps"]
    if stopped:
        text += "; STOPPED by max_minutes: " + ", ".join(
            f"model seed {o['seed']} at {o['steps']} of {o['max_steps']} steps" for o in stopped)
    return text


def distill_note(runs: list) -> str:
    """A table cell on one dataset's distillation, from the training.json of each seed's DeepLab:
    "sampling 2.1 min, labelling 0.9 min, DeepLab 3.2 min (20 epochs, 900 of 1000 images kept),
    means over 2 seeds"; sampling is shared by the seeds and absent for the unlabeled pool, and
    a released pool has neither."""
    def minutes(seconds):
        return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"

    mean = {key: sum(r[key] for r in runs) / len(runs) for key in ("sampling_seconds", "labelling_seconds", "seconds")}
    parts = [f"{step} {minutes(mean[key])}" for step, key in (("sampling", "sampling_seconds"), ("labelling", "labelling_seconds"))
             if mean[key]] + [f"DeepLab {minutes(mean['seconds'])}"]
    text = ", ".join(parts) + f" ({runs[0]['epochs']} epochs, {runs[0]['images']} of {runs[0]['pool_images']} images kept)"
    return text + (f", means over {len(runs)} seeds" if len(runs) > 1 else "")


def reliability_table(metric_files: dict) -> pd.DataFrame:
    """The reliability diagram of each method, its runs pooled: rows (method, bin) with the bin's
    bounds, pixel count, mean confidence, accuracy, and the method's pooled ECE. metric_files:
    {method row name: [metrics.json paths]}; runs without calibration bins (a DeepLab) are left
    out, and a method with none is absent."""
    from ddpmseg.metrics import expected_calibration_error

    rows = []
    for method, paths in metric_files.items():
        pooled = None
        for path in paths:
            with open(path) as f:
                bins = json.load(f).get("calibration")
            if bins is None:
                continue
            frame = pd.DataFrame(bins).fillna(0.0)
            frame[["confidence", "accuracy"]] = frame[["confidence", "accuracy"]].mul(frame["count"], axis=0)
            pooled = frame if pooled is None else pooled + frame
        if pooled is None:
            continue
        n_bins = len(pooled)
        pooled[["confidence", "accuracy"]] = pooled[["confidence", "accuracy"]].div(pooled["count"].where(pooled["count"] > 0), axis=0)
        ece = expected_calibration_error({"count": pooled["count"].tolist(), "accuracy": pooled["accuracy"].tolist(),
                                          "confidence": pooled["confidence"].tolist()})
        rows += [dict(method=method, bin=b, lower=b / n_bins, upper=(b + 1) / n_bins, count=int(row["count"]),
                      confidence=row["confidence"], accuracy=row["accuracy"], ece=ece)
                 for b, row in pooled.iterrows()]
    return pd.DataFrame(rows, columns=["method", "bin", "lower", "upper", "count", "confidence", "accuracy", "ece"])
