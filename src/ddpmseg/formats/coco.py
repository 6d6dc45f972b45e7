"""COCO instance (or stuff) annotations as tools write them (formats `coco_instances`,
`coco_stuff`, `roboflow_coco`)::

    <path>/annotations/instances_<subset>.json   COCO's own layout (datumaro's writer too)
    <path>/annotations.json + JPEGImages/        labelme2coco: file_name 'JPEGImages/NAME.jpg'
    <path>/result.json + images/                 Label Studio's COCO export
    <path>/{train,valid,test}/_annotations.coco.json beside the images   Roboflow
    <path> = one JSON file                       that file alone

`path` is a COCO JSON file or a folder holding one or more (every JSON below it with `images`,
`annotations` and `categories`; where files are named `<task>_<subset>.json`, only the task's:
`instances`, or `stuff` for coco_stuff). Several files are subsets, named by `<task>_<subset>`,
else by the file's name, else by its folder (Roboflow's train/valid/test); one file alone is
subset "" unless its name or folder says one. An image is found by its `file_name` relative to the
JSON's folder, else by the longest tail of that name below the folder (an images/ or JPEGImages/
folder first; `ddpmseg.formats.files`), so absolute paths and paths from another machine read.

Classes are the categories in id order (ids need not start at 1 or be contiguous: COCO's 1..90,
labelme2coco's 0 = `_background_`; a name listed twice is one class). An image's class map draws
its annotations' polygons, uncompressed and compressed (crowd) RLE at the image's shown size,
larger regions first, so that where they overlap the smaller lies on top. An annotation without a
segmentation (a box only) is skipped and counted (`Source.skipped`). Images below the folder that
no JSON lists, and listed images without annotations, join the unlabeled pool.
"""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np

from ddpmseg.errors import DatasetError
from ddpmseg.folders import walk_files
from ddpmseg.formats.files import PREFERRED_FOLDERS, ImageIndex, written_parts
from ddpmseg.formats.source import UNCOVERED, Source, SourceImage
from ddpmseg.images import shown_size, turned_mask_problem

TASK_FILE = re.compile(r"^(instances|stuff|panoptic|person_keypoints|captions|image_info|labels)_(.+)$")
SUBSET_NAMES = ("train", "training", "trainval", "val", "valid", "validation", "test", "testing")
EDGE_TOLERANCE = 1.0  # pixels: a polygon vertex this far outside the image is still on its edge


def is_coco(document) -> bool:
    """Whether a parsed JSON document is COCO annotations."""
    return isinstance(document, dict) and all(isinstance(document.get(k), list)
                                              for k in ("images", "annotations", "categories"))


def coco_files(root: pathlib.Path, task: str = "instances") -> list:
    """The COCO JSON files at ``root`` (the file itself, or those below the folder) as
    [(path, document)], of ``task`` where files are named `<task>_<subset>.json`."""
    if root.is_file():
        return [(root, _load(root))]
    found = []
    for rel in sorted(walk_files(root, strict=False), key=str):
        if rel.suffix.lower() != ".json":
            continue
        try:
            document = json.loads((root / rel).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, OSError):
            continue  # not COCO: another tool's file beside the export
        if is_coco(document):
            found.append((root / rel, document))
    tasks = {path: TASK_FILE.match(path.stem) for path, _ in found}
    if any(tasks.values()):
        found = [(path, document) for path, document in found if tasks[path] and tasks[path].group(1) == task]
    return found


