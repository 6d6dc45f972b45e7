"""The experiments' pieces: Table 4's subsets and table, the per-class table, Figure 6's corruptions."""

import pathlib
import zlib

import numpy as np
import pandas as pd
import pytest
import zarr

from ddpmseg.formats.paper import prepare_split
from ddpmseg.experiments.annotated import table3
from ddpmseg.experiments.budget import budget_summary, first_clear_lead
from ddpmseg.experiments import imagecorruptions_compat
from ddpmseg.experiments.robustness import (
    check_corruptions, corrupt_image, corrupt_images, corruption_names, robustness_summary,
)
from ddpmseg.ensemble import mask_outside
from ddpmseg.experiments.labels import label_subset, table4
from ddpmseg.experiments.per_class import per_class_table
from ddpmseg.splits import write_split_variant
from ddpmseg.synthetic import generate_dataset


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


def test_table3_columns_are_the_training_data_and_rows_have_cells_only_where_they_ran():
    runs = [("a", "DDPM", "real", 0.5), ("a", "DDPM", "real", 0.6), ("a", "DDPM", "ddpm", 0.4), ("a", "DDPM", "ddpm", 0.4),
            ("a", "DatasetDDPM", "ddpm", 0.3), ("a", "DatasetGAN (released)", "gan", 0.2), ("b", "DDPM", "real", 0.7),
            ("b", "DatasetDDPM", "real", 0.65)]
    long = pd.DataFrame([dict(dataset=d, method=m, train=t, miou=v) for d, m, t, v in runs])
    table = table3(long, {"a": {"DDPM": {"real": 49.4, "gan": 43.3}, "DatasetGAN": {"gan": 31.3}}, "b": {}})
    assert list(table.columns) == ["a: real", "a: ddpm", "a: gan", "b: real"]
    assert list(table.index) == ["DDPM", "DatasetDDPM", "DatasetGAN (released)", "DDPM (paper)", "DatasetGAN (paper)"]
    assert table.loc["DDPM"].tolist() == ["55.0 ± 5.0", "40.0 ± 0.0", "", "70.0 ± 0.0"]
    assert table.loc["DatasetDDPM"].tolist() == ["", "30.0 ± 0.0", "", "65.0 ± 0.0"]
    assert table.loc["DDPM (paper)"].tolist() == ["49.4", "", "43.3", ""]
    assert list(table3(long, {}).index) == ["DDPM", "DatasetDDPM", "DatasetGAN (released)"]


def test_per_class_table_rows_are_classes_then_the_runs_miou():
    long = pd.DataFrame([dict(method=m, method_key=m.lower(), seed=s, class_id=c, **{"class": name}, iou=iou)
                         for m, base in (("DDPM", 0.5), ("Pixels", 0.2)) for s in (0, 1)
                         for c, name, iou in ((0, "sky", base + 0.1 * s), (2, "road", base))])
    table = per_class_table(long)
    assert list(table.index) == ["sky", "road", "mIoU"] and list(table.columns) == ["DDPM", "Pixels"]
    assert table.loc["sky", "DDPM"] == "55.0 ± 5.0" and table.loc["road", "Pixels"] == "20.0 ± 0.0"
    assert table.loc["mIoU", "DDPM"] == "52.5 ± 2.5"  # each run's mean over the classes, then over runs


def test_corrupted_images_are_reproducible_differ_from_clean_and_grow_with_severity(tmp_path):
    generate_dataset(tmp_path / "source", n_unlabeled=1, n_train=1, n_test=3, image_size=32)
    prepare_split(tmp_path / "source", "test", tmp_path / "test.zarr", image_size=32)
    clean = zarr.open_group(tmp_path / "test.zarr", mode="r")
    images, ids = clean["images"][:], clean.attrs["image_ids"]
    change = {}
    for severity in (1, 5):
        noisy = corrupt_images(images, ids, "gaussian_noise", severity)
        assert noisy.dtype == np.uint8 and noisy.shape == images.shape
        assert (noisy == corrupt_images(images, ids, "gaussian_noise", severity)).all()  # seeded by names
        assert not (noisy[0] == noisy[1]).all() or not (images[0] == images[1]).all()
        change[severity] = np.abs(noisy.astype(int) - images).mean()
    assert 0 < change[1] < change[5]
    write_split_variant(tmp_path / "test.zarr", tmp_path / "test-gaussian_noise-5.zarr", noisy,
                        {"split": "test-gaussian_noise-5", "corruption": "gaussian_noise", "severity": 5})
    variant = zarr.open_group(tmp_path / "test-gaussian_noise-5.zarr", mode="r")
    assert (variant["labels"][:] == clean["labels"][:]).all() and (variant["images"][:] == noisy).all()
    assert variant.attrs["classes"] == clean.attrs["classes"] and variant.attrs["severity"] == 5
    with pytest.raises(ValueError):
        write_split_variant(tmp_path / "test.zarr", tmp_path / "bad.zarr", noisy[:2], {})
    assert not (tmp_path / "bad.zarr").exists()


