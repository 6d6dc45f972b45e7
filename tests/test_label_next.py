"""Ranking the unlabeled pool (ddpmseg.label_next): the scores of an image, k-center greedy, the
four strategies, and images already labelled. Fast: small hand-made arrays."""

import numpy as np
import pandas as pd
import pytest
import torch

from ddpmseg.label_next import already_labelled, image_scores, k_center_greedy, pooled_features, rank


def test_image_scores_of_two_members_worked_by_hand():
    # 2 members, 2 pixels, 2 classes: pixel 0 agreed (.9/.1 both), pixel 1 disputed (1/0 against 0/1)
    p = torch.tensor([[[0.9, 0.1], [1.0, 0.0]], [[0.9, 0.1], [0.0, 1.0]]], dtype=torch.float64)
    scores = image_scores(p, ["bg", "fg"])
    assert scores["js_top10"] == pytest.approx(np.log(2))          # the top pixel: the disputed one
    assert scores["js_mean"] == pytest.approx(np.log(2) / 2)
    h = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))
    assert scores["entropy_mean"] == pytest.approx((h + np.log(2)) / 2)
    assert scores["margin_mean"] == pytest.approx(0.8 / 2)          # .9 - .1 and .5 - .5
    assert scores["area_bg"] == 1.0 and scores["area_fg"] == 0.0    # the soft vote's tie goes to class 0


def test_k_center_greedy_takes_the_farthest_and_duplicates_last():
    points = np.array([[1.0], [5.0], [5.0], [3.0], [10.0]])
    picks, distances = k_center_greedy(points, np.array([[0.0]]))
    assert picks == [4, 1, 3, 0, 2] and distances == [10.0, 5.0, 2.0, 1.0, 0.0]
    # nothing labelled: first the point nearest the mean (4.8), then the farthest from it
    assert k_center_greedy(points, np.empty((0, 1)), 2)[0] == [1, 4]


def pool(n_distinct: int = 4, n_copies: int = 6, seed: int = 0):
    """(scores, vectors): n_copies identical, most uncertain images, then n_distinct others."""
    rng = np.random.default_rng(seed)
    distinct = rng.normal(size=(n_distinct, 8))
    vectors = np.concatenate([np.repeat(rng.normal(size=(1, 8)), n_copies, axis=0), distinct])
    js = np.concatenate([np.full(n_copies, 0.9), rng.uniform(0.1, 0.5, n_distinct)])
    return pd.DataFrame({"image": [f"i{k}" for k in range(len(js))], "js_top10": js}), vectors.astype(np.float32)


@pytest.mark.parametrize("strategy", ["uncertainty", "diversity", "uncertainty+diversity", "random"])
def test_every_strategy_ranks_every_image_once_and_reproducibly(strategy):
    scores, vectors = pool()
    ranked = rank(scores, vectors, np.empty((0, 8)), strategy, count=3, seed=1)
    assert sorted(ranked["image"]) == sorted(scores["image"]) and ranked["rank"].tolist() == list(range(1, 11))
    assert ranked["picked"].tolist() == [True] * 3 + [False] * 7
    pd.testing.assert_frame_equal(ranked, rank(scores, vectors, np.empty((0, 8)), strategy, count=3, seed=1))


def test_uncertainty_ranks_in_score_order_and_diversity_never_picks_two_identical_images():
    scores, vectors = pool()
    ranked = rank(scores, vectors, np.empty((0, 8)), "uncertainty", count=3)
    assert ranked["js_top10"].is_monotonic_decreasing and ranked["priority"].equals(ranked["js_top10"])
    assert ranked["image"].head(3).tolist() == ["i0", "i1", "i2"]  # three copies of one image
    for strategy in ("diversity", "uncertainty+diversity"):
        picked = rank(scores, vectors, np.empty((0, 8)), strategy, count=4, candidates=2)
        chosen = vectors[[int(name[1:]) for name in picked.loc[picked.picked, "image"]]]
        assert len(np.unique(chosen, axis=0)) == 4, strategy
    # among the 2 x 3 most uncertain (six copies) only one is picked; the next picks leave that set
    both = rank(scores, vectors, np.empty((0, 8)), "uncertainty+diversity", count=3, candidates=3)
    assert sum(name in {f"i{k}" for k in range(6)} for name in both.loc[both.picked, "image"]) == 1


def test_random_depends_on_its_seed_only_and_labelled_images_come_last():
    scores, vectors = pool()
    orders = {s: rank(scores, vectors, np.empty((0, 8)), "random", 3, seed=s)["image"].tolist() for s in (0, 1)}
    assert orders[0] != orders[1]
    exclude = np.zeros(10, bool)
    exclude[[0, 7]] = True
    ranked = rank(scores, vectors, vectors[[0, 7]], "diversity", 3, exclude=exclude)
    assert ranked["image"].tail(2).tolist() == ["i0", "i7"] and not ranked["picked"].tail(2).any()
    assert ranked["already_labelled"].tolist() == [False] * 8 + [True] * 2
    # the copies of a labelled image are at distance 0: picked after every other image
    assert set(ranked["image"].iloc[3:8]) == {"i1", "i2", "i3", "i4", "i5"}
    assert (ranked["priority"].iloc[3:8] == 0).all()


def test_pooled_features_are_unit_vectors_weighing_each_store_alike():
    rng = np.random.default_rng(0)
    wide, narrow = rng.normal(size=(3, 64, 4, 4)) * 100, rng.normal(size=(3, 2, 8, 8))
    vectors = pooled_features([wide, narrow], 3)
    assert vectors.shape == (3, 66)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors[:, 64:], axis=1), np.sqrt(0.5), rtol=1e-5)


def test_already_labelled_finds_pixel_identical_images():
    rng = np.random.default_rng(0)
    pool_images = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    labelled = np.stack([pool_images[2], rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)])
    assert already_labelled(pool_images, labelled).tolist() == [False, False, True, False]


def test_the_loops_summary_is_each_arms_mean_and_spread_per_round():
    from ddpmseg.experiments.active_labelling import summary

    curve = pd.DataFrame({"round": [0, 1], "images": [1, 2], "regions": [np.nan, np.nan], "share": [0.1, 0.3],
                          "miou": [0.4, 0.6]})
    long = pd.concat([curve.assign(dataset="d", unit="image", strategy="random", seed=s, miou=curve["miou"] + 0.1 * s,
                                   share=curve["share"] + 0.02 * s) for s in (0, 1)])
    table = summary(long)
    assert table["share"].tolist() == [11.0, 31.0] and table["miou_mean"].tolist() == [45.0, 65.0]
    assert table["miou_std"].tolist() == [5.0, 5.0] and table["seeds"].tolist() == [2, 2]
