"""Tests for the paper's layout (ddpmseg.formats.paper) and what it reads and writes with
(ddpmseg.datasets, .resizing, .splits, .digests): validation errors on tiny hand-made datasets,
square geometry (pad / crop), nearest label resizing, and Zarr output on fasseg_face6."""

import json
import pathlib

import numpy as np
import pytest
import zarr
from PIL import Image

from ddpmseg.datasets import load_image, load_label
from ddpmseg.digests import manifest_digest
from ddpmseg.errors import DatasetError
from ddpmseg.formats.detect import detect
from ddpmseg.formats.paper import PAPER, list_split, prepare_split, read_meta, validate_dataset
from ddpmseg.formats.prepare import prepare_dataset
from ddpmseg.resizing import opencv_nearest_indices
from ddpmseg.splits import read_original_labels, write_empty_split

FASSEG = pathlib.Path("/work/shared/datasets/fasseg_face6")
CLASSES = ["background", "a", "b", "c"]


def _image(path: pathlib.Path, width: int = 16, height: int = 16, seed: int = 0) -> np.ndarray:
    """Write a random RGB image (format from the suffix) and return its pixels (H, W, 3) uint8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def _label(path: pathlib.Path, width: int = 16, height: int = 16, seed: int = 0, dtype=np.uint8) -> np.ndarray:
    """Write a label (H, W) with class ids 0..3 and a few ignore (255) pixels; return it."""
    label = np.random.default_rng(seed).integers(0, len(CLASSES), (height, width)).astype(dtype)
    label[0, :3] = 255
    np.save(path, label)
    return label


def _dataset(root: pathlib.Path, n_train: int = 2, n_test: int = 2, n_unlabeled: int = 2) -> pathlib.Path:
    """A valid tiny dataset: 16x16 PNG/JPG images, uint8 labels, 4 classes, ignore 255."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta.json").write_text(json.dumps({"name": "tiny", "classes": CLASSES, "ignore_label": 255,
                                                "notes": "ignored"}))
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            suffix = ".png" if i % 2 == 0 else ".jpg"
            _image(root / "real" / split / f"{i:03d}{suffix}", seed=i)
            _label(root / "real" / split / f"{i:03d}.npy", seed=i)
    for i in range(n_unlabeled):
        _image(root / "unlabeled" / f"u{i:03d}.jpeg", seed=100 + i)
    return root


def _problems(root, **kwargs) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        validate_dataset(root, **kwargs)
    return info.value


def test_valid_tiny_dataset(tmp_path):
    root = _dataset(tmp_path / "ds")
    summary = validate_dataset(root)
    assert summary == {"counts": {"train": 2, "test": 2, "unlabeled": 2}, "num_classes": 4,
                       "classes": CLASSES, "ignore_label": 255}
    assert validate_dataset(root, max_images={"train": 1})["counts"]["train"] == 1


def test_read_meta(tmp_path):
    root = _dataset(tmp_path / "ds")
    assert read_meta(root) == {"classes": CLASSES, "ignore_label": 255, "num_classes": 4, "name": "tiny"}
    (root / "meta.json").write_text(json.dumps({"classes": CLASSES, "ignore_label": 255}))
    assert read_meta(root)["name"] == "ds"


def test_paper_layout_without_meta_json_takes_classes_from_the_config(tmp_path):
    """The paper's archive has no meta.json: the config's classes and ignore label stand in."""
    root = _dataset(tmp_path / "ds")
    (root / "meta.json").unlink()
    with pytest.raises(DatasetError, match=r"meta\.json: file not found.*or set the dataset's `classes` and `ignore_label`"):
        validate_dataset(root)
    summary = validate_dataset(root, classes=CLASSES, ignore_label=255)
    assert summary["classes"] == CLASSES and summary["counts"]["train"] == 2
    with pytest.raises(DatasetError, match=r"config \(classes\): 'classes' names \['a'\] more than once"):
        validate_dataset(root, classes=["a", "a"], ignore_label=255)
    with pytest.raises(DatasetError, match=r"label has values \[3\] outside 0..2"):  # the config's list is checked
        validate_dataset(root, classes=CLASSES[:3], ignore_label=255)


