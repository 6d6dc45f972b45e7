"""Datasets in annotation tools' formats (ddpmseg.formats): fixtures written by the formats' own
writers (datumaro's exporters, PIL for image_mask folders) from FASSEG images, read back and
compared pixel for pixel with the paper-layout import of the same images; classes, splits and
every bad input's one-line message. Fast: a few 128x128 images per fixture."""

import json
import pathlib

import numpy as np
import pytest
import zarr
from PIL import Image

from ddpmseg.errors import DatasetError
from ddpmseg.formats import READERS, datumaro_formats
from ddpmseg.formats.paper import prepare_split
from ddpmseg.formats.prepare import prepare_formatted
from ddpmseg.splits import read_original_labels

datumaro = pytest.importorskip("datumaro")
from datumaro.components.annotation import AnnotationType, LabelCategories, Mask, Polygon  # noqa: E402
from datumaro.components.media import Image as DmImage  # noqa: E402

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
FASSEG = REPOSITORY.parent / "shared" / "datasets" / "fasseg_face6"
N_IMAGES = 3  # per split
pytestmark = pytest.mark.skipif(not FASSEG.is_dir(), reason="shared fasseg_face6 dataset not available")
CLASSES = ["background", "skin", "hair", "eyes", "nose", "mouth"]
WHERE = "config: datasets.faces"
# The fixtures' classes mapped back: in FASSEG's order (LabelMe lists classes as they appear), the
# fixtures' "ignore" class dropped.
MAPPING = {**{name: name for name in CLASSES}, "ignore": None}


def fasseg_items(split: str) -> list:
    """(stem, image path, label (H, W) uint8) of the first N_IMAGES images of a FASSEG split."""
    paths = sorted((FASSEG / "real" / split).glob("*.jpg"))[:N_IMAGES]
    return [(p.stem, p, np.load(p.with_suffix(".npy"))) for p in paths]


def settings(fmt: str, **changes) -> dict:
    """A dataset's preparation settings, as the schema's defaults give them."""
    base = dict(image_size=64, non_square="error", max_train=None, max_test=None, classes=None, ignore_label=None,
                resize="lanczos", format=fmt, unannotated="auto", split={}, unlabeled=None)
    return {**base, **changes}


def prepare(root, fmt: str, out: pathlib.Path, needs_unlabeled: bool = False, **changes) -> dict:
    outputs = {split: out / f"{split}.zarr" for split in ("train", "test", "unlabeled")}
    return prepare_formatted(root, settings(fmt, **changes), outputs, needs_unlabeled, WHERE)


@pytest.fixture(scope="module")
def paper_import(tmp_path_factory) -> dict:
    """The paper-layout import of the fixtures' images: split -> (images, labels) at 64."""
    out = tmp_path_factory.mktemp("paper")
    arrays = {}
    for split in ("train", "test"):
        prepare_split(FASSEG, split, out / split, image_size=64, max_images=N_IMAGES)
        group = zarr.open_group(str(out / split), mode="r")
        arrays[split] = (group["images"][:], group["labels"][:])
    return arrays


def export(fmt: str, out: pathlib.Path, shapes: str = "masks", unlabeled: int = 0) -> pathlib.Path:
    """FASSEG's first images exported by datumaro's `fmt` writer. The ignore pixels (the square
    padding, 255) are a class "ignore", which a `classes: {ignore: null}` mapping drops again;
    test ids are "test/NAME" (VOC-like formats keep one image folder for all subsets).
    shapes "polygons": each class region traced to polygons (datumaro's masks_to_polygons)."""
    classes = CLASSES + ["ignore"]
    items = []
    for split in ("train", "test"):
        for stem, path, label in fasseg_items(split):
            label = np.where(label == 255, 6, label)
            present = [c for c in np.argsort(-np.bincount(label.ravel(), minlength=7), kind="stable") if (label == c).any()]
            # larger regions lower, as an annotator draws them (a polygon has no holes: the face on top of the hair)
            masks = [Mask(image=label == c, label=int(c), z_order=z) for z, c in enumerate(present)]
            item_id = stem if split == "train" else f"test/{stem}"
            items.append(datumaro.DatasetItem(id=item_id, subset=split, media=DmImage.from_file(str(path)),
                                              annotations=masks))
    for path in sorted((FASSEG / "unlabeled").glob("*.jpg"))[:unlabeled]:
        items.append(datumaro.DatasetItem(id=f"u{path.stem}", subset="train", media=DmImage.from_file(str(path))))
    dataset = datumaro.Dataset.from_iterable(
        items, categories={AnnotationType.label: LabelCategories.from_iterable(classes)})
    if shapes == "polygons":
        dataset = dataset.transform("masks_to_polygons")
    dataset.export(str(out), fmt, save_media=True)
    return out


