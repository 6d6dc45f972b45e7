"""The JSON annotations of the labelme tool (wkentaro/labelme; format `labelme`), which datumaro
does not read (its `label_me` is MIT LabelMe's XML)::

    <path>/[<subset>/]NAME.json    {"imagePath": "NAME.jpg", "imageHeight": H, "imageWidth": W,
                                    "shapes": [{"label": "hair", "shape_type": "polygon",
                                                "points": [[x, y], ...]}, ...], ...}
    <path>/[<subset>/]NAME.jpg     the image, where imagePath says (relative to the JSON's folder;
                                   a path from another machine is found by its tail, `formats.files`)
    <path>/labels.txt              optional: the class names, one per line (labelme2voc's file)

An image's class map is drawn as labelme's own `shapes_to_label` draws it: shapes in the file's
order, a later one on top; polygons, rectangles and circles filled with PIL's ImageDraw (outline
included), masks (labelme 5's `shape_type: mask`, a base64 PNG over the box of its two points)
pasted. Lines and points are no region and are left out. The label `__ignore__` marks ignored
pixels; `_background_` is the background class (`unannotated: auto`). Classes: labels.txt's, in
its order (`__ignore__` left out), else every label in order of first appearance (files sorted by
path). An image below `path` that no JSON names joins the unlabeled pool; a JSON's first folder
named like a subset (train, val, test, ...) is its subset.
"""

from __future__ import annotations

import base64
import io
import json
import pathlib

import numpy as np
from PIL import Image, ImageDraw

from ddpmseg.errors import DatasetError
from ddpmseg.folders import walk_files
from ddpmseg.formats.files import ImageIndex
from ddpmseg.formats.image_mask import SUBSET_FOLDERS
from ddpmseg.formats.source import IGNORED, UNCOVERED, Source, SourceImage
from ddpmseg.images import IMAGE_SUFFIXES, shown_size, turned_mask_problem

IGNORE_NAME = "__ignore__"
REGION_SHAPES = ("polygon", "rectangle", "circle", "mask")
OTHER_SHAPES = ("line", "linestrip", "point", "points")
EDGE_TOLERANCE = 1.0  # pixels: a point this far outside the image is still on its edge


def read(root, settings: dict) -> Source:
    """Every labelme JSON below ``root`` (settings unused: the classes come from the files)."""
    root = pathlib.Path(root)
    files = sorted(walk_files(root), key=str)
    annotations = [root / rel for rel in files if rel.suffix.lower() == ".json"]
    if not annotations:
        raise DatasetError(f"{root}: holds no labelme JSON files. Point `path` at the folder labelme saved them "
                           "in (MIT LabelMe's XML is format label_me).")
    documents = {path: _load(path) for path in annotations}
    classes = _classes(root, documents)
    images, referenced, index = [], set(), ImageIndex(root)
    for path, document in documents.items():
        written = document["imagePath"]  # relative to the JSON, or as on the annotator's machine
        image_path = index.find(written, [path.parent], str(path)) or path.parent / written.replace("\\", "/")
        image_path = image_path.resolve()
        if image_path in referenced:
            raise DatasetError(f"{path}: names the image {image_path}, which another JSON annotates too. Keep one "
                               "annotation per image.")
        referenced.add(image_path)
        rel = path.relative_to(root).with_suffix("")
        subset = rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in SUBSET_FOLDERS else ""
        images.append(SourceImage(rel.as_posix(), subset, image_path, str(path),
                                  _reader(path, document, image_path, classes)))
    for rel in files:
        path = (root / rel).resolve()
        if rel.suffix.lower() in IMAGE_SUFFIXES and path not in referenced:
            subset = rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in SUBSET_FOLDERS else ""
            images.append(SourceImage(rel.with_suffix("").as_posix(), subset, root / rel))
    return Source(classes, None, images)


def _load(path: pathlib.Path) -> dict:
    """One labelme JSON; DatasetError naming it when it is none."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read as JSON ({exc}). Fix or remove the file.") from exc
    if not isinstance(document, dict) or not isinstance(document.get("shapes"), list) \
            or not isinstance(document.get("imagePath"), str):
        raise DatasetError(f"{path}: no labelme annotation (it needs 'imagePath' and 'shapes'). Remove the file "
                           "from the dataset's folder, or save it again with labelme.")
    return document


def _classes(root: pathlib.Path, documents: dict) -> list:
    """labels.txt's names (without __ignore__), else the labels in order of first appearance."""
    listed = root / "labels.txt"
    if listed.is_file():
        names = [line.strip() for line in listed.read_text(encoding="utf-8").splitlines()
                 if line.strip() and line.strip() != IGNORE_NAME]
        if len(set(names)) != len(names) or not names:
            raise DatasetError(f"{listed}: needs distinct class names, one per line; got {names}. Fix the file.")
        return names
    names = []
    for document in documents.values():
        for shape in document["shapes"]:
            label = shape.get("label")
            if isinstance(label, str) and label and label not in names and label != IGNORE_NAME \
                    and (shape.get("shape_type") or "polygon") in REGION_SHAPES:
                names.append(label)
    return names


