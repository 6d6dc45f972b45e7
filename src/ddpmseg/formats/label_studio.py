"""Label Studio's JSON export (Export > JSON, the full one) of a project labelled with
`BrushLabels` and/or `PolygonLabels` (format `label_studio`)::

    <path>                  the export: the .json file, or a folder of exports (every .json in it)
    label_studio.images     the folder of the project's images (default: the export's folder)
    label_studio.label_config   the project's labelling config (XML), for the class list

Several exports in a folder are read in file-name order, a task of a later one replacing an
earlier one's task of the same image where it is annotated (`ddpmseg label-studio pull` adds
its project's export so). An export is a list of tasks, each {"data": {"image": URL},
"annotations": [{"result": [...], "was_cancelled": bool, "ground_truth": bool, "updated_at":
...}, ...]}. A task's image is found
in the images folder (recursively, by the longest trailing match: `formats.files`) by the
name its URL holds: an upload (/data/upload/<project>/<8 hex>-<name>: the prefix Label Studio
adds is removed), a local-storage file (/data/local-files/?d=<path>), or any URL's file name.

One annotation of a task is read (`label_studio.annotation`): the latest (by updated_at, the
default), the first, or the one marked ground truth (the latest where none is); cancelled (skipped) annotations are left
out, and a task with none left joins the unlabeled pool. Its results are drawn in order, a
later one on top, at the image's original size (`original_width` x `original_height`):
brush strokes from Label Studio's RLE (label-studio-sdk's `converter.brush.decode_rle`: the
stroke's pixels are those with alpha > 0) and polygons from points in percent of the image
size (filled with outline, as labelme draws). Other results (rectangles, keypoints, choices,
...) are no region: they are skipped and counted. Classes: the labelling config's `<Label
value=...>` of its BrushLabels and PolygonLabels, in order, else every label in order of first
appearance. Images in the images folder that no task names join the unlabeled pool too.
"""

from __future__ import annotations

import json
import pathlib
import urllib.parse
import xml.etree.ElementTree as ElementTree

import numpy as np
from PIL import Image, ImageDraw

from ddpmseg.errors import DatasetError
from ddpmseg.folders import walk_files
from ddpmseg.formats.files import UPLOAD_PREFIX, ImageIndex
from ddpmseg.formats.source import UNCOVERED, Source, SourceImage
from ddpmseg.images import IMAGE_SUFFIXES, shown_size

REGION_RESULTS = {"brushlabels": "brushlabels", "polygonlabels": "polygonlabels"}  # result type -> its labels key


def read(root, settings: dict) -> Source:
    """The tasks of the export at ``root``, or of every export in the folder ``root``
    (`settings["label_studio"]`: images, label_config, annotation)."""
    options = {"images": None, "label_config": None, "annotation": "latest", **(settings.get("label_studio") or {})}
    exports = _export_files(pathlib.Path(root))
    base = exports[0].parent
    tasks = [(f"{export}: task {task.get('id', number)}", task) for export in exports
             for number, task in enumerate(_load(export), 1)]
    images_root = _folder(options["images"], base, "images") if options["images"] else base
    if options["label_config"]:
        config = _folder(options["label_config"], base, "label_config")
        classes = config_classes(config.read_text(encoding="utf-8"), str(config))
    else:
        classes = _seen_classes([task for _, task in tasks], options["annotation"])
    index, chosen = ImageIndex(images_root), {}  # {image file: (where, annotation or None)}
    for where, task in tasks:
        written = image_name(task, where)
        image_path = index.find(written, [images_root], where)
        if image_path is None:
            raise DatasetError(f"{where}: its image {written!r} is not below {images_root}. Set label_studio.images "
                               "to the folder of the project's images.")
        annotation = chosen_annotation(task, options["annotation"])
        if annotation is not None or image_path.resolve() not in chosen:  # a later export's annotation wins
            chosen[image_path.resolve()] = (where, image_path, annotation)
    images, skipped = [], {}
    for where, image_path, annotation in chosen.values():
        image_id = image_path.relative_to(images_root).with_suffix("").as_posix() \
            if image_path.is_relative_to(images_root) else image_path.stem
        if annotation is None:
            images.append(SourceImage(image_id, "", image_path))
            continue
        for result in annotation.get("result") or []:
            if result.get("type") not in REGION_RESULTS:
                kind = f"{result.get('type', 'untyped')} results"
                skipped[kind] = skipped.get(kind, 0) + 1
        images.append(SourceImage(image_id, "", image_path, where, _reader(annotation, image_path, classes, where)))
    for rel in sorted(walk_files(images_root), key=str):  # images of no task join the pool too
        if rel.suffix.lower() in IMAGE_SUFFIXES and (images_root / rel).resolve() not in chosen:
            images.append(SourceImage(rel.with_suffix("").as_posix(), "", images_root / rel))
    return Source(classes, None, images, skipped)


def _export_files(root: pathlib.Path) -> list:
    """The exports: ``root`` itself, or every .json file in the folder ``root`` (sorted by name)."""
    if root.is_file():
        return [root]
    found = sorted(root.glob("*.json")) if root.is_dir() else []
    if not found:
        raise DatasetError(f"{root}: holds no .json file; a Label Studio export is one (Export > JSON). Point `path` "
                           "at the export, or at the folder holding it.")
    return found


def _folder(value: str, base: pathlib.Path, key: str) -> pathlib.Path:
    """A path setting, relative to the export's folder unless absolute; DatasetError when missing."""
    path = pathlib.Path(value) if pathlib.Path(value).is_absolute() else base / value
    if not path.exists():
        raise DatasetError(f"label_studio.{key}: {path} not found. Fix the dataset's label_studio.{key}.")
    return path