def test_read_meta_reports_all_bad_keys(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"classes": [], "ignore_label": 300}))
    with pytest.raises(DatasetError) as info:
        read_meta(tmp_path)
    assert len(info.value.problems) == 2
    assert "'classes'" in str(info.value) and "'ignore_label'" in str(info.value)
    assert str(tmp_path / "meta.json") in str(info.value)

    for bad in ({"classes": ["a", 1], "ignore_label": 255}, {"classes": ["a"], "ignore_label": True},
                {"classes": ["a", "a"], "ignore_label": 255}):
        (tmp_path / "meta.json").write_text(json.dumps(bad))
        with pytest.raises(DatasetError):
            read_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"classes": ["unlabeled", "b"], "ignore_label": 0}))
    assert read_meta(tmp_path)["ignore_label"] == 0  # a class id may be the ignore label (paper's bedroom_28)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(DatasetError, match="JSON"):
        read_meta(tmp_path)


def test_missing_meta(tmp_path):
    root = _dataset(tmp_path / "ds")
    (root / "meta.json").unlink()
    error = _problems(root)
    assert f"{root / 'meta.json'}: file not found" in str(error)


def test_list_split_recursive_sorted_and_limited(tmp_path):
    root = _dataset(tmp_path / "ds", n_train=3)
    _image(root / "real" / "train" / "sub" / "a.png")
    _label(root / "real" / "train" / "sub" / "a.npy")
    _image(root / "real" / "train" / ".hidden" / "x.png")  # dot-folders are skipped
    (root / "real" / "train" / "notes.txt").write_text("not an image")
    items = list_split(root, "train")
    assert [i for i, _, _ in items] == ["000", "001", "002", "sub/a"]
    assert items[3][1] == root / "real" / "train" / "sub" / "a.png"
    assert items[3][2] == root / "real" / "train" / "sub" / "a.npy"
    assert [i for i, _, _ in list_split(root, "train", max_images=2)] == ["000", "001"]
    assert all(label is None for _, _, label in list_split(root, "unlabeled"))
    (root / "real" / "train" / "001.npy").unlink()
    assert list_split(root, "train")[1][2] is None


def test_label_size_mismatch(tmp_path):
    root = _dataset(tmp_path / "ds")
    bad = root / "real" / "train" / "001.npy"
    _label(bad, width=12)
    error = _problems(root)
    assert len(error.problems) == 1
    assert str(bad) in error.problems[0] and "(16, 12)" in error.problems[0]


def test_label_out_of_range_values_named(tmp_path):
    root = _dataset(tmp_path / "ds")
    bad = root / "real" / "test" / "000.npy"
    label = np.load(bad)
    label[5, 5], label[6, 6] = 7, 9
    np.save(bad, label)
    error = _problems(root)
    assert error.problems == [f"{bad}: label has values [7, 9] outside 0..3 (ignore label 255). "
                              "Fix the label file or the class list (meta.json or the config)."]


def test_non_uint8_integer_labels_accepted(tmp_path):
    root = _dataset(tmp_path / "ds")
    expected = _label(root / "real" / "train" / "000.npy", dtype=np.int64)
    validate_dataset(root)
    np.testing.assert_array_equal(load_label(root / "real" / "train" / "000.npy", 16, 255), expected)


def test_bad_label_arrays(tmp_path):
    root = _dataset(tmp_path / "ds", n_train=4)
    folder = root / "real" / "train"
    np.save(folder / "000.npy", np.zeros((16, 16), dtype=np.float32))
    np.save(folder / "001.npy", np.zeros((16, 16, 1), dtype=np.uint8))
    np.save(folder / "002.npy", np.array([None] * 4, dtype=object), allow_pickle=True)
    (folder / "003.npy").write_bytes(b"garbage")
    error = _problems(root, splits=("train",))
    assert len(error.problems) == 4
    for i, what in enumerate(["float32", "(16, 16, 1)", "pickle", "not a .npy file"]):
        assert str(folder / f"00{i}.npy") in error.problems[i] and what in error.problems[i]


def test_missing_label(tmp_path):
    root = _dataset(tmp_path / "ds")
    (root / "real" / "train" / "000.npy").unlink()
    error = _problems(root)
    assert error.problems[0].startswith(f"{root / 'real' / 'train' / '000.npy'}: label file missing")