MASK_FORMATS = ["voc", "voc_segmentation", "coco_instances", "coco_panoptic", "coco_stuff", "cvat", "label_me",
                "cityscapes", "camvid", "datumaro"]


@pytest.mark.parametrize("fmt", MASK_FORMATS)
def test_format_reads_back_the_paper_import_pixel_for_pixel(fmt, tmp_path, paper_import):
    root = export(fmt, tmp_path / fmt, unlabeled=2)
    summary = prepare(root, fmt, tmp_path / "out", needs_unlabeled=True, classes=MAPPING)
    assert summary["classes"] == CLASSES and summary["ignore_label"] == 255
    assert summary["counts"] == {"train": N_IMAGES, "test": N_IMAGES, "unlabeled": 2}
    stems = {split: [stem for stem, _, _ in fasseg_items(split)] for split in ("train", "test")}
    assert summary["splits"] == {"train": stems["train"], "test": [f"test/{s}" for s in stems["test"]]}
    for split in ("train", "test"):
        group = zarr.open_group(str(tmp_path / "out" / f"{split}.zarr"), mode="r")
        images, labels = paper_import[split]
        np.testing.assert_array_equal(group["images"][:], images)
        np.testing.assert_array_equal(group["labels"][:], labels)
        assert group.attrs["original_sizes"] == [[128, 128]] * N_IMAGES
        originals = read_original_labels(tmp_path / "out" / f"{split}.zarr")  # drawn at the image's own size
        assert all((a == b).all() for a, (_, _, b) in zip(originals, fasseg_items(split), strict=True))
    unlabeled = zarr.open_group(str(tmp_path / "out" / "unlabeled.zarr"), mode="r")
    assert unlabeled["images"].shape == (2, 64, 64, 3) and "labels" not in unlabeled


def test_every_datumaro_name_is_a_datumaro_importer():
    from datumaro.components.environment import Environment

    importers = set(Environment().importers)
    assert set(datumaro_formats.NAMES) <= importers
    assert "image_mask" in READERS and set(datumaro_formats.NAMES) <= set(READERS)