def read(root, settings: dict) -> Source:
    """The COCO file or folder at ``root``."""
    root = pathlib.Path(root)
    task = "stuff" if settings.get("format") == "coco_stuff" else "instances"
    files = coco_files(root, task)
    folder = root.parent if root.is_file() else root
    if not files:
        raise DatasetError(f"{root}: holds no COCO JSON (a file with 'images', 'annotations' and 'categories'"
                           f"{'; of task ' + task if task != 'instances' else ''}). Point `path` at the export's "
                           "JSON file or the folder holding it.")
    subsets = _subset_names([path for path, _ in files], folder)
    classes, class_of = _classes(files)
    index = ImageIndex(folder)
    images, listed, skipped = [], set(), 0
    for path, document in files:
        by_image = {}
        for number, annotation in enumerate(document["annotations"]):
            if not isinstance(annotation, dict):
                raise DatasetError(f"{path}: annotations[{number}] is no object. Fix the file.")
            if not annotation.get("segmentation"):
                skipped += 1  # a box (or keypoints) only: no pixels to learn from
                continue
            by_image.setdefault(annotation.get("image_id"), []).append((number, annotation))
        for record in document["images"]:
            where = f"{path}: image {record.get('id')!r} ({record.get('file_name')!r})"
            written = str(record.get("file_name") or "")
            try:
                bases = [path.parent, folder / "images" / subsets[path], folder / "images", folder]
                image_path = index.find(written, bases, where)
            except DatasetError as exc:
                image_path, problem = path.parent / written, exc
            else:
                problem = None
                if image_path is None:
                    image_path = path.parent / written
                    if record.get("id") in by_image:
                        problem = DatasetError(f"{where}: annotated, but no image of that name is below {folder}. "
                                               "Put the image in the export's folder (beside the JSON, or in "
                                               "images/), or remove its record.")
            listed.add(image_path.resolve())
            image_id = _image_id(written, image_path)
            annotations = by_image.get(record.get("id"))
            if annotations is None and problem is None:
                images.append(SourceImage(image_id, subsets[path], image_path))
                continue
            images.append(SourceImage(image_id, subsets[path], image_path, where,
                                      _reader(path, record, annotations or [], class_of, classes, image_path,
                                              where, problem)))
    for extra in index.paths():
        if extra.resolve() not in listed:
            images.append(SourceImage(extra.relative_to(folder).with_suffix("").as_posix(), "", extra))
    return Source(classes, None, images, {"box-only annotations": skipped} if skipped else {})


