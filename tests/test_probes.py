"""The probe sweep: its grid, one probe cell on real features, the small/large split, k-means."""

import csv

import numpy as np
import pytest
import zarr
from PIL import Image

from conftest import adm_stores, control_store
from ddpmseg.stores import ImageSubset, open_store
from ddpmseg.plots import kmeans_figure, probe_figure, small_large_figure
from ddpmseg.probes import class_area_split, kmeans_maps, probe_cell, probe_table
from ddpmseg.adm_flags import decoder_blocks
from ddpmseg.sweep import (
    choose_cells,
    describe_cells,
    kmeans_blocks,
    kmeans_steps,
    timestep_grid,
)

SETTINGS = dict(n_members=1, batch_size=64, lr=1e-3, max_epochs=2, early_stop_epoch=1, patience=50,
                min_class_pixels=1, buffer_mb=0.1, cache_mb=0.01)


def test_grid_follows_the_paper_and_scales():
    assert timestep_grid(1000) == list(range(0, 1000, 50))  # the paper's 0, 50, ..., 950
    assert timestep_grid(100) == list(range(0, 100, 5))
    assert len(decoder_blocks({"image_size": 256, "num_res_blocks": 2})) == 18  # the paper's ADM
    assert len(decoder_blocks({"image_size": 64, "num_res_blocks": 2})) == 12
    assert len(decoder_blocks({"image_size": 48, "num_res_blocks": 1, "channel_mult": "1,2,3"})) == 6
    assert kmeans_blocks(18) == [6, 8, 10, 12] and kmeans_blocks(12) == [4, 5, 7, 8]
    assert kmeans_steps(1000, timestep_grid(1000)) == [50, 200, 400, 600, 800]
    assert kmeans_steps(100, timestep_grid(100)) == [5, 20, 40, 60, 80]
    with pytest.raises(ValueError, match="image_size 48 has no default channel_mult"):
        decoder_blocks({"image_size": 48, "num_res_blocks": 1})


def test_auto_picks_the_best_cross_validated_cells():
    rows = [{"layer": f"b{b}", "depth": b, "timestep": str(t), "miou_cv": cv} for b, t, cv in
            [(0, 50, 0.3), (1, 50, 0.6), (2, 100, 0.6), (3, 0, 0.1), (1, 100, 0.5), (10, 50, 0.55)]]
    assert choose_cells(rows, 4) == [("b1", 50), ("b10", 50), ("b1", 100), ("b2", 100)]  # ties: smaller t first
    assert describe_cells([("b1", 50), ("b1", 100), ("b2", 100)], auto=True) == "auto (CV in train): t50: b1; t100: b1,2"
    assert describe_cells([("b0", 50), ("b1", 50)], auto=False) == "t50: b0,1"
    # a source without timesteps: the CSV leaves them empty; depth orders the layers, not their names
    rows = [{"layer": f"block{d}", "depth": d, "timestep": "", "miou_cv": cv} for d, cv in
            [(2, 0.4), (10, 0.7), (9, 0.2), (11, 0.6)]]
    assert choose_cells(rows, 2) == [("block10", None), ("block11", None)]
    assert describe_cells([("block10", None), ("block11", None)], auto=False) == "block10, block11"


def test_small_large_split_on_hand_made_masks():
    """4x4 masks, classes 0..3 plus ignore 255. Average areas: class 0 = (8+12)/2/16,
    class 1 = (4+0)/2/16 (absent in one image: 0 there), class 2 = (2+3)/2/16, class 3 = (1+0)/2/16."""
    a = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 3, 255]], np.uint8)
    b = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [2, 2, 2, 255]], np.uint8)
    split = class_area_split(np.stack([a, b]), ["bg", "one", "two", "three"], 255, 0.5)
    assert split["small"] == [1, 3] and split["large"] == [0, 2]
    assert split["mean_area"] == pytest.approx({"three": 1 / 32, "one": 4 / 32, "two": 5 / 32, "bg": 20 / 32})
    assert "the 2 of 4 classes with the smallest average area in the 2 annotated train images" in split["rule"]
    # the ignore label is never a class of the split, even when it is a class id (bedroom_28)
    assert class_area_split(np.stack([a, b]), ["bg", "one", "two", "three"], 0, 0.34)["small"] == [3]
    with pytest.raises(ValueError, match="leaves no small or no large class"):
        class_area_split(np.stack([a, b]), ["bg", "one", "two", "three"], 255, 0.2)


