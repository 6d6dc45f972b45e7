"""`ddpmseg label-studio push / pull` (ddpmseg.label_studio_sync) against a real Label Studio
started on 127.0.0.1 (marker `label_studio`): a batch of FASSEG test images posing as the pool
pushed with its masks as predictions, annotated through the server's API as an annotator would
(brush strokes, polygons, a skipped task), pulled into the dataset and read back; the server's
own exports read by `format: label_studio` and `coco_instances`. The writing side (labelling
config, brush RLE, labels added to a dataset) is also checked without a server."""

import io
import json
import shutil
import uuid
import zipfile
from pathlib import Path

import cv2
import httpx
import numpy as np
import pandas as pd
import pytest
import zarr
from PIL import Image, ImageDraw

from ddpmseg.cli import main
from ddpmseg.errors import DatasetError, UserError
from ddpmseg.formats import READERS
from ddpmseg.formats.dataset_labels import DatasetLabels
from ddpmseg.formats.label_studio import annotation_map, config_classes
from ddpmseg.formats.label_studio_tasks import MANIFEST, brush_results, label_config, local_file_tasks, read_asked
from ddpmseg.formats.prepare import prepare_formatted
from ddpmseg.formats.source import UNCOVERED
from ddpmseg.label_studio_sync import Server, checked_classes, push
from ddpmseg.palette import palette

FASSEG = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fasseg_face6"
CLASSES = ["background", "skin", "hair", "eyes", "nose", "mouth"]
POOL = ["0001", "0002", "0003", "0004"]  # FASSEG test images posing as the pool, their labels held aside
pytestmark = pytest.mark.skipif(not FASSEG.is_dir(), reason="shared fasseg_face6 dataset not available")


def held_aside(image_id: str) -> np.ndarray:
    """A pool image's ground truth (128, 128) uint8, 255 the padding."""
    return np.load(FASSEG / "real" / "test" / f"{image_id}.npy")


def as_drawn(labels: np.ndarray) -> np.ndarray:
    """Labels as a drawn annotation: int32 class ids, UNCOVERED where 255 (the padding)."""
    return np.where(labels == 255, UNCOVERED, labels.astype(np.int32))


def expected_from_brush(labels: np.ndarray) -> np.ndarray:
    """What pulling brush strokes of ``labels`` gives: unpainted pixels (the padding) background."""
    return np.where(labels == 255, 0, labels).astype(np.uint8)


