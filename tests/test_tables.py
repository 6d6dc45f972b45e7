import json

import numpy as np
import pytest

from ddpmseg.metrics import calibration_bins, expected_calibration_error
from ddpmseg.tables import collect_metrics, reliability_table, summary_table


def test_table_mean_std_over_seeds(tmp_path):
    files = {}
    values = {("a", "ddpm"): [0.5, 0.7], ("a", "pixels"): [0.3, 0.3], ("b", "ddpm"): [0.9, 0.9], ("b", "pixels"): [0.1, 0.2]}
    for (dataset, method), mious in values.items():
        for seed, miou in enumerate(mious):
            path = tmp_path / f"{dataset}_{method}_{seed}.json"
            path.write_text(json.dumps(dict(miou=miou, miou_majority=miou, miou_soft=miou + 0.01, vote="majority", convention="paper")))
            files[dataset, method, 0 if method == "ddpm" else None, seed] = path
    long = collect_metrics(files, {"ddpm": "DDPM", "pixels": "Pixels (RGB+xy)"})
    assert len(long) == 8 and set(long.columns) >= {"dataset", "method", "seed", "miou", "miou_soft"}
    table = summary_table(long)
    assert list(table.index) == ["DDPM", "Pixels (RGB+xy)"]
    assert list(table.columns) == ["a", "b"]
    assert table.loc["DDPM", "a"] == "60.0 ± 10.0"
    assert table.loc["Pixels (RGB+xy)", "b"] == "15.0 ± 5.0"


def test_training_note_states_budget_time_and_any_stop():
    from ddpmseg.tables import training_note

    done = dict(max_steps=250, steps=250, stopped_by="max_steps", seconds=240.0, seed=0)
    assert training_note([done]) == "250 steps, 4.0 min"
    assert training_note([{**done, "seconds": 12.4}]) == "250 steps, 12 s"
    stopped = {**done, "steps": 183, "stopped_by": "max_minutes", "seed": 1, "seconds": 300.0}
    assert training_note([done, stopped]) == ("250 steps, 2 models, 4.5 min each; STOPPED by max_minutes: "
                                              "model seed 1 at 183 of 250 steps")


def test_reliability_table_pools_the_runs_pixels(tmp_path):
    """Two seeds' bins pooled give the bins of their pixels taken together; a run without bins
    (a DeepLab) is left out."""
    rng = np.random.default_rng(0)
    runs = [(rng.uniform(0.3, 1, n), rng.random(n) < 0.8) for n in (50, 70)]
    paths = []
    for k, (conf, correct) in enumerate(runs):
        bins = calibration_bins(conf, correct, 10)
        paths.append(tmp_path / f"seed{k}.json")
        paths[-1].write_text(json.dumps({"miou": 0.5, "calibration": bins, "ece": expected_calibration_error(bins)}))
    (tmp_path / "deeplab.json").write_text(json.dumps({"miou": 0.4}))
    table = reliability_table({"DDPM": paths, "DeepLab": [tmp_path / "deeplab.json"]})
    together = calibration_bins(np.concatenate([c for c, _ in runs]), np.concatenate([r for _, r in runs]), 10)
    assert list(table["method"].unique()) == ["DDPM"] and len(table) == 10
    assert table["count"].tolist() == together["count"]
    filled = table["count"] > 0
    np.testing.assert_allclose(table.loc[filled, "accuracy"], [a for a in together["accuracy"] if a is not None])
    np.testing.assert_allclose(table.loc[filled, "confidence"], [c for c in together["confidence"] if c is not None])
    assert table["ece"].iloc[0] == pytest.approx(expected_calibration_error(together))