def test_probe_cell_scores_and_table_on_real_decoder_features(creatures32, tiny_model, tmp_path):
    """Two cells of the tiny UNet's decoder on rendered creatures: test and CV scores are
    mIoU fractions, the table has one row per cell, and a cell outscores chance."""
    images, labels = creatures32
    model, diffusion = tiny_model
    cells = []
    for split, part in (("train", slice(0, 8)), ("test", slice(8, 12))):
        adm_stores(model, diffusion, images[part], tmp_path / split, blocks=[0, 3], timesteps=[5])
    for block in (0, 3):
        train = open_store(str(tmp_path / "train" / f"features_b{block}_t5.zarr"))
        test = open_store(str(tmp_path / "test" / f"features_b{block}_t5.zarr"))
        scores = probe_cell(train, labels[:8], test, labels[8:], 7, 255, cv_folds=2, convention="paper",
                            vote="majority", seed=0, ensemble_settings=SETTINGS)
        assert 0 <= scores["miou_test"] <= 1 and 0 <= scores["miou_cv"] <= 1
        assert len(scores["iou_test"]) == len(scores["iou_cv"]) == 7
        assert scores["miou_test"] == pytest.approx(np.nanmean(scores["iou_test"]))
        cells.append({"layer": f"b{block}", "timestep": 5, "depth": block, "channels": train.shape[1], "resolution": train.shape[2], **scores})
    split = class_area_split(labels[:8], ["bg", "body", "head", "ear", "eye", "leg", "tail"], 255, 0.5)
    table = probe_table(cells, split)
    assert list(table.columns) == ["layer", "timestep", "depth", "channels", "resolution", "miou", "miou_small",
                                   "miou_large", "miou_cv"]
    assert table[["layer", "channels", "resolution"]].values.tolist() == [["b0", 64, 16], ["b3", 32, 32]]
    assert table[["miou", "miou_small", "miou_large", "miou_cv"]].stack().between(0, 1).all()
    assert table["miou"].max() > 1 / 7  # better than predicting one class everywhere
    probe_figure(table, "tiny", tmp_path / "fig2.png", marked=[("b3", 5)])
    small_large_figure(table, split, ["bg", "body", "head", "ear", "eye", "leg", "tail"], "tiny", tmp_path / "fig3.png")
    for name in ("fig2.png", "fig3.png"):
        assert Image.open(tmp_path / name).size[0] > 300


def test_cv_never_reads_the_test_store(creatures32, tmp_path):
    """The cross-validated score depends on the train split only: replacing the test features
    by noise changes the test score, not the CV score."""
    images, labels = creatures32
    train = control_store(images[:8], "patch", tmp_path / "train")
    test = control_store(images[8:], "patch", tmp_path / "test")
    noise = zarr.create_array(store=str(tmp_path / "noise.zarr"), shape=(4, 77, 32, 32), chunks=(1, 77, 32, 32),
                              dtype="float16")
    noise[:] = np.random.default_rng(0).normal(size=noise.shape).astype(np.float16)
    common = dict(cv_folds=4, convention="paper", vote="majority", seed=0, ensemble_settings=SETTINGS)
    real = probe_cell(train, labels[:8], test, labels[8:],
                      7, 255, **common)
    fake = probe_cell(train, labels[:8], noise, labels[8:], 7, 255, **common)
    assert fake["miou_cv"] == real["miou_cv"]
    assert fake["miou_test"] < real["miou_test"]


def test_kmeans_maps_and_figure_on_tiny_data(creatures32, tmp_path):
    images, _ = creatures32
    store = control_store(images[:3], "pixels", tmp_path)
    maps = kmeans_maps(store, 2, k=5, seed=0)
    assert maps.shape == (2, 32, 32) and set(np.unique(maps)) <= set(range(5))
    sizes = np.bincount(maps[0].ravel(), minlength=5)
    assert list(sizes) == sorted(sizes, reverse=True)  # cluster 0 is the largest
    subset = ImageSubset(store, [2])
    assert subset.shape == (1, 5, 32, 32) and np.array_equal(subset[0], store[2])
    kmeans_figure(images[:2], {("b0", 5): maps, ("b0", 20): maps, ("b1", 5): maps, ("b1", 20): maps},
                  {"b0": (5, 32), "b1": (5, 32)},
                  ["a", "b"], "tiny k-means", tmp_path / "fig4.png")
    width, height = Image.open(tmp_path / "fig4.png").size
    assert height > width  # 4 rows (2 images x 2 blocks) of 3 panels


def test_sweep_of_a_source_without_timesteps_draws_bars(tmp_path):
    """MAE-like cells (layers, no timesteps): the table keeps the forward order by depth, not by
    name, leaves the timestep empty, and Figures 2 and 3 become per-layer bars."""
    cells = [{"layer": f"block{d}", "timestep": None, "depth": d, "channels": 32, "resolution": 8,
              "iou_test": [0.9, 0.1 * d, 0.5, 0.2], "miou_test": 0.3 + 0.01 * d, "miou_cv": 0.2} for d in (10, 2, 9)]
    split = {"small": [1, 3], "large": [0, 2], "rule": "test split"}
    table = probe_table(cells, split)
    assert table["layer"].tolist() == ["block2", "block9", "block10"] and table["timestep"].isna().all()
    table.to_csv(tmp_path / "grid.csv", index=False)
    rows = list(csv.DictReader(open(tmp_path / "grid.csv")))
    assert choose_cells(rows, 1) == [("block2", None)]  # equal CV scores: the shallowest
    probe_figure(table, "tiny MAE", tmp_path / "fig2.png", marked=[("block9", None)])
    small_large_figure(table, split, ["bg", "one", "two", "three"], "tiny MAE", tmp_path / "fig3.png")
    width, height = Image.open(tmp_path / "fig2.png").size
    assert width > height > 200
    maps = np.zeros((2, 8, 8), int)
    kmeans_figure(np.zeros((2, 32, 32, 3), np.uint8), {("block9", None): maps, ("block10", None): maps},
                  {"block9": (32, 8), "block10": (32, 8)}, ["a", "b"], "tiny MAE k-means", tmp_path / "fig4.png")
    width, height = Image.open(tmp_path / "fig4.png").size
    assert width > height  # 2 rows (images) of 3 panels (image, 2 layers)
