"""Datasets as annotation tools and their converters really write them (`../shared/real-exports/`,
`tests/data/real_exports/`: files taken from the tools' own repositories, see its README), read
with the format named and with `format: auto`; broken copies give one line per problem naming the
file; `ddpmseg data check` reports on each."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ddpmseg.errors import DatasetError
from ddpmseg.formats.detect import detect
from ddpmseg.formats.prepare import read_source
from ddpmseg.formats.source import class_table, lut_classes

REPOSITORY = Path(__file__).resolve().parent.parent
LABELME = REPOSITORY.parent / "shared" / "real-exports" / "labelme"
SAMPLES = REPOSITORY / "tests" / "data" / "real_exports"
needs_labelme = pytest.mark.skipif(not LABELME.is_dir(), reason="shared real-exports not available")


def labels(root, fmt: str, **settings) -> dict:
    """{image id: (H, W) uint8 final labels at the image's own size} of the dataset at ``root``
    read with ``fmt``, and its final classes."""
    source = read_source(root, {"format": fmt, **settings}, "config: datasets.real")
    classes, lut = class_table(source, None, "auto", 255, "config: datasets.real")
    return {image.image_id: lut_classes(image.class_map(), lut) for image in source.images
            if image.class_map is not None}, classes


def data_check(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ddpmseg", "data", "check", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


@needs_labelme
@pytest.mark.parametrize("fmt", ["voc", "auto"])
def test_labelme2voc_output_reads_as_the_labelme_json_it_was_made_from(fmt):
    """labelme2voc's JPEGImages/ + SegmentationClass/ (palette PNGs, 255 = __ignore__) +
    class_names.txt, no ImageSets/, against the labelme JSON read by our labelme reader: the same
    classes and ids, the same labels on every pixel but one: 2011_000006's (x 104, y 290) on the
    edge of a person polygon, sofa in labelme2voc's PNG, person as Pillow 11.3 and 12.3 fill the
    polygon (no other shape covers it)."""
    root = LABELME / "semantic_voc"
    if fmt == "auto":
        assert detect(root) == ("voc", "SegmentationClass/")
        fmt = "voc"
    voc, voc_classes = labels(root, fmt)
    json_labels, json_classes = labels(LABELME / "semantic_json", "labelme")
    assert voc_classes == json_classes and voc_classes[0] == "_background_" and len(voc_classes) == 21
    assert sorted(voc) == sorted(json_labels) == ["2011_000003", "2011_000006", "2011_000025"]
    differing = sum(int((voc[i] != json_labels[i]).sum()) for i in voc)
    assert differing <= 1
    assert all((voc[i] == 255).sum() == (json_labels[i] == 255).sum() for i in voc)  # __ignore__ -> 255


@needs_labelme
@pytest.mark.parametrize("fmt", ["coco_instances", "auto"])
def test_labelme2coco_output_agrees_with_the_semantic_annotation_of_the_same_photos(fmt, tmp_path):
    """labelme2coco's annotations.json (categories from 0 = _background_, file_name
    JPEGImages/NAME.jpg) beside JPEGImages/: a separate annotation of the same photos, with the same
    classes, agreeing with the semantic JSON on at least 90% of the pixels both label; the JSON
    file itself reads the same, and so does a copy whose file_names are absolute Windows paths."""
    root = LABELME / "instance_coco"
    if fmt == "auto":
        assert detect(root)[0] == "coco_instances"
        fmt = "coco_instances"
    coco, coco_classes = labels(root, fmt)
    semantic, semantic_classes = labels(LABELME / "semantic_json", "labelme")
    assert coco_classes == semantic_classes
    both = sum(int(((coco[i] != 255) & (semantic[i] != 255)).sum()) for i in coco)
    agree = sum(int(((coco[i] == semantic[i]) & (coco[i] != 255)).sum()) for i in coco)
    assert sorted(coco) == sorted(semantic) and agree / both >= 0.90, agree / both
    from_file, _ = labels(root / "annotations.json", fmt)
    assert all((from_file[i] == coco[i]).all() for i in coco)

    moved = tmp_path / "moved"  # written on another machine: C:\Users\ann\labelme\JPEGImages\NAME.jpg
    shutil.copytree(root, moved)
    document = json.loads((moved / "annotations.json").read_text())
    for image in document["images"]:
        image["file_name"] = "C:\\Users\\ann\\labelme\\" + image["file_name"].replace("/", "\\")
    (moved / "annotations.json").write_text(json.dumps(document))
    elsewhere, _ = labels(moved, fmt)
    assert sorted(elsewhere) == sorted(coco) and all((elsewhere[i] == coco[i]).all() for i in coco)


def write_cvat_segmentation_mask_export(root: Path) -> Path:
    """A folder in the layout of CVAT's "Segmentation mask 1.1" export, written by the writer CVAT
    itself uses for it (datumaro's voc_segmentation, colourised with the task's label colours):
    ImageSets/Segmentation/default.txt only, labelmap.txt with CVAT's colours, RGB class masks."""
    import datumaro as dm
    from datumaro.components.annotation import AnnotationType, LabelCategories, Mask, MaskCategories
    from datumaro.components.media import Image as DmImage

    colours = [(0, 0, 0), (250, 50, 83), (36, 179, 83)]
    items = []
    for n in range(3):
        picture = np.full((20, 30, 3), 40 * n, np.uint8)
        label = np.zeros((20, 30), np.uint8)
        label[2:9, 3 + n:15] = 1
        label[12:18, 10:25 + n] = 2
        items.append(dm.DatasetItem(id=f"frame_{n:06d}", subset="default", media=DmImage.from_numpy(picture),
                                    annotations=[Mask(image=label == c, label=c) for c in (1, 2)]))
    categories = {AnnotationType.label: LabelCategories.from_iterable(["background", "tool", "tissue"]),
                  AnnotationType.mask: MaskCategories(dict(enumerate(colours)))}
    dm.Dataset.from_iterable(items, categories=categories).export(str(root), "voc_segmentation", save_media=True,
                                                                   apply_colormap=True)
    return root