def test_the_readers_import_no_private_name_of_another_module():
    """The readers (ddpmseg.formats.*) use only the public names of the modules below them."""
    import ast

    private = []
    for path in sorted((REPOSITORY / "src" / "ddpmseg" / "formats").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ddpmseg"):
                private += [f"{path.name}: {node.module}.{alias.name}" for alias in node.names
                            if alias.name.startswith("_")]
    assert not private


@pytest.mark.parametrize("fmt", ["coco_instances", "cvat", "label_me"])
def test_polygon_exports_agree_with_the_masks_they_trace(fmt, tmp_path, paper_import):
    """Masks traced to polygons lose a little at region borders (the outline runs through the
    border pixels' centres, so some are left uncovered): where both the polygons and the masks
    label a pixel, they agree on at least 97% of them; no more than 12% of the masks' labelled
    pixels are left uncovered."""
    root = export(fmt, tmp_path / fmt, shapes="polygons")
    prepare(root, fmt, tmp_path / "out", classes=MAPPING, unannotated="ignore")
    for split in ("train", "test"):
        labels = zarr.open_group(str(tmp_path / "out" / f"{split}.zarr"), mode="r")["labels"][:]
        expected = paper_import[split][1]
        both = (expected != 255) & (labels != 255)
        print(fmt, split, (labels[both] == expected[both]).mean(), both.sum() / (expected != 255).sum())
        assert (labels[both] == expected[both]).mean() > 0.97
        assert both.sum() > 0.88 * (expected != 255).sum()


def write_polygons(root: pathlib.Path, polygons: list, size=(40, 30), subsets=("train", "test"),
                   bad_in_train: list = ()) -> pathlib.Path:
    """A COCO instances export with one grey image per subset carrying ``polygons``
    [(class id, [x0, y0, x1, y1, ...], z_order)] over classes a, b, background; the train image
    also carries ``bad_in_train``."""
    items = []
    for subset in subsets:
        image = np.full((size[1], size[0], 3), 128, np.uint8)
        path = root.parent / f"{subset}.png"
        Image.fromarray(image).save(path)
        shapes = list(polygons) + (list(bad_in_train) if subset == "train" else [])
        annotations = [Polygon(points, label=label, z_order=z, id=i + 1) for i, (label, points, z) in enumerate(shapes)]
        items.append(datumaro.DatasetItem(id=f"{subset}_img", subset=subset, media=DmImage.from_file(str(path)),
                                          annotations=annotations))
    categories = {AnnotationType.label: LabelCategories.from_iterable(["a", "b", "background"])}
    datumaro.Dataset.from_iterable(items, categories=categories).export(str(root), "coco_instances", save_media=True)
    return root


def test_polygon_rasterisation_at_the_images_own_size(tmp_path):
    from ddpmseg.formats.source import UNCOVERED

    root = write_polygons(tmp_path / "coco", [(1, [10, 0, 30, 0, 30, 10, 10, 10], 1),
                                              (0, [0, 0, 20, 0, 20, 10, 0, 10], 0)])
    source = datumaro_formats.read(root, settings("coco_instances"))
    image = next(i for i in source.images if i.subset == "train")
    class_map = image.class_map()
    assert class_map.shape == (30, 40)
    assert (class_map[:10, :10] == 0).all() and (class_map[:10, 10:30] == 1).all()  # b covers a where both lie
    assert (class_map[10:] == UNCOVERED).all() and (class_map[:, 31:] == UNCOVERED).all()
    # uncovered pixels: the class named background under 'auto', the ignore label under 'ignore'
    for unannotated, expected in (("auto", 2), ("ignore", 255), ("a", 0)):
        prepare(root, "coco_instances", tmp_path / unannotated, unannotated=unannotated, non_square="pad",
                image_size=40)
        labels = zarr.open_group(str(tmp_path / unannotated / "train.zarr"), mode="r")["labels"][0]
        assert labels[5 + 20, 35] == expected  # below the shapes (row 20 inside the 40x40 padded square)
        assert labels[0, 0] == 255  # the padding is ignored


def write_image_mask(root: pathlib.Path, mode: str, subsets: bool = True) -> pathlib.Path:
    """FASSEG's first images as an image_mask folder: masks as 8-bit grey ('L'), palette ('P') or
    RGB PNGs with a labelmap.txt (whose colours are those of FASSEG's source)."""
    colours = [(255, 0, 0), (255, 255, 0), (127, 0, 0), (0, 0, 255), (0, 255, 255), (0, 255, 0)]
    for split in ("train", "test"):
        for stem, path, label in fasseg_items(split):
            rel = pathlib.Path(split if subsets else "", stem if subsets else f"{split}_{stem}")
            (root / "images" / rel.parent).mkdir(parents=True, exist_ok=True)
            (root / "masks" / rel.parent).mkdir(parents=True, exist_ok=True)
            (root / "images" / rel).with_suffix(".jpg").write_bytes(path.read_bytes())
            if mode == "RGB":
                rgb = np.zeros(label.shape + (3,), np.uint8)
                for c, colour in enumerate(colours + [(255, 255, 255)] * 250):
                    rgb[label == (c if c < 6 else 255)] = colour
                Image.fromarray(rgb).save((root / "masks" / rel).with_suffix(".png"))
            else:
                mask = Image.fromarray(label, mode="L")
                if mode == "P":
                    mask = mask.convert("P")
                    mask.putpalette([v for c in colours for v in c] + [0, 0, 0] * 250)
                mask.save((root / "masks" / rel).with_suffix(".png"))
    if mode == "RGB":
        lines = [f"{name}:{r},{g},{b}::" for name, (r, g, b) in zip(CLASSES, colours)] + ["void:255,255,255::"]
        (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n" + "\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("mode", ["L", "P", "RGB"])
def test_image_mask_folder_reads_back_the_paper_import(mode, tmp_path, paper_import):
    root = write_image_mask(tmp_path / "folder", mode)
    classes = {"void": None} if mode == "RGB" else CLASSES
    summary = prepare(root, "image_mask", tmp_path / "out", classes=classes)
    assert summary["classes"] == CLASSES
    for split in ("train", "test"):
        group = zarr.open_group(str(tmp_path / "out" / f"{split}.zarr"), mode="r")
        np.testing.assert_array_equal(group["images"][:], paper_import[split][0])
        np.testing.assert_array_equal(group["labels"][:], paper_import[split][1])


def test_classes_mapping_renames_merges_and_drops(tmp_path, paper_import):
    root = write_image_mask(tmp_path / "folder", "L")
    mapping = {"background": "background", "skin": "face", "eyes": "face_parts", "nose": "face_parts",
               "mouth": "face_parts", "hair": None}
    summary = prepare(root, "image_mask", tmp_path / "out", classes=CLASSES)
    assert summary["classes"] == CLASSES
    with pytest.raises(DatasetError, match="classes"):  # a list names the classes; a mapping needs names to map
        prepare(root, "image_mask", tmp_path / "bad", classes=mapping)
    (root / "labelmap.txt").write_text("".join(f"{name}:::\n" for name in CLASSES))
    summary = prepare(root, "image_mask", tmp_path / "mapped", classes=mapping)
    assert summary["classes"] == ["background", "face", "face_parts"]
    labels = zarr.open_group(str(tmp_path / "mapped" / "train.zarr"), mode="r")["labels"][:]
    expected = np.array([0, 1, 255, 2, 2, 2] + [255] * 250, np.uint8)[paper_import["train"][1]]
    np.testing.assert_array_equal(labels, expected)


def test_splits_from_a_seeded_fraction_and_from_lists(tmp_path):
    root = write_image_mask(tmp_path / "folder", "L", subsets=False)  # no subset folders: ids train_0001, ...
    with pytest.raises(DatasetError, match="split is empty"):
        prepare(root, "image_mask", tmp_path / "none", classes=CLASSES)
    first = prepare(root, "image_mask", tmp_path / "a", classes=CLASSES, split={"test_fraction": 0.5, "seed": 3})
    again = prepare(root, "image_mask", tmp_path / "b", classes=CLASSES, split={"test_fraction": 0.5, "seed": 3})
    other = prepare(root, "image_mask", tmp_path / "c", classes=CLASSES, split={"test_fraction": 0.5, "seed": 4})
    assert first["splits"] == again["splits"] and first["splits"] != other["splits"]
    ids = sorted(first["splits"]["train"] + first["splits"]["test"])
    assert len(first["splits"]["test"]) == N_IMAGES and len(ids) == len(set(ids)) == 2 * N_IMAGES
    (root / "test_ids.txt").write_text("train_0002\ntest_0001\n")
    listed = prepare(root, "image_mask", tmp_path / "d", classes=CLASSES, split={"test": "test_ids.txt", "seed": 0})
    assert listed["splits"]["test"] == ["test_0001", "train_0002"]
    assert len(listed["splits"]["train"]) == 2 * N_IMAGES - 2
    with pytest.raises(DatasetError, match=r"split\.test: .*nope.* are no annotated images"):
        prepare(root, "image_mask", tmp_path / "e", classes=CLASSES, split={"test": ["nope"], "seed": 0})


def test_unlabeled_pool_from_unannotated_images_and_a_folder(tmp_path):
    root = write_image_mask(tmp_path / "folder", "L")
    (root / "images" / "extra.jpg").write_bytes(next((FASSEG / "unlabeled").glob("*.jpg")).read_bytes())
    pool = tmp_path / "pool"
    pool.mkdir()
    for path in sorted((FASSEG / "unlabeled").glob("*.jpg"))[:2]:
        (pool / path.name).write_bytes(path.read_bytes())
    summary = prepare(root, "image_mask", tmp_path / "out", needs_unlabeled=True, classes=CLASSES, unlabeled=str(pool))
    assert summary["counts"]["unlabeled"] == 3
    ids = zarr.open_group(str(tmp_path / "out" / "unlabeled.zarr"), mode="r").attrs["image_ids"]
    assert ids[0] == "extra" and all(i.startswith("pool/") for i in ids[1:])


def assert_one_line_error(match: str, out: pathlib.Path, call):
    """``call`` raises DatasetError matching ``match``, a single problem line, and writes nothing."""
    with pytest.raises(DatasetError, match=match) as error:
        call()
    assert len(error.value.problems) == 1, error.value.problems
    assert not out.exists() or not any(out.iterdir()), f"{out} was written"


def test_bad_image_mask_inputs_get_one_line_each_and_nothing_written(tmp_path):
    out = tmp_path / "out"
    root = write_image_mask(tmp_path / "size", "L")
    mask = root / "masks" / "train" / "0001.png"
    Image.fromarray(np.zeros((100, 128), np.uint8)).save(mask)
    assert_one_line_error(r"0001\.png: mask is 128x100 .* image 0001\.jpg 128x128", out,
                          lambda: prepare(root, "image_mask", out, classes=CLASSES))

    root = write_image_mask(tmp_path / "ids", "L")
    Image.fromarray(np.full((128, 128), 9, np.uint8)).save(root / "masks" / "test" / "0002.png")
    assert_one_line_error(r"0002\.png: class ids \[9\] are beyond the 6 classes", out,
                          lambda: prepare(root, "image_mask", out, classes=CLASSES))

    root = write_image_mask(tmp_path / "colour", "RGB")
    Image.fromarray(np.full((128, 128, 3), 7, np.uint8)).save(root / "masks" / "train" / "0002.png")
    assert_one_line_error(r"0002\.png: colours \(7, 7, 7\) are not in labelmap\.txt", out,
                          lambda: prepare(root, "image_mask", out))

    root = write_image_mask(tmp_path / "orphan", "L")
    (root / "images" / "train" / "0003.jpg").unlink()
    assert_one_line_error(r"0003\.png: mask without an image", out,
                          lambda: prepare(root, "image_mask", out, classes=CLASSES))

    root = write_image_mask(tmp_path / "names", "L")
    (root / "labelmap.txt").write_text("".join(f"{name}:::\n" for name in CLASSES))
    assert_one_line_error(r"classes: \['lips'\] name no class", out,
                          lambda: prepare(root, "image_mask", out, classes={"lips": "mouth"}))
    assert_one_line_error(r"unannotated: 'sky' is no class", out,
                          lambda: prepare(root, "image_mask", out, unannotated="sky"))


def test_bad_coco_inputs_get_one_line_each_and_nothing_written(tmp_path):
    out = tmp_path / "out"
    root = write_polygons(tmp_path / "outside", [(0, [0, 0, 20, 0, 20, 10, 0, 10], 0)],
                          bad_in_train=[(0, [0, 0, 60, 0, 60, 10, 0, 10], 0)])
    assert_one_line_error(r"a polygon of class 'a' reaches \(0, 0\)\.\.\(60, 10\), outside the 40x30 image", out,
                          lambda: prepare(root, "coco_instances", out, non_square="pad"))

    root = write_polygons(tmp_path / "missing", [(0, [0, 0, 20, 0, 20, 10, 0, 10], 0)])
    next((root / "images" / "test").glob("*.png")).unlink()
    assert_one_line_error(r"image \d+ \('test_img.png'\): annotated, but no image of that name is below", out,
                          lambda: prepare(root, "coco_instances", out, non_square="pad"))

    root = write_polygons(tmp_path / "subset", [(0, [0, 0, 20, 0, 20, 10, 0, 10], 0)], subsets=("train",))
    assert_one_line_error(r"the test split is empty", out,
                          lambda: prepare(root, "coco_instances", out, non_square="pad"))
    assert_one_line_error(r"split\.subsets\.test: \['val'\] are not subsets", out,
                          lambda: prepare(root, "coco_instances", out, non_square="pad",
                                          split={"subsets": {"test": ["val"]}}))

    assert_one_line_error(r"SegmentationClass: folder not found", out,
                          lambda: prepare(root, "voc", out, non_square="pad"))


def write_labelme(root: pathlib.Path, unlabeled: int = 0) -> pathlib.Path:
    """FASSEG's first images annotated as labelme saves them: <split>/NAME.json beside NAME.jpg,
    each class region traced to polygons (datumaro's mask_to_polygons), larger regions first
    (later shapes lie on top, as labelme draws them), the padding as __ignore__ polygons; and
    ``unlabeled`` images without JSON in unlabeled/."""
    from datumaro.util.mask_tools import mask_to_polygons

    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for stem, path, label in fasseg_items(split):
            (root / split / path.name).write_bytes(path.read_bytes())
            values = [v for v in np.unique(label) if (label == v).any()]
            shapes = []
            for value in sorted(values, key=lambda v: -(label == v).sum()):
                name = "__ignore__" if value == 255 else CLASSES[value]
                shapes += [{"label": name, "points": np.reshape(polygon, (-1, 2)).tolist(), "group_id": None,
                            "shape_type": "polygon", "flags": {}} for polygon in mask_to_polygons(label == value)]
            document = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": path.name, "imageData": None,
                        "imageHeight": label.shape[0], "imageWidth": label.shape[1]}
            (root / split / f"{stem}.json").write_text(json.dumps(document))
    (root / "unlabeled").mkdir()
    for path in sorted((FASSEG / "unlabeled").glob("*.jpg"))[:unlabeled]:
        (root / "unlabeled" / path.name).write_bytes(path.read_bytes())
    return root


def test_labelme_json_polygons_agree_with_the_masks_they_trace(tmp_path, paper_import):
    """labelme's JSON (which datumaro does not read): classes in order of first appearance
    (labels.txt sets them), splits from the folders, images without JSON unlabeled, and the
    polygons agree with the masks as the other polygon formats do."""
    root = write_labelme(tmp_path / "labelme", unlabeled=2)
    summary = prepare(root, "labelme", tmp_path / "out", needs_unlabeled=True, unannotated="ignore")
    assert summary["counts"] == {"train": N_IMAGES, "test": N_IMAGES, "unlabeled": 2}
    assert sorted(summary["classes"]) == sorted(CLASSES) and summary["classes"] != CLASSES  # as they appear
    (root / "labels.txt").write_text("__ignore__\n" + "\n".join(CLASSES) + "\n")
    summary = prepare(root, "labelme", tmp_path / "out", needs_unlabeled=True)
    assert summary["classes"] == CLASSES
    for split in ("train", "test"):
        labels = zarr.open_group(str(tmp_path / "out" / f"{split}.zarr"), mode="r")["labels"][:]
        expected = paper_import[split][1]
        both = (expected != 255) & (labels != 255)
        assert (labels[both] == expected[both]).mean() > 0.97
        assert both.sum() > 0.88 * (expected != 255).sum()


def labelme_file(root: pathlib.Path, shapes: list, name: str = "train/a", size=(40, 30), said=None) -> None:
    """One grey image <name>.png and its labelme JSON with ``shapes`` [(label, kind, points)]."""
    path = root / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path)
    width, height = said or size
    document = {"shapes": [{"label": label, "shape_type": kind, "points": points} for label, kind, points in shapes],
                "imagePath": path.name, "imageHeight": height, "imageWidth": width}
    path.with_suffix(".json").write_text(json.dumps(document))


