"""Tests of ddpmseg.synthetic: layout, formats, determinism, part visibility, colour ambiguity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ddpmseg.synthetic import CLASSES, IGNORE_LABEL, generate_dataset, render_sample

N_CLASSES = len(CLASSES)
FUR_PARTS = [CLASSES.index(name) for name in ("body", "head", "ear", "leg", "tail")]
PART_CLASSES = list(range(1, N_CLASSES))
MIN_VISIBLE_PIXELS = 20  # a part counts as visible in a 64x64 image with at least this many pixels


def _relative_files(root: Path) -> list[str]:
    """Sorted POSIX paths of all files under `root`, relative to it."""
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def _load_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, 3) float64 and labels (N, H, W) uint8 of real/<split>."""
    image_paths = sorted((root / "real" / split).glob("*.png"))
    images = np.stack([np.asarray(Image.open(path), dtype=np.float64) for path in image_paths])
    labels = np.stack([np.load(path.with_suffix(".npy"), allow_pickle=False) for path in image_paths])
    return images, labels


def _iou(predicted: np.ndarray, truth: np.ndarray, classes: list[int]) -> np.ndarray:
    """Intersection over union of each class in `classes`, (len(classes),) float64."""
    return np.array([((predicted == k) & (truth == k)).sum() / max(((predicted == k) | (truth == k)).sum(), 1)
                     for k in classes])


