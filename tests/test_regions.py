"""Regions (ddpmseg.regions), their scores and ranking (ddpmseg.label_regions), and the region
arm of the simulated loop (ddpmseg.experiments.active_labelling): real FASSEG photos, hand-made
scores."""

import pathlib

import numpy as np
import pandas as pd
import pytest
import zarr
from PIL import Image

from ddpmseg.experiments.active_labelling import asked_pixels, region_costs, simulate_regions
from ddpmseg.label_regions import class_weights, rank_regions, region_scores
from ddpmseg.regions import cut, photo_pixels, read_regions, write_regions
from ddpmseg.splits import write_split

FASSEG = pathlib.Path(__file__).resolve().parents[2] / "shared/datasets/fasseg_face6"
CLASSES = ["background", "skin", "hair", "eyes", "nose", "mouth"]


def fasseg_split(tmp_path, n=4, width=None):
    """A prepared split of the first n FASSEG training photos (cut to ``width`` columns, so
    `non_square: pad` pads them) at 64 pixels."""
    items = []
    for path in sorted((FASSEG / "real/train").glob("*.jpg"))[:n]:
        photo = Image.open(path).convert("RGB")
        if width:
            photo = photo.crop((0, 0, width, photo.height))
        photo.save(tmp_path / path.name)
        items.append((path.stem, tmp_path / path.name, path.with_suffix(".npy")))
    labels = [np.load(label)[:, : width or None] for _, _, label in items]
    write_split(tmp_path / "train.zarr", "train", items, lambda i: labels[i], tmp_path, CLASSES, 255, 64, "pad",
                "lanczos")
    return tmp_path / "train.zarr"


def is_connected(mask: np.ndarray) -> bool:
    from skimage.measure import label
    return label(mask, connectivity=1).max() == 1


@pytest.mark.parametrize("method", ["slic", "grid"])
def test_regions_are_connected_exclude_the_padding_and_repeat(tmp_path, method):
    split = fasseg_split(tmp_path, n=3, width=90)  # 128 x 90 photos: 64 x 45 of photo, padding left and right
    write_regions(split, tmp_path / "a.zarr", method, 8)
    write_regions(split, tmp_path / "b.zarr", method, 8)
    regions = read_regions(tmp_path / "a.zarr")
    assert regions.shape == (3, 64, 64) and regions.dtype == np.int32
    np.testing.assert_array_equal(regions, read_regions(tmp_path / "b.zarr"))  # the same on a rerun
    photo = photo_pixels([128, 90], 64, "pad", "lanczos")
    assert photo.sum() == 64 * 45 and not photo[:, :9].any() and not photo[:, -10:].any()
    labels = zarr.open_group(str(split), mode="r")["labels"][:]
    for cells, label in zip(regions, labels):
        assert np.all(cells[~photo] == -1) and np.all(cells[photo] >= 0)
        assert np.all(label[~photo] == 255)  # the same geometry as the labels' padding
        ids = np.unique(cells[photo])
        np.testing.assert_array_equal(ids, np.arange(len(ids)))
        assert all(is_connected(cells == r) for r in ids)
        if method == "slic":  # about (64 / 8)^2 * 45 / 64 regions of the photo
            assert 25 <= len(ids) <= 60
    counts = zarr.open_group(str(tmp_path / "a.zarr"), mode="r").attrs["counts"]
    assert counts == [int(c.max()) + 1 for c in regions]


def test_a_split_segment_becomes_two_regions():
    image = np.zeros((8, 8, 3), np.uint8)
    photo = np.ones((8, 8), bool)
    photo[:, 3:5] = False  # a padding band cuts every 8 x 8 cell in two
    cells = cut(image, photo, "grid", 8)
    assert cells.max() == 1 and np.all(cells[:, :3] == 0) and np.all(cells[:, 5:] == 1) and np.all(cells[:, 3:5] == -1)


