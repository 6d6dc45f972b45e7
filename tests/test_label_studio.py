"""`format: label_studio`: Label Studio's JSON export read as the tool writes it (upload-prefixed
and local-storage image URLs, brush strokes in its RLE, polygons in percent, several and
cancelled annotations), with the brush RLE written by label-studio-sdk's own encoder."""

import json
import subprocess
import sys

import numpy as np
import pytest
from label_studio_sdk.converter.brush import encode_rle
from PIL import Image, ImageDraw

from ddpmseg.errors import DatasetError
from ddpmseg.formats import READERS
from ddpmseg.formats.detect import detect
from ddpmseg.formats.source import UNCOVERED

W, H = 12, 8
CONFIG = """<View><Image name="image" value="$image"/>
<BrushLabels name="brush" toName="image"><Label value="skin"/><Label value="hair"/></BrushLabels>
<PolygonLabels name="poly" toName="image"><Label value="eye"/><Label value="hair"/></PolygonLabels></View>"""


def brush(mask: np.ndarray, label: str) -> dict:
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[mask] = 255
    return {"type": "brushlabels", "original_width": W, "original_height": H,
            "value": {"format": "rle", "rle": encode_rle(rgba.ravel()), "brushlabels": [label]}}


def polygon(points_percent: list, label: str) -> dict:
    return {"type": "polygonlabels", "original_width": W, "original_height": H,
            "value": {"points": points_percent, "polygonlabels": [label]}}


def drawn(points_percent: list) -> np.ndarray:
    canvas = Image.new("L", (W, H), 0)
    ImageDraw.Draw(canvas).polygon([(x * W / 100, y * H / 100) for x, y in points_percent], outline=1, fill=1)
    return np.asarray(canvas, bool)


@pytest.fixture
def export(tmp_path):
    """A project folder: images in photos/, the export JSON and the labelling config beside it."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("face_01", "face_02", "face_03", "face_04"):
        Image.new("RGB", (W, H), (90, 60, 30)).save(photos / f"{name}.png")
    skin = np.zeros((H, W), bool)
    skin[1:7, 2:10] = True
    eye = [[25, 25], [50, 25], [50, 50], [25, 50]]
    tasks = [
        {"id": 1, "data": {"image": "/data/upload/3/1a2b3c4d-face_01.png"}, "annotations": [
            {"id": 10, "updated_at": "2026-12-01T10:00:00Z", "result": [
                brush(skin, "skin"), polygon(eye, "eye"),
                {"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 5, "height": 5,
                                                      "rectanglelabels": ["eye"]}}]}]},
        {"id": 2, "data": {"image": "/data/local-files/?d=photos/face_02.png"}, "annotations": [
            {"id": 20, "updated_at": "2026-12-01T10:00:00Z", "ground_truth": True, "result": [brush(skin, "hair")]},
            {"id": 21, "updated_at": "2026-12-02T10:00:00Z", "result": [polygon(eye, "hair")]},
            {"id": 22, "updated_at": "2026-12-03T10:00:00Z", "was_cancelled": True, "result": []}]},
        {"id": 3, "data": {"image": "http://127.0.0.1:8080/data/upload/3/0f0f0f0f-face_03.png"}, "annotations": []},
    ]
    (tmp_path / "project-3-at-2026-12-03.json").write_text(json.dumps(tasks))
    (tmp_path / "config.xml").write_text(CONFIG)
    return tmp_path, skin, eye


def test_brush_and_polygons_are_drawn_in_order_with_the_configs_classes(export):
    root, skin, eye = export
    source = READERS["label_studio"](root, {"label_studio": {"images": "photos", "label_config": "config.xml"}})
    assert source.classes == ["skin", "hair", "eye"]
    assert source.skipped == {"rectanglelabels results": 1}
    by_id = {image.image_id: image for image in source.images}
    assert sorted(by_id) == ["face_01", "face_02", "face_03", "face_04"]
    assert by_id["face_03"].class_map is None and by_id["face_04"].class_map is None  # no annotation: the pool
    first = by_id["face_01"].class_map()
    expected = np.where(skin, 0, UNCOVERED)
    expected[drawn(eye)] = 2  # the polygon, later, on top of the stroke
    np.testing.assert_array_equal(first, expected)
    latest = by_id["face_02"].class_map()  # the cancelled one is left out: the polygon is the latest
    np.testing.assert_array_equal(latest, np.where(drawn(eye), 1, UNCOVERED))


@pytest.mark.parametrize("choice, hair", [("first", "skin"), ("ground_truth", "skin"), ("latest", "eye")])
def test_the_annotation_read_is_the_one_asked_for(export, choice, hair):
    root, skin, eye = export
    source = READERS["label_studio"](root, {"label_studio": {"images": "photos", "annotation": choice}})
    assert source.classes == ["skin", "eye", "hair"]  # no config: in order of first appearance
    second = {image.image_id: image for image in source.images}["face_02"].class_map()
    assert (second == 2).sum() == (skin if hair == "skin" else drawn(eye)).sum()


def test_an_image_of_another_size_is_one_line_naming_task_and_image(export):
    root, _, _ = export
    Image.new("RGB", (W + 4, H), 0).save(root / "photos" / "face_01.png")
    source = READERS["label_studio"](root, {"label_studio": {"images": "photos"}})
    with pytest.raises(DatasetError, match=r"task 1: result 1 \(brushlabels\): was drawn on a 12x8 image, "
                                           r"face_01.png is 16x8"):
        {image.image_id: image for image in source.images}["face_01"].class_map()


def test_a_task_whose_image_is_missing_names_the_setting(export):
    root, _, _ = export
    (root / "photos" / "face_02.png").unlink()
    with pytest.raises(DatasetError, match=r"task 2: its image 'photos/face_02.png' is not below .*photos\. Set "
                                           r"label_studio.images"):
        READERS["label_studio"](root, {"label_studio": {"images": "photos"}})


def test_data_check_reads_the_export(export):
    """`ddpmseg data check` on the export file: the images found below its folder, the pool, the skips."""
    root, _, _ = export
    result = subprocess.run([sys.executable, "-m", "ddpmseg", "data", "check", str(root / "project-3-at-2026-12-03.json"),
                             "--format", "label_studio", "--split", "{test_fraction: 0.5}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "label_studio" in result.stdout and "rectanglelabels results" in result.stdout


def test_format_auto_finds_the_export(export):
    root, _, _ = export
    assert detect(root) == ("label_studio", "project-3-at-2026-12-03.json is a Label Studio export JSON")
    assert detect(root / "project-3-at-2026-12-03.json")[0] == "label_studio"