def _nearest_mean(pixels: np.ndarray, class_means: np.ndarray) -> np.ndarray:
    """Index of the nearest row of `class_means` (K, 3) for each RGB pixel of `pixels` (..., 3)."""
    return ((pixels[..., None, :] - class_means) ** 2).sum(axis=-1).argmin(axis=-1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny dataset: 5 unlabeled, 3 train, 3 test images at 64x64, seed 0."""
    root = tmp_path_factory.mktemp("tiny")
    generate_dataset(root, seed=0, n_unlabeled=5, n_train=3, n_test=3)
    return root


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """The default-sized labelled splits (20 train, 20 test) with 2 unlabeled images, seed 0."""
    root = tmp_path_factory.mktemp("labelled")
    generate_dataset(root, seed=0, n_unlabeled=2, n_train=20, n_test=20)
    return root


def test_class_list():
    assert CLASSES[0] == "background"
    assert len(CLASSES) >= 7 and len(set(CLASSES)) == len(CLASSES)
    assert IGNORE_LABEL == 255 and IGNORE_LABEL >= N_CLASSES


def test_layout_and_meta(tiny):
    expected = ["meta.json"]
    for split in ("test", "train"):
        expected += [f"real/{split}/{i:04d}.{ext}" for i in range(3) for ext in ("npy", "png")]
    expected += [f"unlabeled/{i:04d}.png" for i in range(5)]
    assert _relative_files(tiny) == sorted(expected)

    meta = json.loads((tiny / "meta.json").read_text())
    assert set(meta) == {"name", "classes", "ignore_label", "image_size", "seed", "counts", "notes"}
    assert meta["classes"] == CLASSES
    assert meta["ignore_label"] == 255
    assert meta["image_size"] == 64 and meta["seed"] == 0
    assert meta["counts"] == {"train": 3, "test": 3, "unlabeled": 5}


def test_out_dir_as_str_and_nested(tmp_path):
    out_dir = tmp_path / "a" / "b"
    generate_dataset(str(out_dir), seed=1, n_unlabeled=1, n_train=1, n_test=1, image_size=32)
    assert (out_dir / "meta.json").is_file()
    with Image.open(out_dir / "unlabeled" / "0000.png") as image:
        assert image.size == (32, 32)


def test_image_and_label_formats(tiny):
    for path in sorted(tiny.rglob("*.png")):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.mode == "RGB" and image.size == (64, 64)
    for path in sorted(tiny.rglob("*.npy")):
        label = np.load(path, allow_pickle=False)
        assert label.dtype == np.uint8 and label.shape == (64, 64)
        assert label.max() < N_CLASSES


def test_render_sample_shapes_and_determinism():
    image, label = render_sample(np.random.default_rng(3), 48)
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    assert label.shape == (48, 48) and label.dtype == np.uint8
    again_image, again_label = render_sample(np.random.default_rng(3), 48)
    np.testing.assert_array_equal(image, again_image)
    np.testing.assert_array_equal(label, again_label)
    # the image is anti-aliased and noisy, not a flat paint-by-number picture
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 1000


def test_same_arguments_give_identical_files(tiny, tmp_path):
    generate_dataset(tmp_path, seed=0, n_unlabeled=5, n_train=3, n_test=3)
    assert _relative_files(tmp_path) == _relative_files(tiny)
    for name in _relative_files(tiny):
        assert (tmp_path / name).read_bytes() == (tiny / name).read_bytes(), name


def test_splits_use_independent_streams(tiny, tmp_path):
    generate_dataset(tmp_path / "fewer", seed=0, n_unlabeled=1, n_train=3, n_test=3)
    for name in _relative_files(tiny / "real"):
        assert (tmp_path / "fewer" / "real" / name).read_bytes() == (tiny / "real" / name).read_bytes(), name

    generate_dataset(tmp_path / "other_seed", seed=1, n_unlabeled=1, n_train=3, n_test=3)
    for name in ("real/train/0000.png", "real/test/0000.png", "unlabeled/0000.png"):
        assert (tmp_path / "other_seed" / name).read_bytes() != (tiny / name).read_bytes()
    train, test, unlabeled = (np.asarray(Image.open(tiny / name)) for name in
                              ("real/train/0000.png", "real/test/0000.png", "unlabeled/0000.png"))
    assert not np.array_equal(train, test) and not np.array_equal(train, unlabeled)


def test_every_part_class_is_visible(labelled):
    _, labels = _load_split(labelled, "train")
    pixel_counts = np.stack([np.bincount(label.ravel(), minlength=N_CLASSES) for label in labels])
    assert pixel_counts.shape[1] == N_CLASSES  # no value outside the class range
    assert (pixel_counts[:, PART_CLASSES].sum(axis=0) > 0).all()
    # each part is visible in most images (seed 0: every part in all 20)
    visible_fraction = (pixel_counts[:, PART_CLASSES] >= MIN_VISIBLE_PIXELS).mean(axis=0)
    assert visible_fraction.min() >= 0.75, dict(zip(CLASSES[1:], visible_fraction))
    # the creature is a sizeable object but never fills the image (seed 0: 22% to 34% of pixels)
    foreground_fraction = 1.0 - pixel_counts[:, 0] / labels[0].size
    assert foreground_fraction.min() > 0.07 and foreground_fraction.max() < 0.4


def test_colour_alone_does_not_solve_it(labelled):
    """Nearest class-mean RGB classifiers fail on the fur parts.

    Global: means fitted on the train pixels, scored on the test split (seed 0: fur-part
    mIoU about 0.04). Per-image oracle: means fitted on each test image's own true labels
    (seed 0: fur-part mIoU about 0.11, fur-pixel accuracy among fur parts about 0.29).
    """
    train_images, train_labels = _load_split(labelled, "train")
    test_images, test_labels = _load_split(labelled, "test")

    class_means = np.stack([train_images[train_labels == k].mean(axis=0) for k in range(N_CLASSES)])
    global_fur_miou = _iou(_nearest_mean(test_images, class_means), test_labels, FUR_PARTS).mean()
    assert global_fur_miou < 0.1

    oracle_ious, oracle_accuracies = [], []
    for image, label in zip(test_images, test_labels):
        present = [k for k in range(N_CLASSES) if (label == k).any()]
        image_means = np.stack([image[label == k].mean(axis=0) for k in present])
        predicted = np.array(present)[_nearest_mean(image, image_means)]
        oracle_ious.append(_iou(predicted, label, FUR_PARTS))
        fur_pixels = np.isin(label, FUR_PARTS)
        present_fur = [k for k in FUR_PARTS if k in present]
        fur_means = np.stack([image[label == k].mean(axis=0) for k in present_fur])
        fur_predicted = np.array(present_fur)[_nearest_mean(image[fur_pixels], fur_means)]
        oracle_accuracies.append((fur_predicted == label[fur_pixels]).mean())
    assert np.mean(oracle_ious) < 0.3
    assert np.mean(oracle_accuracies) < 0.55