def test_region_scores_worked_by_hand():
    js = np.array([[0.2, 0.4], [0.6, 0.0]])
    predicted = np.array([[0, 1], [1, 0]])
    regions = np.array([[0, 0], [1, -1]], np.int32)
    table = region_scores(js, predicted, regions, ["bg", "fg"])
    assert table["region_pixels"].tolist() == [2, 1]
    assert table["js_mean"].tolist() == pytest.approx([0.3, 0.6])
    assert table["js_bg"].tolist() == pytest.approx([0.1, 0.0]) and table["js_fg"].tolist() == pytest.approx([0.2, 0.6])
    assert table["area_bg"].tolist() == [0.5, 0.0] and table["area_fg"].tolist() == [0.5, 1.0]


def candidates():
    """Six regions of three images, hand-scored: image 0 holds the three most uncertain."""
    return pd.DataFrame({"image": [0, 0, 0, 1, 1, 2], "region": [0, 1, 2, 0, 1, 0],
                         "region_pixels": [10, 10, 10, 10, 10, 10], "labelled": [10, 5, 10, 10, 0, 10],
                         "js_mean": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
                         "js_bg": [0.9, 0.8, 0.7, 0.0, 0.5, 0.0], "js_fg": [0.0, 0.0, 0.0, 0.6, 0.0, 0.4],
                         "area_bg": [1.0, 1.0, 1.0, 0.0, 1.0, 0.5], "area_fg": [0.0, 0.0, 0.0, 1.0, 0.0, 0.5]})


def test_region_ranking_takes_the_highest_and_respects_per_image():
    table = candidates()
    ranked = rank_regions(table, "uncertainty", ["bg", "fg"], per_image=2, count=3)
    assert ranked["js_mean"].tolist() == [0.9, 0.8, 0.7, 0.6, 0.5, 0.4] and ranked["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    picked = ranked[ranked["picked"]]
    assert list(zip(picked["image"], picked["region"])) == [(0, 0), (0, 1), (1, 0)]  # (0, 2): image 0 is full
    # a pixel budget: picks until their cost reaches it, the crossing region included
    ranked = rank_regions(table, "uncertainty", ["bg", "fg"], per_image=5, budget=12, cost="labelled")
    assert ranked["picked"].tolist() == [True, True, False, False, False, False]
    ranked = rank_regions(table, "random", ["bg", "fg"], per_image=1, count=10, seed=3)
    assert ranked["picked"].sum() == 3 and ranked.loc[ranked["picked"], "image"].is_unique
    again = rank_regions(table, "random", ["bg", "fg"], per_image=1, count=10, seed=3)
    assert ranked.index.tolist() == again.index.tolist()
    with pytest.raises(ValueError, match="balanced"):
        rank_regions(table, "entropy", ["bg", "fg"], per_image=1, count=1)


def test_balanced_ranking_weighs_the_rare_predicted_class():
    table = candidates()
    # the soft vote gives fg 10 + 5 = 15 of the 60 pixels: w_bg = 1 / sqrt(45 / 60), w_fg = 1 / sqrt(15 / 60) = 2
    np.testing.assert_allclose(class_weights(table, ["bg", "fg"]), [1 / np.sqrt(0.75), 2.0])
    ranked = rank_regions(table, "balanced", ["bg", "fg"], per_image=5, count=2)
    # region (1, 0): 0.6 of fg -> 1.2, ahead of (0, 0): 0.9 of bg -> 1.04
    assert list(zip(ranked["image"], ranked["region"]))[:2] == [(1, 0), (0, 0)]
    assert ranked["priority"].iloc[0] == pytest.approx(1.2)


def test_revealing_regions_copies_exactly_their_ground_truth():
    from ddpmseg.experiments.active_labelling import _Loop

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 6, (2, 16, 16)).astype(np.uint8)
    truth[1, :4] = 255
    regions = np.stack([cut(np.zeros((16, 16, 3), np.uint8), np.ones((16, 16), bool), "grid", 4)] * 2)
    asked = asked_pixels(regions, [(1, 0), (1, 5), (0, 15)])
    by_hand = np.zeros_like(truth, bool)
    by_hand[1, :4, :4] = by_hand[1, 4:8, 4:8] = by_hand[0, 12:, 12:] = True
    np.testing.assert_array_equal(asked, by_hand)
    loop = _Loop(None, truth, None, None, ["c"] * 6, 255, {"min_class_pixels": 0}, "soft", "paper", 0, "cpu")
    revealed = loop.revealed(asked)
    np.testing.assert_array_equal(revealed[asked], truth[asked])
    assert np.all(revealed[~asked] == 255)
    row = loop.row(0, asked, 3, 0.5, ["1:0"])
    assert row["labelled_pixels"] == 16 + 16 and row["images"] == 2  # image 1's first region is all ignore
    assert row["share"] == 32 / np.count_nonzero(truth != 255)
    costs = region_costs(regions, truth, 255)
    assert len(costs) == 32 - 4  # image 1's first row of regions has no label
    assert costs["labelled"].sum() == np.count_nonzero(truth != 255)


