"""The experiments' pieces: Table 4's subsets and table, the per-class table."""

import numpy as np
import pandas as pd
import pytest

from ddpmseg.experiments.labels import label_subset, mask_outside, table4
from ddpmseg.experiments.per_class import per_class_table


def test_label_subsets_are_nested_seeded_and_differ_between_seeds():
    for seed in range(5):
        subsets = {n: label_subset(30, n, seed) for n in (30, 20, 10, 1)}
        assert subsets[30] == list(range(30))
        assert set(subsets[1]) < set(subsets[10]) < set(subsets[20]) < set(subsets[30])
        assert subsets[10] == sorted(subsets[10]) and len(set(subsets[10])) == 10
        assert label_subset(30, 10, seed) == subsets[10]  # reproducible
    assert len({tuple(label_subset(30, 10, seed)) for seed in range(5)}) == 5
    with pytest.raises(ValueError):
        label_subset(5, 6, 0)


def test_mask_outside_keeps_only_the_subset_labelled():
    labels = np.arange(4 * 2 * 2, dtype=np.uint8).reshape(4, 2, 2)
    masked = mask_outside(labels, [1, 3], ignore_label=255)
    assert (masked[[1, 3]] == labels[[1, 3]]).all() and (masked[[0, 2]] == 255).all()
    assert (labels[0] == [[0, 1], [2, 3]]).all()  # the input is left alone


def test_table4_cells_columns_and_the_papers_row():
    long = pd.DataFrame([dict(dataset=d, method=m, labels=n, miou=v)
                         for d, counts in (("a", (20, 10)), ("b", (30, 5))) for m in ("DDPM", "Pixels")
                         for n in counts for v in (0.5, 0.6)])
    table = table4(long, {"a": {20: 49.4, "10": 46.2}, "b": {}})
    assert list(table.columns) == ["a: 20", "a: 10", "b: 30", "b: 5"]
    assert list(table.index) == ["DDPM", "Pixels", "DDPM (paper)"]
    assert table.loc["DDPM", "a: 10"] == "55.0 ± 5.0"
    assert table.loc["DDPM (paper)"].tolist() == ["49.4", "46.2", "", ""]
    assert "DDPM (paper)" not in table4(long, {"a": {}, "b": {}}).index


def test_per_class_table_rows_are_classes_then_the_runs_miou():
    long = pd.DataFrame([dict(method=m, method_key=m.lower(), seed=s, class_id=c, **{"class": name}, iou=iou)
                         for m, base in (("DDPM", 0.5), ("Pixels", 0.2)) for s in (0, 1)
                         for c, name, iou in ((0, "sky", base + 0.1 * s), (2, "road", base))])
    table = per_class_table(long)
    assert list(table.index) == ["sky", "road", "mIoU"] and list(table.columns) == ["DDPM", "Pixels"]
    assert table.loc["sky", "DDPM"] == "55.0 ± 5.0" and table.loc["road", "Pixels"] == "20.0 ± 0.0"
    assert table.loc["mIoU", "DDPM"] == "52.5 ± 2.5"  # each run's mean over the classes, then over runs