def test_corrupt_and_truncated_images(tmp_path):
    root = _dataset(tmp_path / "ds", n_test=4)
    corrupt = root / "real" / "test" / "000.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    truncated = root / "real" / "test" / "001.jpg"
    truncated.write_bytes(truncated.read_bytes()[:200])
    error = _problems(root)
    assert len(error.problems) == 2
    assert error.problems[0].startswith(f"{corrupt}: cannot be read as an image")
    assert error.problems[1].startswith(f"{truncated}: cannot be read as an image")
    with pytest.raises(DatasetError, match="cannot be read as an image"):
        load_image(corrupt, 16)


def test_image_not_rgb_convertible(tmp_path):
    root = _dataset(tmp_path / "ds")
    bad = root / "real" / "train" / "000.png"
    Image.fromarray(np.full((16, 16), 40000, dtype=np.uint16)).save(bad)
    error = _problems(root)
    assert str(bad) in str(error) and "8-bit RGB" in str(error)


def test_grayscale_image_is_converted(tmp_path):
    path = tmp_path / "g.png"
    Image.fromarray(np.full((16, 16), 77, dtype=np.uint8)).save(path)
    image = load_image(path, 8)
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8 and (image == 77).all()


def test_empty_and_missing_splits(tmp_path):
    root = _dataset(tmp_path / "ds", n_test=0)
    (root / "real" / "test").mkdir()
    error = _problems(root)
    assert error.problems == [f"{root / 'real' / 'test'}: test folder holds no images (.png, .jpg, .jpeg, .bmp, "
                              ".tif, .tiff, .webp). Add the test images there."]

    root = _dataset(tmp_path / "ds2", n_unlabeled=0)
    error = _problems(root)
    assert str(root / "unlabeled") in str(error) and "pretrained" in str(error)
    assert validate_dataset(root, splits=("train", "test"))["counts"] == {"train": 2, "test": 2}


def test_orphan_label_and_duplicate_ids(tmp_path):
    root = _dataset(tmp_path / "ds")
    folder = root / "real" / "train"
    _label(folder / "lonely.npy")
    _image(folder / "000.jpg")  # 000.png exists too
    error = _problems(root, splits=("train",))
    assert len(error.problems) == 2
    assert any(p.startswith(f"{folder / '000.png'}: has the same name as") or
               p.startswith(f"{folder / '000.jpg'}: has the same name as") for p in error.problems)
    assert f"{folder / 'lonely.npy'}: label has no image next to it (expected lonely.png, .jpg, .jpeg, .bmp, .tif, " \
           ".tiff or .webp). Add the image in one of those formats or remove the label." in error.problems