def _load(export: pathlib.Path) -> list:
    """The export's tasks; DatasetError naming the file when it is no Label Studio JSON export."""
    try:
        tasks = json.loads(export.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{export}: cannot be read as JSON ({exc}). Export the project again (Export > JSON).") \
            from exc
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and isinstance(t.get("data"), dict) for t in tasks):
        raise DatasetError(f"{export}: no Label Studio JSON export (a list of tasks with 'data'). Export the project "
                           "with Export > JSON (not JSON-MIN, COCO or CSV).")
    return tasks


def image_name(task: dict, where: str) -> str:
    """The image file a task's URL names, as a path to look for below the images folder."""
    urls = [v for v in task["data"].values() if isinstance(v, str)]
    if not urls:
        raise DatasetError(f"{where}: has no image URL in its data. Export a project of images.")
    url = urllib.parse.urlparse(urls[0])
    local = urllib.parse.parse_qs(url.query).get("d")
    if local:  # local-files storage: ?d=<path below the storage root>
        return local[0]
    path = urllib.parse.unquote(url.path)
    name = path.rsplit("/", 1)[-1]
    if "/data/upload/" in path:
        name = UPLOAD_PREFIX.sub("", name)
    return name


def chosen_annotation(task: dict, choice: str) -> dict | None:
    """The annotation of a task to read (`choice`; ground_truth: the one marked so, else the
    latest), or None where it has none left."""
    kept = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not kept:
        return None
    marked = [a for a in kept if a.get("ground_truth")]
    if choice == "ground_truth" and marked:
        return marked[0]
    ordered = sorted(kept, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0))
    return ordered[0] if choice == "first" else ordered[-1]


def config_classes(config: str, where: str) -> list:
    """The Label values of a labelling config's (XML text) BrushLabels and PolygonLabels, in
    order; `where` names its origin in messages."""
    try:
        tree = ElementTree.fromstring(config)
    except ElementTree.ParseError as exc:
        raise DatasetError(f"{where}: cannot be read as XML ({exc}). Copy the project's labelling config "
                           "(Settings > Labeling Interface > Code) into the file.") from exc
    names = [label.get("value") for tag in ("BrushLabels", "PolygonLabels") for element in tree.iter(tag)
             for label in element.iter("Label")]
    names = list(dict.fromkeys(name for name in names if name))
    if not names:
        raise DatasetError(f"{where}: has no <Label value=...> under BrushLabels or PolygonLabels. Give the "
                           "project's labelling config.")
    return names


def _seen_classes(tasks: list, choice: str) -> list:
    """Every region label of the chosen annotations, in order of first appearance."""
    names = []
    for task in tasks:
        annotation = chosen_annotation(task, choice)
        for result in (annotation or {}).get("result") or []:
            key = REGION_RESULTS.get(result.get("type"))
            for name in (result.get("value") or {}).get(key, []) if key else []:
                if name not in names:
                    names.append(name)
    return names


def _reader(annotation: dict, image_path: pathlib.Path, classes: list, where: str):
    def class_map() -> np.ndarray:
        width, height, _ = shown_size(image_path)
        return annotation_map(annotation, width, height, classes, where, image_path.name)
    return class_map


def annotation_map(annotation: dict, width: int, height: int, classes: list, where: str,
                   image: str = "the image") -> np.ndarray:
    """An annotation's brush strokes and polygons drawn in order, a later one on top: (height,
    width) int32 indices into ``classes``, UNCOVERED where none lies. DatasetError (starting with
    ``where``) for a result drawn on an image of another size than ``image`` (width x height) or
    labelled with no one class of ``classes``."""
    out = np.full((height, width), UNCOVERED, np.int32)
    for number, result in enumerate(annotation.get("result") or [], 1):
        key = REGION_RESULTS.get(result.get("type"))
        if key is None:
            continue
        value, here = result.get("value") or {}, f"{where}: result {number} ({result['type']})"
        size = (result.get("original_width"), result.get("original_height"))
        if size != (width, height):
            raise DatasetError(f"{here}: was drawn on a {size[0]}x{size[1]} image, {image} is "
                               f"{width}x{height}. Put the annotated image in the images folder.")
        labels = value.get(key) or []
        if len(labels) != 1 or labels[0] not in classes:
            raise DatasetError(f"{here}: labels {labels} are not one class of {classes}. Give each region one "
                               "label of the labelling config.")
        out[_pixels(result["type"], value, width, height, here)] = classes.index(labels[0])
    return out


def _pixels(kind: str, value: dict, width: int, height: int, where: str) -> np.ndarray:
    """(H, W) bool: the pixels of a brush stroke or a polygon."""
    if kind == "brushlabels":
        from label_studio_sdk.converter.brush import decode_rle

        if value.get("format") != "rle" or not value.get("rle"):
            raise DatasetError(f"{where}: has no RLE brush data. Export the project again (Export > JSON).")
        flat = np.asarray(decode_rle(value["rle"]), np.uint8)
        if flat.size != width * height * 4:
            raise DatasetError(f"{where}: its brush data has {flat.size} values, not {width}x{height}x4. Export the "
                               "project again.")
        return flat.reshape(height, width, 4)[:, :, 3] > 0
    points = np.asarray(value.get("points") or [], np.float64).reshape(-1, 2)
    if len(points) < 3:
        raise DatasetError(f"{where}: has {len(points)} points; a polygon needs 3. Redraw it or remove it.")
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([(x * width / 100, y * height / 100) for x, y in points], outline=1, fill=1)
    return np.asarray(canvas, bool)