def _load(path: pathlib.Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read as JSON ({exc}). Fix the file, or export it again.") from exc
    if not is_coco(document):
        raise DatasetError(f"{path}: no COCO annotations (it needs 'images', 'annotations' and 'categories' "
                           "lists). Give the export's COCO JSON.")
    return document


def _subset_names(paths: list, folder: pathlib.Path) -> dict:
    """{path: subset}: `<task>_<subset>` names first; one file alone is "" unless its name or
    folder is a subset's; several are named by their file, or by their folder where files share a name."""
    names = {}
    for path in paths:
        match = TASK_FILE.match(path.stem)
        names[path] = match.group(2) if match else None
    rest = [path for path in paths if names[path] is None]
    stems = [path.name.split(".")[0].lstrip("_") for path in rest]
    for path, stem in zip(rest, stems):
        parent = path.parent.relative_to(folder).as_posix() if path.parent != folder else ""
        if len(rest) == 1:
            names[path] = stem if stem in SUBSET_NAMES else path.parent.name if path.parent.name in SUBSET_NAMES else ""
        else:
            names[path] = stem if stems.count(stem) == 1 else parent
    return names


def _classes(files: list) -> tuple[list, dict]:
    """Class names (the categories by id, files in order, a name once) and {(path, category id): class index}."""
    classes, class_of = [], {}
    for path, document in files:
        for category in sorted(document["categories"], key=lambda c: (not isinstance(c.get("id"), int), c.get("id"))):
            name = category.get("name")
            if not isinstance(name, str) or not name:
                raise DatasetError(f"{path}: category {category.get('id')!r} has no name. Name it in the file.")
            if name not in classes:
                classes.append(name)
            class_of[(path, category.get("id"))] = classes.index(name)
    return classes, class_of


def _image_id(written: str, image_path: pathlib.Path) -> str:
    """An image's id: its `file_name` without suffix, an images/ or JPEGImages/ folder at its start
    left out; the file's name alone for an absolute path or one that leaves its folder."""
    parts = list(written_parts(written))
    if not parts or pathlib.PurePath(written.replace("\\", "/")).is_absolute() or ".." in parts or ":" in written:
        return image_path.stem
    if len(parts) > 1 and parts[0].lower() in PREFERRED_FOLDERS:
        parts = parts[1:]
    return pathlib.PurePosixPath(*parts).with_suffix("").as_posix()


def _reader(path: pathlib.Path, record: dict, annotations: list, class_of: dict, classes: list,
            image_path: pathlib.Path, where: str, problem: DatasetError | None):
    """The class map of one image record of the JSON at ``path`` (``problem``: why it cannot be drawn)."""
    def class_map() -> np.ndarray:
        if problem is not None:
            raise problem
        if not image_path.is_file():
            raise DatasetError(f"{where}: annotated, but its image {image_path} is missing. Put the image there, or "
                               "remove its record.")
        width, height, tag = shown_size(image_path)
        said = (record.get("width"), record.get("height"))
        if None not in said:
            turned = turned_mask_problem(said, (width, height), tag, where, image_path.name)
            if turned:
                raise DatasetError(turned)
            if tuple(said) != (width, height):
                raise DatasetError(f"{where}: says the image is {said[0]}x{said[1]} (width x height), "
                                   f"{image_path.name} is {width}x{height}. Annotate the image as it is, or restore "
                                   "the annotated one.")
        regions = []
        for number, annotation in annotations:
            label = class_of.get((path, annotation.get("category_id")))
            if label is None:
                raise DatasetError(f"{where}: annotations[{number}] has category_id "
                                   f"{annotation.get('category_id')!r}, which no category has. Fix the file.")
            pixels = _pixels(annotation["segmentation"], width, height, f"{where}: annotations[{number}]",
                             classes[label])
            regions.append((int(pixels.sum()), label, pixels))
        out = np.full((height, width), UNCOVERED, np.int32)
        for _, label, pixels in sorted(regions, key=lambda r: -r[0]):  # stable: ties keep the file's order
            out[pixels] = label
        return out
    return class_map


def _pixels(segmentation, width: int, height: int, where: str, name: str) -> np.ndarray:
    """(H, W) bool: the pixels of a COCO segmentation (polygons, uncompressed or compressed RLE)."""
    from pycocotools import mask as coco_mask

    if isinstance(segmentation, list):
        polygons = [np.asarray(p, np.float64) for p in segmentation if len(p)]
        for polygon in polygons:
            if len(polygon) < 6 or len(polygon) % 2:
                raise DatasetError(f"{where}: a polygon of class {name!r} has {len(polygon)} coordinates; it needs x, y pairs of at "
                                   "least 3 points. Redraw it or remove it.")
            points = polygon.reshape(-1, 2)
            low, high = points.min(axis=0), points.max(axis=0)
            if (low < -EDGE_TOLERANCE).any() or high[0] > width + EDGE_TOLERANCE or high[1] > height + EDGE_TOLERANCE:
                raise DatasetError(f"{where}: a polygon of class {name!r} reaches ({low[0]:.0f}, {low[1]:.0f})..({high[0]:.0f}, "
                                   f"{high[1]:.0f}), outside the {width}x{height} image. Fix the polygon, or the "
                                   "image it belongs to.")
        rles = coco_mask.frPyObjects([p.tolist() for p in polygons], height, width)
        return coco_mask.decode(coco_mask.merge(rles)).astype(bool)
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            raise DatasetError(f"{where}: its RLE mask is {segmentation['size'][1]}x{segmentation['size'][0]} "
                               f"(width x height), the image {width}x{height}. Export the mask at the image's size.")
        rle = segmentation
        if isinstance(rle["counts"], list):  # uncompressed RLE (crowd regions)
            rle = coco_mask.frPyObjects(rle, height, width)
        elif isinstance(rle["counts"], str):
            rle = {"size": rle["size"], "counts": rle["counts"].encode()}
        return coco_mask.decode(rle).astype(bool)
    raise DatasetError(f"{where}: segmentation is neither polygons nor an RLE mask. Fix the file.")