def test_the_region_arm_reveals_regions_up_to_each_share(tmp_path):
    """FASSEG photos with the Pixels control's features: each round's labelled pixels reach its
    share, the count equals one by hand, every strategy of a seed starts from the same regions."""
    from conftest import control_store
    from ddpmseg.experiments.active_labelling import _Loop

    split = zarr.open_group(str(fasseg_split(tmp_path, n=4)), mode="r")
    images, labels = split["images"][:], split["labels"][:]
    store = control_store(images, "pixels", tmp_path / "features")
    write_regions(tmp_path / "train.zarr", tmp_path / "regions.zarr", "slic", 8)
    regions = read_regions(tmp_path / "regions.zarr")
    ensemble = dict(batch_size=64, lr=1e-3, max_epochs=2, early_stop_epoch=1, patience=50, min_class_pixels=20,
                    buffer_mb=0.1, cache_mb=0.01, n_members=2)
    runs = {strategy: simulate_regions([store], labels, [store], labels, regions, shares=[0.02, 0.1, 0.3],
                                       strategy=strategy, seed=0, per_image=12, classes=CLASSES, ignore_label=255,
                                       ensemble=ensemble, vote="majority", convention="paper")
            for strategy in ("uncertainty", "balanced", "random")}
    total = np.count_nonzero(labels != 255)
    for strategy, run in runs.items():
        assert run["round"].tolist() == [0, 1, 2]
        assert (run["share"] >= [0.02, 0.1, 0.3]).all() and (run["share"] < [0.06, 0.15, 0.35]).all(), strategy
        assert run["labelled_pixels"].tolist() == [round(s * total) for s in run["share"]]
        added = [a.split(";") for a in run["added"]]
        assert sum(map(len, added)) == run["regions"].iloc[-1] and len(set(sum(added, []))) == run["regions"].iloc[-1]
        assert all(max(pd.Series([p.split(":")[0] for p in a]).value_counts()) <= 12 for a in added[1:])
        assert run["miou"].between(0, 1).all()
    assert runs["uncertainty"].loc[0, "added"] == runs["random"].loc[0, "added"] == runs["balanced"].loc[0, "added"]
    assert runs["uncertainty"].loc[0, "miou"] == runs["random"].loc[0, "miou"]  # the same start, the same ensemble
    assert runs["uncertainty"].loc[2, "added"] != runs["random"].loc[2, "added"]
    # what the loop trains on in the last round: exactly the asked regions' cleaned ground truth
    loop = _Loop([store], labels, [store], labels, CLASSES, 255, ensemble, "majority", "paper", 0, "cpu")
    pairs = [tuple(map(int, p.split(":"))) for a in runs["random"]["added"] for p in a.split(";")]
    asked = asked_pixels(regions, pairs)
    assert np.count_nonzero(asked & (labels != 255)) == runs["random"]["labelled_pixels"].iloc[-1]  # by hand
    revealed = loop.revealed(asked)
    assert np.all(revealed[~asked] == 255) and np.array_equal(revealed[asked], loop.truth[asked])


def test_the_plans_strategies_are_the_rankers():
    """The torch-free plan lists each unit's strategies itself: the same names as the rankers'."""
    from ddpmseg.label_next import STRATEGIES
    from ddpmseg.label_regions import REGION_STRATEGIES
    from ddpmseg.plan.label_next import UNIT_STRATEGIES

    assert sorted(UNIT_STRATEGIES["image"]) == sorted(STRATEGIES)
    assert sorted(UNIT_STRATEGIES["region"]) == sorted(REGION_STRATEGIES)