def test_labelme_shapes_drawn_as_labelme_draws_them(tmp_path):
    """Later shapes on top; rectangles, circles and masks filled; lines left out; __ignore__."""
    import base64
    import io

    from ddpmseg.formats import labelme
    from ddpmseg.formats.source import IGNORED, UNCOVERED

    patch = io.BytesIO()
    Image.fromarray(np.ones((4, 5), bool)).save(patch, format="PNG")
    root = tmp_path / "shapes"
    labelme_file(root, [("a", "rectangle", [[30, 20], [10, 0]]), ("b", "polygon", [[0, 0], [20, 0], [20, 10], [0, 10]]),
                        ("c", "circle", [[35, 25], [37, 25]]), ("a", "line", [[0, 29], [39, 29]]),
                        ("__ignore__", "rectangle", [[0, 20], [3, 23]])])
    document = json.loads((root / "train/a.json").read_text())
    document["shapes"].append({"label": "b", "shape_type": "mask", "points": [[5, 24], [9, 27]],
                               "mask": base64.b64encode(patch.getvalue()).decode()})
    (root / "train/a.json").write_text(json.dumps(document))
    source = labelme.read(root, {})
    assert source.classes == ["a", "b", "c"]
    class_map = source.images[0].class_map()
    assert (class_map[:11, :21] == 1).all()                     # b over a (drawn later), outline included
    assert (class_map[11:21, 10:31] == 0).all() and class_map[0, 25] == 0
    assert class_map[25, 35] == 2 and class_map[25, 37] == 2 and class_map[25, 38] == UNCOVERED
    assert (class_map[20:24, 0:4] == IGNORED).all() and (class_map[24:28, 5:10] == 1).all()
    assert (class_map[29, :5] == UNCOVERED).all()               # a line is no region