def _non_square_dataset(root: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Tiny dataset whose train/000 is 16 wide x 10 high; returns (image path, label path)."""
    _dataset(root)
    image, label = root / "real" / "train" / "000.png", root / "real" / "train" / "000.npy"
    _image(image, width=16, height=10)
    _label(label, width=16, height=10)
    return image, label


def test_non_square_error_then_pad_and_crop(tmp_path):
    root = tmp_path / "ds"
    image_path, label_path = _non_square_dataset(root)
    error = _problems(root)
    assert error.problems[0].startswith(f"{image_path}: image is 16x10")
    assert "non_square: pad" in str(error) and "non_square: crop" in str(error)
    with pytest.raises(DatasetError, match="not square"):
        load_image(image_path, 16)

    assert validate_dataset(root, non_square="pad")["counts"]["train"] == 2
    assert validate_dataset(root, non_square="crop")["counts"]["train"] == 2

    pixels = np.asarray(Image.open(image_path))
    original = np.load(label_path)
    image = load_image(image_path, 16, "pad")
    label = load_label(label_path, 16, 255, "pad")
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    assert label.shape == (16, 16) and label.dtype == np.uint8
    # 10 rows padded to 16: 3 above, 3 below; label pads are ignore, image pads replicate edge rows.
    assert (label[:3] == 255).all() and (label[13:] == 255).all()
    np.testing.assert_array_equal(label[3:13], original)
    np.testing.assert_array_equal(image[3:13], pixels)
    np.testing.assert_array_equal(image[0], pixels[0])
    np.testing.assert_array_equal(image[15], pixels[-1])

    image = load_image(image_path, 10, "crop")
    label = load_label(label_path, 10, 255, "crop")
    assert image.shape == (10, 10, 3) and label.shape == (10, 10)
    np.testing.assert_array_equal(image, pixels[:, 3:13])
    np.testing.assert_array_equal(label, original[:, 3:13])

    assert load_image(image_path, 32, "pad").shape == (32, 32, 3)
    assert load_label(label_path, 8, 255, "crop").shape == (8, 8)


def test_nearest_resize_keeps_label_values(tmp_path):
    path = tmp_path / "l.npy"
    label = np.random.default_rng(1).choice(np.array([0, 2, 5, 255], dtype=np.uint8), (37, 37))
    np.save(path, label)
    for size in (8, 16, 50, 128):
        resized = load_label(path, size, 255)
        assert resized.shape == (size, size)
        assert set(np.unique(resized)) <= {0, 2, 5, 255}
    assert set(np.unique(load_label(path, 128, 255))) == {0, 2, 5, 255}


def test_all_problems_reported_together(tmp_path):
    root = _dataset(tmp_path / "ds", n_train=4, n_test=0)
    (root / "real" / "test").mkdir()
    train = root / "real" / "train"
    _label(train / "000.npy", height=12)                                # size mismatch
    np.save(train / "001.npy", np.full((16, 16), 42, dtype=np.uint8))   # out of range
    (train / "002.npy").unlink()                                        # missing label
    (train / "003.jpg").write_bytes(b"not a jpeg")                      # corrupt image
    _image(root / "unlabeled" / "wide.png", width=20)                   # non-square
    (root / "meta.json").write_text(json.dumps({"classes": CLASSES, "ignore_label": -1}))
    error = _problems(root)
    message = str(error)
    assert message.startswith(f"Dataset {root} has 6 problems:")
    expected = [root / "meta.json", train / "000.npy", train / "002.npy", train / "003.jpg",
                root / "real" / "test", root / "unlabeled" / "wide.png"]
    for path in expected:
        assert str(path) in message
    assert len(error.problems) == len(expected)
    # the value check needs a valid meta.json, so 001.npy is named once meta.json is fixed
    (root / "meta.json").write_text(json.dumps({"classes": CLASSES, "ignore_label": 255}))
    assert f"{train / '001.npy'}: label has values [42]" in str(_problems(root))


def test_prepare_split_tiny_pad(tmp_path):
    root = tmp_path / "ds"
    _non_square_dataset(root)
    out = tmp_path / "results" / "tiny" / "data" / "train.zarr"
    prepare_split(root, "train", out, 8, non_square="pad")
    group = zarr.open_group(out, mode="r")
    assert group["images"].shape == (2, 8, 8, 3) and group["labels"].shape == (2, 8, 8)
    assert group["images"].metadata.dimension_names == ("image", "y", "x", "rgb")
    assert group["labels"].metadata.dimension_names == ("image", "y", "x")
    assert group["images"].chunks == (1, 8, 8, 3) and group["labels"].chunks == (1, 8, 8)
    np.testing.assert_array_equal(group["labels"][0], load_label(root / "real/train/000.npy", 8, 255, "pad"))
    np.testing.assert_array_equal(group["images"][1], load_image(root / "real/train/001.jpg", 8, "pad"))
    assert dict(group.attrs) == {"split": "train", "image_ids": ["000", "001"], "classes": CLASSES,
                                 "ignore_label": 255, "image_size": 8, "source": str(root), "non_square": "pad",
                                 "resize": "lanczos", "original_sizes": [[10, 16], [16, 16]],
                                 "files": ["real/train/000.png", "real/train/001.jpg"]}
    originals = read_original_labels(out)  # each label as the file holds it, at its image's own size
    assert [label.shape for label in originals] == [(10, 16), (16, 16)]
    for label, name in zip(originals, ("000", "001")):
        np.testing.assert_array_equal(label, np.load(root / f"real/train/{name}.npy"))

    prepare_split(root, "unlabeled", out.with_name("unlabeled.zarr"), 8, max_images=1)
    group = zarr.open_group(out.with_name("unlabeled.zarr"), mode="r")
    assert group["images"].shape == (1, 8, 8, 3) and "labels" not in group
    with pytest.raises(DatasetError, match="has no original_labels .* prepared anew"):
        read_original_labels(out.with_name("unlabeled.zarr"))
    assert sorted(p.name for p in out.parent.iterdir()) == ["train.zarr", "unlabeled.zarr"]


def test_prepare_split_failure_leaves_nothing_and_replace_works(tmp_path):
    root = _dataset(tmp_path / "ds")
    out = tmp_path / "data" / "train.zarr"
    prepare_split(root, "train", out, 8, max_images=1)
    assert zarr.open_group(out, mode="r")["images"].shape[0] == 1
    prepare_split(root, "train", out, 8)  # replaces the old group
    assert zarr.open_group(out, mode="r")["images"].shape[0] == 2

    (root / "real" / "train" / "001.jpg").write_bytes(b"broken")
    out2 = tmp_path / "data" / "test.zarr"
    with pytest.raises(DatasetError):
        prepare_split(root, "train", out2, 8)
    assert not out2.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["train.zarr"]


def test_write_empty_split(tmp_path):
    out = tmp_path / "data" / "unlabeled.zarr"
    write_empty_split(out, 16)
    group = zarr.open_group(out, mode="r")
    assert group["images"].shape == (0, 16, 16, 3) and group["images"].dtype == np.uint8
    assert group["images"].metadata.dimension_names == ("image", "y", "x", "rgb")
    assert dict(group.attrs) == {"split": "unlabeled", "image_ids": [], "image_size": 16}
    assert [p.name for p in out.parent.iterdir()] == ["unlabeled.zarr"]


@pytest.mark.skipif(not FASSEG.is_dir(), reason="shared fasseg_face6 dataset not available")
def test_fasseg_validate_and_prepare(tmp_path):
    summary = validate_dataset(FASSEG)
    assert summary["counts"] == {"train": 20, "test": 44, "unlabeled": 390}
    assert summary["num_classes"] == 6 and summary["ignore_label"] == 255

    out = tmp_path / "fasseg_face6" / "data" / "train.zarr"
    prepare_split(FASSEG, "train", out, 64)
    group = zarr.open_group(out, mode="r")
    images, labels = group["images"][:], group["labels"][:]
    assert images.shape == (20, 64, 64, 3) and images.dtype == np.uint8
    assert labels.shape == (20, 64, 64) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= set(range(6)) | {255}
    attrs = dict(group.attrs)
    assert attrs["split"] == "train" and attrs["image_size"] == 64 and attrs["source"] == str(FASSEG)
    assert attrs["image_ids"] == [f"{i:04d}" for i in range(1, 21)]
    assert attrs["classes"] == ["background", "skin", "hair", "eyes", "nose", "mouth"]
    assert attrs["ignore_label"] == 255 and attrs["non_square"] == "error"
    assert [p.name for p in out.parent.iterdir()] == ["train.zarr"]  # no temp dir left behind


def test_folder_links_that_loop_or_leave_the_split_are_refused(tmp_path):
    root = _dataset(tmp_path / "ds")
    (root / "unlabeled" / "self").symlink_to(".", target_is_directory=True)  # a loop
    (root / "unlabeled" / "x").symlink_to("../real", target_is_directory=True)  # train and test images
    error = _problems(root)
    assert len(error.problems) == 2
    assert error.problems[0].startswith(f"{root}/unlabeled/self: folder link to {(root / 'unlabeled').resolve()}, "
                                        "a folder this split already reaches (a loop")
    assert error.problems[1].startswith(f"{root}/unlabeled/x: folder link to {(root / 'real').resolve()}, outside "
                                        f"the split folder {root}/unlabeled")
    # linked files are read; a second way into a folder of the split is refused too
    (root / "unlabeled" / "self").unlink()
    (root / "unlabeled" / "x").unlink()
    _image(tmp_path / "more" / "m.png")
    (root / "unlabeled" / "elsewhere").mkdir()
    (root / "unlabeled" / "elsewhere" / "m.png").symlink_to(tmp_path / "more" / "m.png")
    assert validate_dataset(root)["counts"]["unlabeled"] == 3
    (root / "unlabeled" / "sub").mkdir()
    (root / "unlabeled" / "sub" / "alias").symlink_to("../elsewhere", target_is_directory=True)
    assert "a folder this split already reaches" in _problems(root).problems[0]


def test_manifest_changes_with_any_file_of_the_dataset(tmp_path):
    root = _dataset(tmp_path / "ds")
    first = manifest_digest(root)
    assert len(first) == 64 and manifest_digest(root) == first
    label = root / "real" / "train" / "000.npy"
    np.save(label, np.zeros((16, 16), np.uint8))  # rewritten
    second = manifest_digest(root)
    assert second != first
    _image(root / "real" / "test" / "009.png")  # added
    third = manifest_digest(root)
    assert third != second
    (root / "real" / "test" / "009.png").unlink()  # removed again
    assert manifest_digest(root) == second
    (root / "unlabeled" / ".hidden.png").write_bytes(b"x")  # dot-files are not read, so they do not count
    assert manifest_digest(root) == second
    (root / "meta.json").write_text((root / "meta.json").read_text() + " ")
    assert manifest_digest(root) != second
    assert manifest_digest(tmp_path / "absent") == ""


def test_rgba_images_are_named_once_per_split_in_the_log(tmp_path, caplog):
    root = _dataset(tmp_path / "ds", n_train=3)
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 3] = 128
    for name in ("000.png", "002.png"):
        Image.fromarray(rgba).save(root / "real" / "train" / name)
    caplog.set_level("WARNING")
    prepare_split(root, "train", tmp_path / "train.zarr", image_size=16)
    warnings = [r.getMessage() for r in caplog.records if "alpha channel" in r.getMessage()]
    assert len(warnings) == 1 and "2 of 3 train images have an alpha channel" in warnings[0]
    assert "000.png" in warnings[0]
    caplog.clear()
    prepare_split(root, "test", tmp_path / "test.zarr", image_size=16)
    assert not [r for r in caplog.records if "alpha channel" in r.getMessage()]


@pytest.mark.skipif(not FASSEG.is_dir(), reason="shared fasseg_face6 dataset not available")
def test_paper_resize_is_bilinear_images_and_opencv_nearest_labels():
    (_, image_path, label_path), = list_split(FASSEG, "train", max_images=1)
    with Image.open(image_path) as im:
        assert im.size == (128, 128)
        bilinear = np.asarray(im.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(load_image(image_path, 64, resize="paper"), bilinear)
    assert not np.array_equal(load_image(image_path, 64), bilinear)  # LANCZOS
    raw = np.load(label_path)
    paper = load_label(label_path, 64, 255, resize="paper")
    np.testing.assert_array_equal(paper, raw[::2, ::2])  # OpenCV: floor(x * 2), the even pixels
    np.testing.assert_array_equal(load_label(label_path, 64, 255), raw[1::2, 1::2])  # PIL: pixel centres
    assert 0.01 < (paper != load_label(label_path, 64, 255)).mean() < 0.2
    # OpenCV's index rule at a scale that is not a whole number (checked against cv2.resize)
    assert opencv_nearest_indices(100, 64).tolist()[:8] == [0, 1, 3, 4, 6, 7, 9, 10]
    assert opencv_nearest_indices(3, 7).tolist() == [0, 0, 0, 1, 1, 2, 2]


def _files(folder: pathlib.Path) -> dict:
    """{path below ``folder``: bytes} of every file below it."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def test_format_paper_and_auto_prepare_the_same_splits_as_prepare_split(tmp_path):
    """`format: auto` settles on the paper's layout, and `prepare_dataset` writes byte for byte
    what `format: paper` writes: the labelled splits (validated together first) and the pool as
    `prepare_split` writes each, the pool empty where no rule reads it."""
    root = _dataset(tmp_path / "ds", n_train=3)
    fmt, why = detect(root)
    assert (fmt, why) == (PAPER, "real/train, real/test: the paper's layout")
    settings = dict(image_size=8, non_square="error", max_train=2, max_test=None, classes=None, ignore_label=None,
                    resize="lanczos", format=PAPER, unannotated="auto", split={}, unlabeled=None)
    written = {}
    for name, given in (("paper", PAPER), ("auto", fmt)):
        out = tmp_path / name
        labelled = {split: out / f"{split}.zarr" for split in ("train", "test")}
        summary = prepare_dataset(root, {**settings, "format": given}, labelled, False, "config: datasets.ds")
        assert summary == validate_dataset(root, splits=("train", "test"), max_images={"train": 2})
        assert prepare_dataset(root, {**settings, "format": given}, {"unlabeled": out / "unlabeled.zarr"}, True,
                               "config: datasets.ds")["counts"] == {"unlabeled": 2}
        assert prepare_dataset(root, {**settings, "format": given}, {"unlabeled": out / "empty.zarr"}, False,
                               "config: datasets.ds") == {"counts": {}}
        written[name] = _files(out)
    assert written["paper"] == written["auto"]
    one = tmp_path / "one"
    for split, limit in (("train", 2), ("test", None), ("unlabeled", None)):
        prepare_split(root, split, one / f"{split}.zarr", 8, max_images=limit)
    write_empty_split(one / "empty.zarr", 8)
    assert _files(one) == written["paper"]
