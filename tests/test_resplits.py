"""Random re-splits (`evaluation.resplits`): the partitions, stores read across both fixed splits,
and the re-split run equal to Table 2's on the fixed split."""
import numpy as np
import pandas as pd

from conftest import control_store
from ddpmseg.ensemble import train_ensemble
from ddpmseg.experiments.resplits import resplit, score_resplit
from ddpmseg.metrics import mean_iou
from ddpmseg.predict import predict_images
from ddpmseg.stores import ImageSubset
from ddpmseg.tables import resplit_rows

SETTINGS = dict(n_members=2, batch_size=64, lr=1e-3, max_epochs=1, early_stop_epoch=1, patience=50,
                min_class_pixels=20, buffer_mb=0.1, cache_mb=0.01)


def test_resplits_are_seeded_partitions_with_the_train_splits_size():
    splits = [resplit(20, 44, r) for r in range(5)]
    for train, test in splits:
        assert len(train) == 20 and len(test) == 44 and sorted(train + test) == list(range(64))
    assert len({tuple(train) for train, _ in splits}) == 5  # each split its own
    assert resplit(20, 44, 3) == splits[3]  # the same r, the same split, on any machine


def test_a_view_across_two_stores_reads_the_images_of_both(creatures32, tmp_path):
    images, _ = creatures32
    train, test = control_store(images[:8], "pixels", tmp_path / "a"), control_store(images[8:], "pixels", tmp_path / "b")
    view = ImageSubset([train, test], [9, 0, 7, 11])
    assert view.shape == (4, *train.shape[1:])
    for k, (store, index) in enumerate([(test, 1), (train, 0), (train, 7), (test, 3)]):
        np.testing.assert_array_equal(view[k], store[index])


def test_the_fixed_split_as_a_resplit_gives_table_2s_scores(creatures32, tmp_path):
    """Training on the train split's images and scoring the test split's, through the views over
    both stores, is Table 2's run: the same ensemble, the same mIoU, for every seed."""
    images, labels = creatures32
    train = control_store(images[:8], "patch", tmp_path / "train")
    test = control_store(images[8:], "patch", tmp_path / "test")
    scores = score_resplit([train], [test], labels, list(range(8)), list(range(8, 12)), seeds=[0, 5],
                           settings=SETTINGS, runs_own_stores=False, num_classes=7, ignore_label=255, vote="majority",
                           convention="paper")
    models, _ = train_ensemble([train], labels[:8], 7, 255, seeds=[0, 5], **SETTINGS)
    expected = [mean_iou(majority, labels[8:], 7, 255) for majority, _, _ in predict_images(models, [test], 4, 32)]
    assert list(scores["seed"]) == [0, 5] and (scores["test_images"] == 4).all()
    np.testing.assert_allclose(scores["miou"], expected)
    np.testing.assert_allclose(scores["miou"], scores["miou_majority"])
    other = score_resplit([train], [test], labels, *resplit(8, 4, 0), seeds=[0], settings=SETTINGS,
                          runs_own_stores=False, num_classes=7, ignore_label=255, vote="soft", convention="paper")
    assert 0 < other["miou"][0] < 1 and other["miou"][0] == other["miou_soft"][0]


def test_table_2s_resplit_rows_are_mean_and_std_over_splits_and_seeds():
    long = pd.DataFrame([dict(dataset=d, method=m, resplit=r, seed=s, miou=0.5 + 0.1 * r + 0.01 * s)
                         for d in ("faces", "people") for m in ("DDPM", "Pixels") for r in range(3) for s in range(2)])
    rows = resplit_rows(long)
    assert list(rows.index) == ["DDPM (re-splits)", "Pixels (re-splits)", "Re-splits (± over)"]
    values = 100 * (0.5 + 0.1 * np.arange(3)[:, None] + 0.01 * np.arange(2)).ravel()
    assert rows.loc["DDPM (re-splits)", "faces"] == f"{values.mean():.1f} ± {values.std():.1f}"
    assert rows.loc["Re-splits (± over)", "people"] == "3 random splits x 2 MLP seeds"