def test_bad_labelme_inputs_get_one_line_each_and_nothing_written(tmp_path):
    out = tmp_path / "out"
    square = [[0, 0], [10, 0], [10, 10], [0, 10]]

    def dataset(name: str, train_shapes: list, **changes) -> pathlib.Path:
        root = tmp_path / name
        labelme_file(root, [("a", "polygon", square)], "test/b")
        labelme_file(root, train_shapes, **changes)
        return root

    root = dataset("outside", [("a", "polygon", [[0, 0], [60, 0], [60, 10]])])
    assert_one_line_error(r"a\.json: shape 1 \(polygon 'a'\): reaches \(0, 0\)\.\.\(60, 10\), outside the 40x30",
                          out, lambda: prepare(root, "labelme", out, non_square="pad"))
    root = dataset("points", [("a", "polygon", [[0, 0], [6, 0]])])
    assert_one_line_error(r"has 2 points; a polygon needs 3", out, lambda: prepare(root, "labelme", out, non_square="pad"))
    root = dataset("size", [("a", "polygon", square)], said=(80, 60))
    assert_one_line_error(r"a\.json: says the image is 80x60 .* a\.png is 40x30", out,
                          lambda: prepare(root, "labelme", out, non_square="pad"))
    root = dataset("missing", [("a", "polygon", square)])
    (root / "train/a.png").unlink()
    assert_one_line_error(r"a\.json: annotates .*a\.png, which is missing", out,
                          lambda: prepare(root, "labelme", out, non_square="pad"))
    root = dataset("labels", [("z", "polygon", square)])
    (root / "labels.txt").write_text("__ignore__\na\n")
    assert_one_line_error(r"'z' is not in labels\.txt \(a\)", out, lambda: prepare(root, "labelme", out, non_square="pad"))
    root = dataset("other", [("a", "polygon", square)])
    (root / "coco.json").write_text(json.dumps({"images": [], "annotations": []}))
    assert_one_line_error(r"coco\.json: no labelme annotation", out, lambda: prepare(root, "labelme", out, non_square="pad"))