@pytest.fixture(scope="module")
def face():
    """The first FASSEG test face at 64x64 (its JPEG bicubically resized), (64, 64, 3) uint8."""
    from PIL import Image

    folder = pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fasseg_face6" / "real" / "test"
    if not folder.is_dir():
        pytest.skip("shared fasseg_face6 dataset not available")
    image = Image.open(sorted(folder.glob("*.jpg"))[0]).convert("RGB")
    return np.asarray(image.resize((64, 64), Image.BICUBIC))


def test_all_19_corruptions_run_at_both_ends_and_change_the_image_more_at_severity_5(face):
    names = corruption_names()
    assert len(names) == imagecorruptions_compat.CORRUPTIONS == 19 and {"fog", "glass_blur", "gaussian_blur"} <= set(names)
    assert check_corruptions(face, names, severities=[1, 5]) == {"usable": names, "left_out": {}}
    for name in names:
        change = {}
        for severity in (1, 5):
            out = corrupt_image(face, name, severity, "face")
            assert out.dtype == np.uint8 and out.shape == face.shape
            change[severity] = np.abs(out.astype(int) - face).mean()  # grey levels, 0-255
        assert 1 < change[1] < change[5] < 128, (name, change)


@pytest.mark.parametrize("name", ["gaussian_blur", "glass_blur"])
def test_repaired_blurs_blur_each_channel_alone_as_multichannel_did(name):
    """Red structure on zero green and blue: a blur over each channel keeps green and blue at 0
    (a 3-D blur, what a lost channel axis would do, would spread red into them)."""
    red = np.zeros((32, 32, 3), np.uint8)
    red[8:24, 8:24, 0] = 255
    for severity in (1, 5):
        out = corrupt_image(red, name, severity, "red")
        assert (out[..., 1:] == 0).all() and 0 < out[..., 0].mean() < 255
        assert out[..., 0][red[..., 0] == 0].max() > 0  # red spread in space


def test_repaired_gaussian_blur_is_scipys_gaussian_filter_at_the_packages_sigmas(face):
    from scipy.ndimage import gaussian_filter

    for severity, sigma in zip(range(1, 6), [1, 2, 3, 4, 6]):  # the package's constants
        reference = np.clip(gaussian_filter(face / 255.0, sigma=(sigma, sigma, 0), mode="nearest"), 0, 1) * 255
        out = corrupt_image(face, "gaussian_blur", severity, "face")
        assert np.abs(out - np.rint(reference)).max() <= 1


def test_repaired_fog_adds_the_packages_plasma_map_by_its_formula(face):
    for severity, (strength, decay) in zip((1, 5), [(1.5, 2), (3.0, 1.4)]):  # the package's constants
        out = corrupt_image(face, "fog", severity, "face")
        np.random.seed(zlib.crc32(f"fog/{severity}/face".encode()))  # the seed corrupt_image gives it
        plasma = imagecorruptions_compat.plasma_fractal(64, decay)
        assert plasma.shape == (64, 64) and plasma.dtype == np.float64 and plasma.min() == 0 and plasma.max() == 1
        x = face / 255.0
        expected = np.clip((x + strength * plasma[..., None]) * x.max() / (x.max() + strength), 0, 1) * 255
        assert np.abs(out - np.rint(expected)).max() <= 1


def test_check_corruptions_keeps_what_works_and_says_why_the_rest_is_left_out():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    result = check_corruptions(image, ["contrast", "no_such_corruption", "brightness"], severities=[1, 5])
    assert result["usable"] == ["contrast", "brightness"]
    assert list(result["left_out"]) == ["no_such_corruption"] and "Error: " in result["left_out"]["no_such_corruption"]


def test_robustness_summary_means_over_corruptions_per_run_then_over_runs():
    rows = [dict(dataset="a", method="DDPM", method_key="ddpm", seed=s, corruption=c, severity=sev, miou=v)
            for s, shift in ((0, 0.0), (1, 0.1)) for c, sev, v in
            (("none", 0, 0.6), ("fog", 1, 0.4), ("snow", 1, 0.2), ("fog", 5, 0.1), ("snow", 5, 0.1))
            for v in [v + shift]]
    summary = robustness_summary(pd.DataFrame(rows)).set_index("severity")
    assert summary.loc[0, "miou"] == pytest.approx(65.0) and summary.loc[1, "miou"] == pytest.approx(35.0)
    assert summary.loc[1, "std"] == pytest.approx(5.0) and summary.loc[5, "corruptions"] == 2


def test_budget_summary_and_the_first_clear_lead():
    rows = [dict(method="DDPM", steps=n, minutes=n / 100, seed=s, miou=v + 0.01 * s)
            for n, v in ((100, 0.40), (250, 0.50), (500, 0.60)) for s in (0, 1)]
    rows += [dict(method="Pixels", steps=None, minutes=None, seed=s, miou=0.50 + 0.01 * s) for s in (0, 1)]
    summary = budget_summary(pd.DataFrame(rows))
    assert summary["steps"].tolist()[:3] == [100, 250, 500] and pd.isna(summary["steps"].iloc[3])
    assert summary["mean"].tolist() == [40.5, 50.5, 60.5, 50.5] and summary["std"].tolist() == [0.5] * 4
    assert first_clear_lead(summary, "DDPM") == 500  # at 250 it only ties the line
    assert first_clear_lead(summary[summary["steps"].fillna(0) < 500], "DDPM") is None