def traced_polygons(labels: np.ndarray) -> list:
    """Each class region's outer contours as Label Studio polygon results (points in percent)."""
    height, width = labels.shape
    results = []
    for c, name in enumerate(CLASSES):
        contours, _ = cv2.findContours((labels == c).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for contour in contours:
            if len(contour) >= 3:
                points = [[float(x) * 100 / width, float(y) * 100 / height] for x, y in contour[:, 0]]
                results.append({"from_name": "polygon", "to_name": "image", "type": "polygonlabels",
                                "original_width": width, "original_height": height,
                                "value": {"points": points, "polygonlabels": [name]}})
    return results


def rasterised(results: list, shape: tuple) -> np.ndarray:
    """The polygons drawn in order by PIL at ``shape``, unpainted pixels background (0)."""
    height, width = shape
    out = np.zeros(shape, np.uint8)
    for result in results:
        canvas = Image.new("L", (width, height), 0)
        points = [(x * width / 100, y * height / 100) for x, y in result["value"]["points"]]
        ImageDraw.Draw(canvas).polygon(points, outline=1, fill=1)
        out[np.asarray(canvas, bool)] = CLASSES.index(result["value"]["polygonlabels"][0])
    return out


def paper_dataset(root: Path) -> Path:
    """FASSEG's first 2 train and test images (5, 6 of test) as labelled splits and test 1-4 as the pool."""
    for split, names in (("train", ["0001", "0002"]), ("test", ["0005", "0006"])):
        (root / "real" / split).mkdir(parents=True)
        for name in names:
            for suffix in (".jpg", ".npy"):
                shutil.copy(FASSEG / "real" / split / f"{name}{suffix}", root / "real" / split / f"{name}{suffix}")
    (root / "unlabeled").mkdir()
    for name in POOL:
        shutil.copy(FASSEG / "real" / "test" / f"{name}.jpg", root / "unlabeled" / f"{name}.jpg")
    shutil.copy(FASSEG / "meta.json", root / "meta.json")
    return root


def label_next_batch(out: Path, dataset: Path) -> Path:
    """A batch as `label_next` writes it: the pool ranked, each mask the ground truth with its
    hair grown into skin (what a model gets wrong), batch.csv and batch.json."""
    for folder in ("images", "masks"):
        (out / folder).mkdir(parents=True)
    rows = []
    for rank, name in enumerate(POOL, 1):
        shutil.copy(dataset / "unlabeled" / f"{name}.jpg", out / "images" / f"{name}.jpg")
        mask = held_aside(name).copy()
        mask[cv2.dilate((mask == 2).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & (mask == 1)] = 2
        Image.fromarray(mask, mode="L").save(out / "masks" / f"{name}.png")
        rows.append({"rank": rank, "picked": True, "already_labelled": False, "priority": 0.5 - rank / 10,
                     "image": name, "file": f"{name}.jpg", "name": name, "js_top10": 0.5 - rank / 10})
    pd.DataFrame(rows).to_csv(out / "batch.csv", index=False)
    (out / MANIFEST).write_text(json.dumps({
        "dataset": "faces", "method": "ddpm", "seed": 0, "strategy": "uncertainty", "classes": CLASSES,
        "colours": palette(len(CLASSES))[: len(CLASSES)].tolist(), "ignore_label": 255}))
    return out


# --- without a server


def test_the_labelling_config_names_the_classes_in_order_for_brush_and_polygon():
    config = label_config(CLASSES, palette(6)[:6].tolist())
    assert config_classes(config, "here") == CLASSES
    assert config.count('<Label value="hair" background="#') == 2 and "<BrushLabels" in config and "<PolygonLabels" in config


def test_brush_results_are_the_mask_pixel_for_pixel():
    labels = held_aside("0001")
    results = brush_results(labels, CLASSES)
    assert [r["value"]["brushlabels"] for r in results] == [[c] for c in CLASSES]
    drawn = annotation_map({"result": results}, 128, 128, CLASSES, "here")
    np.testing.assert_array_equal(drawn, as_drawn(labels))


def test_labels_written_into_the_paper_layout_once(tmp_path):
    dataset = paper_dataset(tmp_path / "faces")
    target = DatasetLabels(dataset, {"format": "paper", "classes": None, "ignore_label": None}, "config: datasets.faces")
    assert target.classes == CLASSES and sorted(target.images) == POOL and target.added is None
    labels = as_drawn(held_aside("0003"))
    assert target.write("0003", "pool-0003", labels)
    np.testing.assert_array_equal(np.load(dataset / "real/train/pool-0003.npy"), expected_from_brush(held_aside("0003")))
    assert (dataset / "real/train/pool-0003.jpg").read_bytes() == (dataset / "unlabeled/0003.jpg").read_bytes()
    stamp = (dataset / "real/train/pool-0003.npy").stat().st_mtime_ns
    assert not target.write("0003", "pool-0003", labels)
    assert (dataset / "real/train/pool-0003.npy").stat().st_mtime_ns == stamp
    with pytest.raises(DatasetError, match="has no image '0009'"):
        target.write("0009", "0009", labels)


def label_studio_export(root: Path) -> Path:
    """A `format: label_studio` dataset: an export of 2 train and 2 test tasks (brush strokes of
    FASSEG labels; subsets by a split list) and 2 images of no task (the pool)."""
    (root / "images").mkdir(parents=True)
    tasks = []
    for number, (split, name) in enumerate([("train", "0001"), ("train", "0002"), ("test", "0005"), ("test", "0006")]):
        shutil.copy(FASSEG / "real" / split / f"{name}.jpg", root / "images" / f"{split}-{name}.jpg")
        labels = np.load(FASSEG / "real" / split / f"{name}.npy")
        tasks.append({"id": number + 1, "data": {"image": f"/data/upload/1/0123abcd-{split}-{name}.jpg"},
                      "annotations": [{"id": number + 1, "result": brush_results(labels, CLASSES)}]})
    for name in POOL[:2]:
        shutil.copy(FASSEG / "real" / "test" / f"{name}.jpg", root / "images" / f"pool-{name}.jpg")
    (root / "export.json").write_text(json.dumps(tasks))
    (root / "config.xml").write_text(label_config(CLASSES, palette(6)[:6].tolist()))
    return root


def test_labels_added_to_an_export_train_beside_it_and_the_pool_keeps_them(tmp_path):
    root = label_studio_export(tmp_path / "project") / "export.json"  # the file: nothing can be added beside it
    settings = dict(image_size=64, non_square="error", max_train=None, max_test=None, classes=None, ignore_label=None,
                    resize="lanczos", format="label_studio", unannotated="auto", unlabeled=None, added_labels=None,
                    split={"train": ["train-0001", "train-0002"]},
                    label_studio={"images": "images", "label_config": "config.xml"})
    target = DatasetLabels(root, settings, "config: datasets.faces")
    assert target.classes == CLASSES and not target.named and target.added == tmp_path / "project-added-labels"
    assert target.exports is None
    assert target.write("pool-0001", "pool-0001", as_drawn(held_aside("0001")))
    assert (target.added / "labelmap.txt").read_text().split() == CLASSES
    outputs = {split: tmp_path / f"{split}.zarr" for split in ("train", "test", "unlabeled")}
    summary = prepare_formatted(root, {**settings, "added_labels": str(target.added)}, outputs, True, "here")
    assert summary["splits"]["train"] == ["pool-0001", "train-0001", "train-0002"]
    train = zarr.open_group(str(outputs["train"]), mode="r")
    np.testing.assert_array_equal(train["original_labels"]["0"][:], expected_from_brush(held_aside("0001")))
    assert zarr.open_group(str(outputs["unlabeled"]), mode="r").attrs["image_ids"] == ["pool-0001", "pool-0002"]


def test_a_label_studio_dataset_takes_the_finished_tasks_as_one_more_export(tmp_path):
    """Tasks as the server exports them (an upload URL, brush strokes) written beside the
    dataset's own export: its pool image becomes a labelled one; writing them again changes nothing."""
    root = label_studio_export(tmp_path / "project")
    settings = {"format": "label_studio", "classes": None, "ignore_label": None, "unannotated": "auto",
                "label_studio": {"images": "images", "label_config": "config.xml", "annotation": "latest"}}
    target = DatasetLabels(root, settings, "config: datasets.faces")
    assert target.exports == root and "pool-0002" in target.images
    assert target.added == tmp_path / "project-added-labels"  # where a region batch's partial labels go
    finished = [{"id": 7, "data": {"image": "/data/upload/9/89abcdef-pool-0002.jpg", "ddpmseg_image": "pool-0002"},
                 "annotations": [{"id": 3, "result": brush_results(held_aside("0002"), CLASSES)}]}]
    assert target.write_export("ddpmseg-faces-next", json.loads(json.dumps(finished)))
    assert not target.write_export("ddpmseg-faces-next", json.loads(json.dumps(finished)))
    source = READERS["label_studio"](root, settings)
    [added] = [image for image in source.images if image.image_id == "pool-0002"]
    np.testing.assert_array_equal(added.class_map(), as_drawn(held_aside("0002")))
    assert [image.image_id for image in source.images if image.class_map is None] == ["pool-0001"]


def test_a_project_with_other_labels_is_named_in_one_line():
    class Project:
        title, label_config = "faces", label_config(["background", "skin", "beard"], [(0, 0, 0)] * 3)

    with pytest.raises(UserError, match=r"labels \['background', 'skin', 'beard'\].*missing: hair, eyes, nose, "
                                        r"mouth; not in the dataset: beard"):
        checked_classes(Project, CLASSES)


# --- against a real Label Studio


@pytest.fixture(scope="module")
def studio(label_studio_server, tmp_path_factory):
    """The paper-layout dataset, its batch pushed twice with the legacy token into a project
    "faces next ...", annotated (0001: brush strokes of its ground truth; 0002: polygons traced
    from it; 0003: skipped; 0004: none), and pulled twice through the command line."""
    root = tmp_path_factory.mktemp("studio")
    dataset = paper_dataset(root / "faces")
    batch = label_next_batch(root / "label_next" / "batch", dataset)
    (root / "config.yaml").write_text(f"datasets:\n  faces:\n    path: {dataset}\n")
    server = Server(label_studio_server.url, label_studio_server.legacy_token)
    title = f"faces next {uuid.uuid4().hex[:8]}"  # one project per xdist worker that runs these tests
    pushes = [push(server, root / "label_next", title) for _ in range(2)]
    tasks = {t.data["ddpmseg_image"]: t for t in server.client.tasks.list(project=pushes[0]["project"], fields="all")}
    polygons = traced_polygons(held_aside("0002"))
    server.client.annotations.create(id=tasks["0001"].id, result=brush_results(held_aside("0001"), CLASSES))
    server.client.annotations.create(id=tasks["0002"].id, result=polygons)
    server.client.annotations.create(id=tasks["0003"].id, result=[], was_cancelled=True)
    return {"root": root, "dataset": dataset, "batch": batch, "server": server, "pushes": pushes, "tasks": tasks,
            "polygons": polygons, "title": title}


def run_pull(studio, capsys, monkeypatch, token) -> str:
    monkeypatch.chdir(studio["root"])
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    assert main(["label-studio", "pull", "--project", studio["title"], "--dataset", "faces",
                 "--url", studio["server"].url]) == 0
    return capsys.readouterr().out


@pytest.mark.label_studio
def test_push_creates_the_project_and_each_task_once_with_its_prediction(studio):
    first, again = studio["pushes"]
    assert first["added"] == POOL and first["present"] == [] and again == {**first, "added": [], "present": POOL}
    project = studio["server"].client.projects.get(first["project"])
    assert config_classes(project.label_config, "project") == CLASSES
    for rank, name in enumerate(POOL, 1):
        task = studio["tasks"][name]
        assert task.data["rank"] == rank and task.data["image"].startswith(f"/data/upload/{first['project']}/")
        [prediction] = [p.model_dump() for p in task.predictions]
        assert prediction["model_version"] == "ddpm seed 0" and prediction["score"] == pytest.approx(0.5 - rank / 10)
        drawn = annotation_map(prediction, 128, 128, CLASSES, name)
        mask = np.asarray(Image.open(studio["batch"] / "masks" / f"{name}.png"))
        np.testing.assert_array_equal(drawn, as_drawn(mask))


@pytest.mark.label_studio
def test_pull_writes_what_was_submitted_and_a_second_pull_changes_nothing(studio, capsys, monkeypatch,
                                                                          label_studio_server):
    out = run_pull(studio, capsys, monkeypatch, label_studio_server.personal_token)
    assert "labels of 2 images written (0001, 0002), 0 unchanged; tasks skipped: 2 not annotated" in out
    train = studio["dataset"] / "real" / "train"
    np.testing.assert_array_equal(np.load(train / "0001.npy"), expected_from_brush(held_aside("0001")))
    np.testing.assert_array_equal(np.load(train / "0002.npy"), rasterised(studio["polygons"], (128, 128)))
    assert not (train / "0003.npy").exists() and not (train / "0004.npy").exists()
    stamps = {p.name: p.stat().st_mtime_ns for p in train.iterdir()}
    out = run_pull(studio, capsys, monkeypatch, label_studio_server.legacy_token)
    assert "labels of 0 images written, 2 unchanged" in out
    assert {p.name: p.stat().st_mtime_ns for p in train.iterdir()} == stamps


@pytest.mark.label_studio
def test_the_servers_exports_read_as_label_studio_and_coco_instances(studio, tmp_path):
    exports = studio["server"].client.projects.exports
    project = studio["pushes"][0]["project"]
    (tmp_path / "ls").mkdir()
    (tmp_path / "ls" / "export.json").write_text(json.dumps(exports.as_json(project)))
    (tmp_path / "ls" / "config.xml").write_text(studio["server"].client.projects.get(project).label_config)
    source = READERS["label_studio"](tmp_path / "ls", {"label_studio": {
        "images": str(studio["dataset"] / "unlabeled"), "label_config": "config.xml", "annotation": "latest"}})
    assert source.classes == CLASSES
    maps = {image.image_id: image.class_map() for image in source.images if image.class_map is not None}
    assert sorted(maps) == ["0001", "0002"]
    np.testing.assert_array_equal(np.where(maps["0001"] == UNCOVERED, 0, maps["0001"]),
                                  expected_from_brush(held_aside("0001")))
    coco = b"".join(exports.download_sync(project, export_type="COCO", download_all_tasks=True))
    with zipfile.ZipFile(io.BytesIO(coco)) as archive:
        archive.extractall(tmp_path / "coco")
    for name in POOL:
        (tmp_path / "coco" / "images").mkdir(exist_ok=True)
        shutil.copy(studio["dataset"] / "unlabeled" / f"{name}.jpg", tmp_path / "coco" / "images" / f"{name}.jpg")
    source = READERS["coco_instances"](tmp_path / "coco" / "result.json", {})
    [polygons] = [image for image in source.images if image.class_map is not None]
    drawn = polygons.class_map()
    expected = rasterised(studio["polygons"], (128, 128))
    names = [source.classes[v] if v >= 0 else "background" for v in drawn.ravel()]
    differ = np.array([CLASSES.index(n) for n in names]).reshape(drawn.shape) != expected
    # pycocotools and PIL put a polygon's edge pixels apart: they differ only next to an edge
    edge = cv2.dilate(expected, np.ones((3, 3), np.uint8)) != cv2.erode(expected, np.ones((3, 3), np.uint8))
    edge[[0, -1], :] = edge[:, [0, -1]] = True  # edges along the image's border
    assert differ.any() and not (differ & ~edge).any()


@pytest.mark.label_studio
def test_pull_errors_are_one_line_and_write_nothing(studio, capsys, monkeypatch, label_studio_server):
    server = studio["server"]
    annotation = server.client.annotations.create(id=studio["tasks"]["0004"].id, result=[
        {**traced_polygons(held_aside("0004"))[0], "value": {"points": [[0, 0], [50, 0], [50, 50]],
                                                              "polygonlabels": ["beard"]}}])
    train = studio["dataset"] / "real" / "train"
    before = {p.name: p.stat().st_mtime_ns for p in train.iterdir()}
    try:
        monkeypatch.chdir(studio["root"])
        for token, url, message in (
            (label_studio_server.legacy_token, server.url, "labels ['beard'] are not one class of"),
            ("0" * 40, server.url, "the token in LABEL_STUDIO_API_KEY is refused (401)"),
            (label_studio_server.legacy_token, "http://127.0.0.1:9", "Label Studio cannot be reached"),
        ):
            monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
            assert main(["label-studio", "pull", "--project", studio["title"], "--dataset", "faces", "--url", url]) == 2
            err = capsys.readouterr().err
            assert message in err and err.count("\n") == 1, err
            assert {p.name: p.stat().st_mtime_ns for p in train.iterdir()} == before  # nothing written
    finally:
        server.client.annotations.delete(annotation.id)


@pytest.mark.label_studio
def test_label_next_tasks_import_with_the_images_as_local_files(label_studio_server, tmp_path):
    """`label_next: {format: label_studio}`'s tasks.json: with the batch folder as Label Studio's
    local-files root (and a local-files storage of its images), the tasks import with their
    predictions and the server serves each image."""
    batch = label_studio_server.files_root / tmp_path.name
    label_next_batch(batch, paper_dataset(tmp_path / "faces"))
    client = Server(label_studio_server.url, label_studio_server.legacy_token).client
    project = client.projects.create(title=f"local {tmp_path.name}", label_config=label_config(CLASSES, [(0, 0, 0)] * 6))
    client.import_storage.local.create(project=project.id, path=str(batch / "images"), use_blob_urls=True)
    tasks = local_file_tasks(batch)
    assert [t["data"]["image"] for t in tasks] == [f"/data/local-files/?d=images/{name}.jpg" for name in POOL]
    for task in tasks:  # the files below the server's document root, as the batch folder would be
        task["data"]["image"] = task["data"]["image"].replace("?d=", f"?d={tmp_path.name}/")
    client.projects.import_tasks(id=project.id, request=tasks)
    imported = list(client.tasks.list(project=project.id, fields="all"))
    # the project's predictions, counted by their project: Label Studio 1.23 on SQLite may attach an
    # imported prediction to another import's task while the other worker imports too
    assert len(imported) == 4 and client.projects.get(project.id).total_predictions_number == 4
    with httpx.Client(base_url=label_studio_server.url) as browser:  # local files go to a logged-in session
        browser.get("/user/login/")
        browser.post("/user/login/", data={"email": label_studio_server.username, "password": label_studio_server.password,
                                           "csrfmiddlewaretoken": browser.cookies["csrftoken"]})
        for task in imported:
            answer = browser.get(task.data["image"])
            name = task.data["ddpmseg_image"]
            assert answer.status_code == 200 and answer.content == (batch / "images" / f"{name}.jpg").read_bytes()


@pytest.mark.label_studio
def test_push_into_a_project_made_by_hand_uses_its_own_tags(label_studio_server, tmp_path):
    """A project whose config names its tags otherwise (and lists the classes in another order)
    gets the predictions on its BrushLabels and Image; one with no BrushLabels is refused in one line."""
    batch = label_next_batch(tmp_path / "label_next" / "batch", paper_dataset(tmp_path / "faces"))
    server = Server(label_studio_server.url, label_studio_server.legacy_token)
    labels = "".join(f'<Label value="{name}"/>' for name in reversed(CLASSES))
    own = server.client.projects.create(title=f"own {tmp_path.name}", label_config=(
        f'<View><Image name="photo" value="$img"/><BrushLabels name="paint" toName="photo">{labels}</BrushLabels></View>'))
    push(server, batch, f"own {tmp_path.name}")
    for task in server.client.tasks.list(project=own.id, fields="all"):
        [prediction] = [p.model_dump() for p in task.predictions]
        assert task.data["img"].startswith("/data/upload/") and {r["from_name"] for r in prediction["result"]} == {"paint"}
        assert {r["to_name"] for r in prediction["result"]} == {"photo"}
    server.client.projects.create(title=f"outlines {tmp_path.name}", label_config=(
        f'<View><Image name="image" value="$image"/><PolygonLabels name="p" toName="image">{labels}</PolygonLabels></View>'))
    with pytest.raises(DatasetError, match="has no BrushLabels on an Image"):
        push(server, batch, f"outlines {tmp_path.name}")


@pytest.mark.label_studio
def test_a_push_cut_short_is_completed_by_the_next(label_studio_server, tmp_path):
    """Two images pushed (as a push stopped after them leaves them), then the whole batch: the
    project gets the other two, each image once."""
    batch = label_next_batch(tmp_path / "label_next" / "batch", paper_dataset(tmp_path / "faces"))
    server, title = Server(label_studio_server.url, label_studio_server.legacy_token), f"cut {uuid.uuid4().hex[:8]}"
    rows = pd.read_csv(batch / "batch.csv", dtype={"image": str, "name": str})
    rows.head(2).to_csv(batch / "batch.csv", index=False)
    assert push(server, batch, title)["added"] == POOL[:2]
    rows.to_csv(batch / "batch.csv", index=False)
    done = push(server, batch, title)
    assert done["added"] == POOL[2:] and done["present"] == POOL[:2]
    tasks = server.client.tasks.list(project=done["project"], fields="all")
    assert sorted(t.data["ddpmseg_image"] for t in tasks) == POOL


def region_batch(out: Path, dataset: Path, picks=(("0003", [5, 20, 31]), ("0004", [2, 17, 40]))) -> dict:
    """A region batch as `label_next` writes it (`unit: region`): pool 0003 and 0004, each with
    three SLIC regions asked (model size 64), the guess the ground truth with its hair grown, the
    rest the ignore label or, for 0004, its earlier labels (a 20 x 20 square of hair already in
    real/train/pool-0004.npy). Returns {image id: asked pixels (128, 128) bool}."""
    from ddpmseg.region_batch import asked_regions, pre_annotation
    from ddpmseg.regions import cut
    from ddpmseg.resizing import fit_image

    for folder in ("images", "masks", "asked"):
        (out / folder).mkdir(parents=True)
    earlier = np.full((128, 128), 255, np.uint8)
    earlier[:20, :20] = 2
    if not (dataset / "real" / "train" / "pool-0004.npy").exists():
        np.save(dataset / "real" / "train" / "pool-0004.npy", earlier)
        shutil.copy(dataset / "unlabeled" / "0004.jpg", dataset / "real" / "train" / "pool-0004.jpg")
    rows, asked_of = [], {}
    for rank, (name, ids) in enumerate(picks, 1):
        photo = np.asarray(Image.open(dataset / "unlabeled" / f"{name}.jpg").convert("RGB"))
        regions = cut(fit_image(photo, 64), np.ones((64, 64), bool), "slic", 8)
        asked = asked_regions(regions, ids, 128, 128, "error") >= 0
        guess = held_aside(name).copy()
        guess[cv2.dilate((guess == 2).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & (guess == 1)] = 2
        shutil.copy(dataset / "unlabeled" / f"{name}.jpg", out / "images" / f"{name}.jpg")
        mask = pre_annotation(guess, asked, earlier if name == "0004" else None, 255)
        Image.fromarray(mask, mode="L").save(out / "masks" / f"{name}.png")
        Image.fromarray(asked.astype(np.uint8) * 255, mode="L").save(out / "asked" / f"{name}.png")
        rows.append({"rank": rank, "image": name, "file": f"{name}.jpg", "name": f"pool-{name}",
                     "regions": ";".join(map(str, ids)), "asked_pixels": 3 * 64, "js_mean": 0.3 - rank / 10})
        asked_of[name] = asked
    pd.DataFrame(rows).to_csv(out / "batch.csv", index=False)
    (out / MANIFEST).write_text(json.dumps({
        "dataset": "faces", "method": "ddpm", "seed": 0, "strategy": "uncertainty", "unit": "region",
        "classes": CLASSES, "colours": palette(len(CLASSES))[: len(CLASSES)].tolist(), "ignore_label": 255}))
    return asked_of


@pytest.mark.label_studio
def test_a_region_batch_asks_for_its_regions_and_pull_writes_only_them(label_studio_server, tmp_path, capsys,
                                                                        monkeypatch):
    """Pushed, the tasks carry the asked regions and a prediction only there; the annotator paints
    the whole face (more than asked); pull writes the asked pixels only, over the ignore label
    (0003) or the image's earlier labels (0004), and a second pull changes nothing."""
    dataset = paper_dataset(tmp_path / "faces")
    asked = region_batch(tmp_path / "label_next" / "batch", dataset)
    (tmp_path / "config.yaml").write_text(f"datasets:\n  faces:\n    path: {dataset}\n")
    server = Server(label_studio_server.url, label_studio_server.legacy_token)
    title = f"faces regions {uuid.uuid4().hex[:8]}"
    project = push(server, tmp_path / "label_next", title)["project"]
    tasks = {t.data["ddpmseg_image"]: t for t in server.client.tasks.list(project=project, fields="all")}
    assert sorted(tasks) == ["0003", "0004"]
    for name, task in tasks.items():
        assert task.data["ddpmseg_regions"] == {"0003": "5;20;31", "0004": "2;17;40"}[name]
        np.testing.assert_array_equal(read_asked(task.data["ddpmseg_asked"]), asked[name])
        [prediction] = [p.model_dump() for p in task.predictions]
        drawn = annotation_map(prediction, 128, 128, CLASSES, name)
        mask = np.asarray(Image.open(tmp_path / "label_next" / "batch" / "masks" / f"{name}.png"))
        np.testing.assert_array_equal(drawn, as_drawn(np.where(asked[name], mask, 255)))  # the guess, asked only
        assert np.count_nonzero(drawn >= 0) > 100
        server.client.annotations.create(id=task.id, result=brush_results(held_aside(name), CLASSES))
    studio = {"root": tmp_path, "title": title, "server": server}
    out = run_pull(studio, capsys, monkeypatch, label_studio_server.legacy_token)
    assert "labels of 2 images written (0003, 0004)" in out
    train = dataset / "real" / "train"
    painted = {name: expected_from_brush(held_aside(name)) for name in asked}
    np.testing.assert_array_equal(np.load(train / "pool-0003.npy"), np.where(asked["0003"], painted["0003"], 255))
    earlier = np.full((128, 128), 255, np.uint8)
    earlier[:20, :20] = 2
    np.testing.assert_array_equal(np.load(train / "pool-0004.npy"), np.where(asked["0004"], painted["0004"], earlier))
    assert "labels of 0 images written, 2 unchanged" in run_pull(studio, capsys, monkeypatch,
                                                                label_studio_server.legacy_token)
    # the next round asks two other regions of 0003: a task of its own in the same project; pulled,
    # both rounds' regions are labelled
    again = region_batch(tmp_path / "round2" / "batch", dataset, [("0003", [8, 12])])
    assert push(server, tmp_path / "round2", title)["added"] == ["0003"]
    [task] = [t for t in server.client.tasks.list(project=project, fields="all") if t.data["ddpmseg_regions"] == "8;12"]
    server.client.annotations.create(id=task.id, result=brush_results(held_aside("0003"), CLASSES))
    assert "labels of 1 images written (0003), 1 unchanged" in run_pull(studio, capsys, monkeypatch,
                                                                        label_studio_server.legacy_token)
    both = asked["0003"] | again["0003"]
    assert again["0003"].any() and not (again["0003"] & asked["0003"]).any()
    np.testing.assert_array_equal(np.load(train / "pool-0003.npy"), np.where(both, painted["0003"], 255))