@pytest.mark.parametrize("fmt", ["voc", "coco_instances", "cvat", "label_me", "cityscapes"])
def test_exported_masks_decode_to_the_predicted_labels(fmt, tmp_path):
    """Masks written for an annotation tool (segment.<name>.format) read back by datumaro give
    the same class at every pixel."""
    from ddpmseg.formats.export import export_masks

    items = fasseg_items("train")[:2]
    labels = [np.where(label == 255, 0, label).astype(np.uint8) for _, _, label in items]
    labels[1] = labels[1][:, :100]  # another size
    images = []
    for (stem, path, _), label in zip(items, labels):
        images.append(tmp_path / f"{stem}.png")
        Image.open(path).crop((0, 0, label.shape[1], label.shape[0])).save(images[-1])
    colours = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48)]
    export_masks(tmp_path / fmt, fmt, [stem for stem, _, _ in items], images, labels, CLASSES, colours)
    dataset = datumaro.Dataset.import_from(str(tmp_path / fmt), fmt)
    names = [label.name for label in dataset.categories()[AnnotationType.label]]
    assert sorted(item.id for item in dataset) == [stem for stem, _, _ in items]
    for item in dataset:
        expected = labels[[stem for stem, _, _ in items].index(item.id)]
        decoded = np.full(expected.shape, "", object)
        decoded[expected == 0] = "background"  # formats with a background class leave it unannotated
        for mask in item.annotations:
            if isinstance(mask, Mask):
                decoded[np.asarray(mask.image, bool)] = names[mask.label]
        assert (decoded == np.asarray(CLASSES, object)[expected]).all()