def _reader(path: pathlib.Path, document: dict, image_path: pathlib.Path, classes: list):
    def class_map() -> np.ndarray:
        if not image_path.is_file():
            raise DatasetError(f"{path}: annotates {image_path}, which is missing. Put the image there (imagePath is "
                               "relative to the JSON's folder), or remove the JSON.")
        width, height, tag = shown_size(image_path)
        said = (document.get("imageWidth"), document.get("imageHeight"))
        turned = None not in said and turned_mask_problem(said, (width, height), tag, path, image_path.name)
        if turned:
            raise DatasetError(turned)
        if None not in said and tuple(said) != (width, height):
            raise DatasetError(f"{path}: says the image is {said[0]}x{said[1]} (width x height), {image_path.name} is "
                               f"{width}x{height}. Annotate the image as it is, or restore the annotated one.")
        out = np.full((height, width), UNCOVERED, np.int32)
        for number, shape in enumerate(document["shapes"], 1):
            kind = shape.get("shape_type") or "polygon"
            if kind in OTHER_SHAPES:
                continue
            label = shape.get("label")
            where = f"{path}: shape {number} ({kind} {label!r})"
            if not isinstance(label, str) or not label:
                raise DatasetError(f"{where}: has no label. Label it in labelme.")
            if kind not in REGION_SHAPES:
                raise DatasetError(f"{where}: unknown shape_type. Use polygon, rectangle, circle or mask.")
            if label != IGNORE_NAME and label not in classes:
                raise DatasetError(f"{where}: {label!r} is not in labels.txt ({', '.join(classes)}). Add it there, "
                                   "or relabel the shape.")
            out[_pixels(shape, kind, width, height, where)] = IGNORED if label == IGNORE_NAME else classes.index(label)
        return out
    return class_map


def _pixels(shape: dict, kind: str, width: int, height: int, where: str) -> np.ndarray:
    """(H, W) bool: the pixels a region shape covers, as labelme's shape_to_mask draws it."""
    points = np.asarray(shape.get("points") or [], np.float64).reshape(-1, 2)
    need = 3 if kind == "polygon" else 2
    if len(points) < need:
        raise DatasetError(f"{where}: has {len(points)} points; a {kind} needs {need}. Redraw it or remove it.")
    low, high = points.min(axis=0), points.max(axis=0)
    if kind != "circle" and ((low < -EDGE_TOLERANCE).any() or high[0] > width + EDGE_TOLERANCE
                             or high[1] > height + EDGE_TOLERANCE):
        raise DatasetError(f"{where}: reaches ({low[0]:.0f}, {low[1]:.0f})..({high[0]:.0f}, {high[1]:.0f}), outside "
                           f"the {width}x{height} image. Fix the shape, or the image it belongs to.")
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    xy = [tuple(p) for p in points]
    if kind == "polygon":
        draw.polygon(xy, outline=1, fill=1)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = points[:2]
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=1, fill=1)
    elif kind == "circle":
        (cx, cy), edge = points[0], points[1]
        r = float(np.hypot(*(edge - points[0])))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    else:
        return _mask_pixels(shape, points, width, height, where)
    return np.asarray(canvas, bool)


def _mask_pixels(shape: dict, points: np.ndarray, width: int, height: int, where: str) -> np.ndarray:
    """A `mask` shape: its base64 PNG pasted at the box its two points span (labelme 5)."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(shape["mask"]))) as im:
            patch = np.asarray(im) > 0
    except Exception as exc:  # missing, not base64 or not an image: the same to the user
        raise DatasetError(f"{where}: its 'mask' is no base64 PNG ({type(exc).__name__}). Save it again with "
                           "labelme.") from exc
    patch = patch if patch.ndim == 2 else patch.any(axis=-1)
    x0, y0 = (int(v) for v in points.min(axis=0))
    rows, cols = min(patch.shape[0], height - y0), min(patch.shape[1], width - x0)
    out = np.zeros((height, width), bool)
    out[y0:y0 + rows, x0:x0 + cols] = patch[:rows, :cols]
    return out