def test_cvat_segmentation_mask_export_reads_with_voc(tmp_path):
    root = write_cvat_segmentation_mask_export(tmp_path / "cvat")
    assert sorted(p.name for p in (root / "ImageSets").iterdir()) == ["Segmentation"]
    assert [p.name for p in (root / "ImageSets" / "Segmentation").iterdir()] == ["default.txt"]
    with Image.open(next((root / "SegmentationClass").iterdir())) as im:
        assert im.mode == "RGB"  # CVAT's masks are in its labels' colours
    for fmt in ("voc", "voc_segmentation", "auto"):
        source = read_source(root, {"format": detect(root)[0] if fmt == "auto" else fmt}, "config: datasets.cvat")
        assert source.classes == ["background", "tool", "tissue"]
        assert {image.subset for image in source.images} == {"default"}
        first = next(image for image in source.images if image.image_id == "frame_000001")
        drawn = first.class_map()
        assert (drawn[2:9, 4:15] == 1).all() and (drawn[12:18, 10:26] == 2).all() and (drawn == 0).sum() == \
            600 - 7 * 11 - 6 * 16


def test_datumaro_voc_segmentation_sample_reads_with_voc():
    """datumaro's own VOC segmentation test data (no labelmap.txt: VOC's classes and colours;
    train lists a masked image, test an image without masks, which joins the pool)."""
    source = read_source(SAMPLES / "cvat_voc_segmentation", {"format": "voc"}, "config: datasets.sample")
    assert len(source.classes) == 21 and source.classes[2] == "bicycle"
    annotated = [image for image in source.images if image.class_map is not None]
    assert [(i.image_id, i.subset) for i in annotated] == [("2007_000001", "train")]
    assert (annotated[0].class_map() == 2).all()
    assert [(i.image_id, i.subset) for i in source.images if i.class_map is None] == [("2007_000002", "test")]


@pytest.mark.parametrize("fmt", ["coco_instances", "roboflow_coco", "auto"])
def test_roboflow_export_reads_with_coco_readers_and_auto(fmt):
    """Roboflow's COCO export (train/valid/test, one _annotations.coco.json each beside its images,
    category 0 the unused super-category, many box-only annotations): subsets from the folders,
    boxes skipped and counted, polygons drawn at the images' size."""
    root = SAMPLES / "roboflow_coco"
    fmt = detect(root)[0] if fmt == "auto" else fmt
    source = read_source(root, {"format": fmt}, "config: datasets.sharks")
    assert source.classes == ["sharks", "fish", "primary", "shark"]
    assert sorted({image.subset for image in source.images}) == ["test", "train", "valid"]
    assert len(source.images) == 10 and source.skipped == {"box-only annotations": 43}
    annotated = [image for image in source.images if image.class_map is not None]
    assert len(annotated) == 6  # the others carry boxes only
    for image in annotated:
        drawn = image.class_map()
        assert drawn.shape == (256, 256) and set(np.unique(drawn)) <= {-1, 1, 2, 3} and (drawn >= 0).any()


