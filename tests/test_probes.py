"""The probe sweep: its grid, one probe cell on real features, the small/large split, k-means."""

import numpy as np
import pytest
import zarr
from PIL import Image

from ddpmseg.features import extract_decoder_features, open_store, write_control_features
from ddpmseg.plots import kmeans_figure, probe_figure, small_large_figure
from ddpmseg.probes import ImageSubset, class_area_split, kmeans_maps, probe_cell, probe_table
from ddpmseg.sweep import (
    choose_cells,
    decoder_block_count,
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
    assert decoder_block_count({"image_size": 256, "num_res_blocks": 2}) == 18  # the paper's ADM
    assert decoder_block_count({"image_size": 64, "num_res_blocks": 2}) == 12
    assert decoder_block_count({"image_size": 48, "num_res_blocks": 1, "channel_mult": "1,2,3"}) == 6
    assert kmeans_blocks(18) == [6, 8, 10, 12] and kmeans_blocks(12) == [4, 5, 7, 8]
    assert kmeans_steps(1000, timestep_grid(1000)) == [50, 200, 400, 600, 800]
    assert kmeans_steps(100, timestep_grid(100)) == [5, 20, 40, 60, 80]
    with pytest.raises(ValueError, match="image_size 48 has no default channel_mult"):
        decoder_block_count({"image_size": 48, "num_res_blocks": 1})


def test_auto_picks_the_best_cross_validated_cells():
    rows = [{"block": b, "timestep": t, "miou_cv": cv} for b, t, cv in
            [(0, 50, 0.3), (1, 50, 0.6), (2, 100, 0.6), (3, 0, 0.1), (1, 100, 0.5)]]
    assert choose_cells(rows, 3) == [(1, 50), (1, 100), (2, 100)]  # ties: smaller t first
    assert describe_cells([(1, 50), (1, 100), (2, 100)], auto=True) == "auto (CV in train): t50: b1; t100: b1,2"
    assert describe_cells([(0, 50), (1, 50)], auto=False) == "t50: b0,1"


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
        extract_decoder_features(model, diffusion, images[part], list(range(len(images[part]))), blocks=[0, 3],
                                 timesteps=[5], noise_seed=0, out_dir=tmp_path / split, attrs={})
    for block in (0, 3):
        train = open_store(str(tmp_path / "train" / f"features_b{block}_t5.zarr"))
        test = open_store(str(tmp_path / "test" / f"features_b{block}_t5.zarr"))
        scores = probe_cell(train, labels[:8], test, labels[8:], 7, 255, cv_folds=2, convention="paper",
                            vote="majority", seed=0, ensemble_settings=SETTINGS)
        assert 0 <= scores["miou_test"] <= 1 and 0 <= scores["miou_cv"] <= 1
        assert len(scores["iou_test"]) == len(scores["iou_cv"]) == 7
        assert scores["miou_test"] == pytest.approx(np.nanmean(scores["iou_test"]))
        cells.append({"block": block, "timestep": 5, "channels": train.shape[1], "resolution": train.shape[2], **scores})
    split = class_area_split(labels[:8], ["bg", "body", "head", "ear", "eye", "leg", "tail"], 255, 0.5)
    table = probe_table(cells, split)
    assert list(table.columns) == ["block", "timestep", "channels", "resolution", "miou", "miou_small",
                                   "miou_large", "miou_cv"]
    assert table[["block", "channels", "resolution"]].values.tolist() == [[0, 64, 16], [3, 32, 32]]
    assert table[["miou", "miou_small", "miou_large", "miou_cv"]].stack().between(0, 1).all()
    assert table["miou"].max() > 1 / 7  # better than predicting one class everywhere
    probe_figure(table, "tiny", tmp_path / "fig2.png", marked=[(3, 5)])
    small_large_figure(table, split, ["bg", "body", "head", "ear", "eye", "leg", "tail"], "tiny", tmp_path / "fig3.png")
    for name in ("fig2.png", "fig3.png"):
        assert Image.open(tmp_path / name).size[0] > 300


def test_cv_never_reads_the_test_store(creatures32, tmp_path):
    """The cross-validated score depends on the train split only: replacing the test features
    by noise changes the test score, not the CV score."""
    images, labels = creatures32
    write_control_features(images[:8], list(range(8)), "patch", tmp_path / "train.zarr", {})
    write_control_features(images[8:], list(range(4)), "patch", tmp_path / "test.zarr", {})
    train = open_store(str(tmp_path / "train.zarr"))
    noise = zarr.create_array(store=str(tmp_path / "noise.zarr"), shape=(4, 77, 32, 32), chunks=(1, 77, 32, 32),
                              dtype="float16")
    noise[:] = np.random.default_rng(0).normal(size=noise.shape).astype(np.float16)
    common = dict(cv_folds=4, convention="paper", vote="majority", seed=0, ensemble_settings=SETTINGS)
    real = probe_cell(train, labels[:8], open_store(str(tmp_path / "test.zarr")), labels[8:],
                      7, 255, **common)
    fake = probe_cell(train, labels[:8], noise, labels[8:], 7, 255, **common)
    assert fake["miou_cv"] == real["miou_cv"]
    assert fake["miou_test"] < real["miou_test"]


def test_kmeans_maps_and_figure_on_tiny_data(creatures32, tmp_path):
    images, _ = creatures32
    write_control_features(images[:3], [0, 1, 2], "pixels", tmp_path / "pixels.zarr", {})
    store = open_store(str(tmp_path / "pixels.zarr"))
    maps = kmeans_maps(store, 2, k=5, seed=0)
    assert maps.shape == (2, 32, 32) and set(np.unique(maps)) <= set(range(5))
    sizes = np.bincount(maps[0].ravel(), minlength=5)
    assert list(sizes) == sorted(sizes, reverse=True)  # cluster 0 is the largest
    subset = ImageSubset(store, [2])
    assert subset.shape == (1, 5, 32, 32) and np.array_equal(subset[0], store[2])
    kmeans_figure(images[:2], {(0, 5): maps, (0, 20): maps, (1, 5): maps, (1, 20): maps}, {0: (5, 32), 1: (5, 32)},
                  ["a", "b"], "tiny k-means", tmp_path / "fig4.png")
    width, height = Image.open(tmp_path / "fig4.png").size
    assert height > width  # 4 rows (2 images x 2 blocks) of 3 panels