@needs_labelme
def test_a_list_line_naming_a_missing_image_is_an_error_naming_the_line(tmp_path):
    root = tmp_path / "voc"
    shutil.copytree(LABELME / "semantic_voc", root)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("2011_000003\n2011_000006\n2011_999999\n")
    with pytest.raises(DatasetError) as caught:
        read_source(root, {"format": "voc"}, "config: datasets.voc")
    message = str(caught.value)
    assert message.startswith(f"{root / 'ImageSets/Segmentation/train.txt'}:3: names the image '2011_999999'")
    assert "\n" not in message


@needs_labelme
def test_a_name_found_twice_is_an_error_naming_both(tmp_path):
    root = tmp_path / "coco"
    shutil.copytree(LABELME / "instance_coco", root)
    document = json.loads((root / "annotations.json").read_text())
    for image in document["images"]:
        image["file_name"] = Path(image["file_name"]).name  # a bare name, as many tools write it
    (root / "annotations.json").write_text(json.dumps(document))
    (root / "backup").mkdir()
    shutil.copy(root / "JPEGImages" / "2011_000003.jpg", root / "backup")
    (root / "JPEGImages").rename(root / "photos")  # no preferred folder left to settle it
    source = read_source(root, {"format": "coco_instances"}, "config: datasets.coco")
    image = next(i for i in source.images if i.image_id == "2011_000003")
    with pytest.raises(DatasetError) as caught:
        image.class_map()
    message = str(caught.value)
    assert "which is found twice" in message and str(root / "backup/2011_000003.jpg") in message
    assert str(root / "photos/2011_000003.jpg") in message and "\n" not in message


@needs_labelme
def test_auto_lists_both_formats_when_a_folder_fits_two(tmp_path):
    root = tmp_path / "both"
    shutil.copytree(LABELME / "semantic_voc", root)
    shutil.copy(LABELME / "semantic_json" / "2011_000003.json", root / "JPEGImages")
    with pytest.raises(DatasetError) as caught:
        detect(root)
    message = str(caught.value)
    assert "fits 2 formats: voc (SegmentationClass/); labelme (JPEGImages/2011_000003.json" in message
    assert "\n" not in message


@needs_labelme
@pytest.mark.parametrize("folder", ["semantic_voc", "instance_coco", "semantic_json"])
def test_data_check_reports_a_good_folder_and_exits_0(folder):
    result = data_check(LABELME / folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "labelled 3, unlabeled 0" in result.stdout and "classes (21): 0 _background_" in result.stdout
    assert "add to the dataset's config: split: {test_fraction: 0.2, seed: 0}" in result.stdout
    assert "image sizes (width x height, as shown): 500x375 (2), 500x338 (1)" in result.stdout
    assert result.stdout.rstrip().endswith("no problems")


def test_data_check_counts_box_only_annotations():
    result = data_check(SAMPLES / "roboflow_coco", "--format", "roboflow_coco")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "subsets (images): test 1, train 7, valid 2" in result.stdout
    assert "skipped: 43 box-only annotations" in result.stdout


@needs_labelme
def test_data_check_lists_every_problem_of_a_broken_copy_and_exits_1(tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(LABELME / "semantic_voc", root)
    (root / "JPEGImages" / "2011_000025.jpg").write_bytes(b"not a jpeg")  # unreadable
    Image.new("P", (20, 20)).save(root / "SegmentationClass" / "2011_000006.png")  # the wrong size
    result = data_check(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 problems:" in result.stdout
    assert f"{root / 'JPEGImages/2011_000025.jpg'}: cannot be read as an image" in result.stdout
    assert f"{root / 'SegmentationClass/2011_000006.png'}: mask is 20x20 (width x height)" in result.stdout
    assert data_check(tmp_path / "nowhere").returncode == 2
    assert data_check(root, "--split", "[1, 2]").returncode == 2


def test_a_datumaro_failure_keeps_its_cause_and_gives_the_fix_that_fits_it(tmp_path):
    """The chained cause (here a JSON parse error), the damaged file, and advice that fits: not
    "point `path` at the top folder" when it is the top folder."""
    root = tmp_path / "dm"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "default.json").write_text('{"info": {}, "categories": {}, "items": [')
    with pytest.raises(DatasetError) as caught:
        read_source(root, {"format": "datumaro"}, "config: datasets.dm")
    message = str(caught.value)
    assert "caused by JSONDecodeError" in message and "\n" not in message
    assert f"{root / 'annotations/default.json'} does not parse" in message and "top folder" not in message
    with pytest.raises(DatasetError, match="looks like format coco_instances: set that format"):
        read_source(SAMPLES / "roboflow_coco", {"format": "cityscapes"}, "config: datasets.sharks")
