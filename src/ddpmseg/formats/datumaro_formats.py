"""Every annotation format that datumaro (OpenVINO's dataset library) reads: Pascal VOC, COCO
(instances, stuff, panoptic; polygons and RLE), CVAT XML, LabelMe XML, Cityscapes, CamVid,
ADE20K, Mapillary Vistas, KITTI, Datumaro's own and the common semantic-segmentation layout.

The config names a format by datumaro's own name (`NAMES`). An image's class map is drawn from
its masks and polygons (boxes, points and lines are not segmentation and are skipped) in
ascending z_order (CVAT's layers) and, within one z_order, larger shapes first: where shapes
overlap, the smaller one lies on top (a face part on the face, the face on the hair around it).
COCO and LabelMe keep no drawing order, and datumaro does not keep a file's order, so area is
the rule that does not depend on either.
"""

from __future__ import annotations

import pathlib

import numpy as np

from ddpmseg.errors import DatasetError
from ddpmseg.folders import walk_files
from ddpmseg.formats import layouts
from ddpmseg.formats.source import UNCOVERED, Source, SourceImage
from ddpmseg.images import shown_size, turned_mask_problem

# datumaro's importer names of the formats that carry per-pixel annotation (masks or polygons).
# VOC's class masks and COCO's instances are read by ddpmseg.formats.voc and .coco instead.
NAMES = (
    "voc_instance_segmentation",
    "coco", "coco_panoptic",
    "cvat", "label_me",
    "cityscapes", "camvid", "kitti", "kitti_segmentation",
    "ade20k2017", "ade20k2020", "mapillary_vistas", "mapillary_vistas_panoptic",
    "common_semantic_segmentation", "common_semantic_segmentation_with_subset_dirs",
    "datumaro",
)
EDGE_TOLERANCE = 1.0  # pixels: a polygon vertex this far outside the image is still on its edge


def read(root, settings: dict) -> Source:
    """The dataset at ``root`` as datumaro's importer of the dataset's ``format`` (settings)
    reads it; DatasetError (one line naming the folder) when datumaro cannot read it."""
    import datumaro as dm
    from datumaro.components.annotation import AnnotationType

    name = settings["format"]
    try:
        dataset = dm.Dataset.import_from(str(root), name)
        items = list(dataset)
    except Exception as exc:  # datumaro raises many types for a folder it cannot parse
        raise _import_error(pathlib.Path(root), name, exc) from exc
    labels = dataset.categories().get(AnnotationType.label)
    classes = [label.name for label in labels] if labels is not None else []
    colourmap = dataset.categories().get(AnnotationType.mask)
    colours = None
    if colourmap is not None and all(i in colourmap.colormap for i in range(len(classes))):
        colours = [tuple(int(v) for v in colourmap.colormap[i]) for i in range(len(classes))]
    root = pathlib.Path(root)
    return Source(classes, colours, [_source_image(root, name, item, classes) for item in items])


def _source_image(root: pathlib.Path, name: str, item, classes: list) -> SourceImage:
    from datumaro.components.annotation import AnnotationType, Mask

    shapes = [a for a in item.annotations if isinstance(a, Mask) or a.type == AnnotationType.polygon]
    media_path = getattr(item.media, "path", None)
    image_path = pathlib.Path(media_path) if media_path else root / item.id
    where = f"{root} ({name}, subset {item.subset!r}, image {item.id!r})"
    if not shapes:
        return SourceImage(item.id, item.subset or "", image_path)
    if not image_path.is_file():
        return SourceImage(item.id, item.subset or "", image_path, where, _missing_image(where, image_path))
    return SourceImage(item.id, item.subset or "", image_path, where,
                       lambda: _class_map(shapes, classes, image_path, where))


def _missing_image(where: str, image_path: pathlib.Path):
    def fail():
        raise DatasetError(f"{where}: annotated, but its image {image_path} is missing. Put the image there, or "
                           "remove the annotation.")
    return fail


def _class_map(shapes: list, classes: list, image_path: pathlib.Path, where: str) -> np.ndarray:
    """(H, W) int32 source class ids drawn from ``shapes``, UNCOVERED elsewhere."""
    width, height, tag = shown_size(image_path)
    out = np.full((height, width), UNCOVERED, np.int32)
    for shape in sorted(shapes, key=lambda a: (a.z_order, -_area(a, where))):  # stable: ties keep their order
        out[_pixels(shape, classes, width, height, tag, image_path, where)] = shape.label
    return out


def _pixels(shape, classes: list, width: int, height: int, tag: int, image_path: pathlib.Path,
            where: str) -> np.ndarray:
    """(H, W) bool: the pixels one mask or polygon covers; DatasetError naming the problem."""
    from datumaro.components.annotation import Mask
    from pycocotools import mask as coco_mask

    if shape.label is None or not 0 <= shape.label < len(classes):
        raise DatasetError(f"{where}: a {type(shape).__name__} has class {shape.label!r}, not one of the "
                           f"{len(classes)} classes. Give it a declared class.")
    if isinstance(shape, Mask):
        try:
            pixels = np.asarray(shape.image, bool)
        except KeyError as exc:  # a colour mask with a colour the colour table lacks
            raise _colour_error(where, exc) from exc
        turned = turned_mask_problem(pixels.shape[::-1], (width, height), tag, where, image_path.name)
        if turned:
            raise DatasetError(turned)
        if pixels.shape != (height, width):
            raise DatasetError(f"{where}: mask is {pixels.shape[1]}x{pixels.shape[0]} (width x height), its "
                               f"image {image_path.name} {width}x{height}. Export the mask at the image's size.")
    else:
        points = np.asarray(shape.points, np.float64).reshape(-1, 2)
        if len(points) < 3:
            raise DatasetError(f"{where}: a polygon of class {classes[shape.label]!r} has {len(points)} "
                               "points; a polygon needs at least 3. Redraw it or remove it.")
        low, high = points.min(axis=0), points.max(axis=0)
        if (low < -EDGE_TOLERANCE).any() or high[0] > width + EDGE_TOLERANCE or high[1] > height + EDGE_TOLERANCE:
            raise DatasetError(f"{where}: a polygon of class {classes[shape.label]!r} reaches "
                               f"({low[0]:.0f}, {low[1]:.0f})..({high[0]:.0f}, {high[1]:.0f}), outside the "
                               f"{width}x{height} image. Fix the polygon, or the image it belongs to.")
        rle = coco_mask.frPyObjects([points.reshape(-1).tolist()], height, width)
        pixels = coco_mask.decode(rle)[..., 0].astype(bool)
    return pixels


def _area(shape, where: str) -> float:
    """The area of a mask or polygon, pixels (the drawing order's key)."""
    try:
        return float(shape.get_area())
    except KeyError as exc:
        raise _colour_error(where, exc) from exc


def _colour_error(where: str, exc: KeyError) -> DatasetError:
    """datumaro's KeyError for a colour mask's colour that its colour table lacks, as one line."""
    return DatasetError(f"{where}: mask has a colour not in the colour table ({exc.args[0] if exc.args else exc}). "
                        "Add the colour to the label map, or repaint those pixels.")


def detected(root) -> list:
    """The formats datumaro detects at ``root`` that it reads for us, a family (voc_*) once."""
    from datumaro.components.environment import Environment

    try:
        detected = Environment().detect_dataset(str(root))
    except Exception:  # datumaro's detectors may fail on an unusual folder: then it detects nothing
        return []
    return [name for name in detected if name in NAMES]


def _import_error(root: pathlib.Path, name: str, exc: Exception) -> DatasetError:
    """One line for datumaro's failure to read ``root`` as ``name``: every exception of its chain
    (the cause names what datumaro looked for) and the fix that fits that cause."""
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    said = "; caused by ".join(dict.fromkeys(f"{type(e).__name__}: {_first_line(e)}" for e in chain))
    return DatasetError(f"{root}: cannot be read as format {name!r} ({said}). {_fix(root, name, chain)}")


def _fix(root: pathlib.Path, name: str, chain: list) -> str:
    """The advice for datumaro's failure to read ``root`` as ``name`` that fits its exceptions
    ``chain``: the file it missed, the file that does not parse, the subfolder that holds the
    export, or the format the folder is in; each looked for only when the one before does not apply."""
    missing = next((e.filename for e in chain if isinstance(e, FileNotFoundError) and e.filename), None)
    if missing:
        return f"Add {missing}, or remove what names it."
    damaged = _damaged_file(root) if any(isinstance(e, (ValueError, SyntaxError)) for e in chain[1:]) else None
    if damaged:
        return f"{damaged[0]} does not parse ({_first_line(damaged[1])}): export it again, or fix it."
    below = next((child for child in sorted(root.iterdir()) if child.is_dir()
                  and any(fmt == name for fmt, _ in _candidates(child))), None) if root.is_dir() else None
    if below:
        return f"Point `path` at {below}, the export's top folder."
    others = [fmt for fmt, _ in _candidates(root) if fmt != name]
    if others:
        return f"The folder looks like format {others[0]}: set that format (or format: auto)."
    return "Check the folder against the format's layout (docs/data.md), or set the format it was exported in."


def _candidates(folder: pathlib.Path) -> list:
    """`detect.candidates`: the layouts of ours that fit ``folder``, else what datumaro detects."""
    return layouts.ours(folder) or [(fmt, "datumaro's detection") for fmt in detected(folder)]


def _damaged_file(root: pathlib.Path) -> tuple | None:
    """(path, error) of the first JSON or XML file below ``root`` that does not parse, or None."""
    import json
    import xml.etree.ElementTree as ElementTree

    for rel in sorted(walk_files(root, strict=False), key=str) if root.is_dir() else []:
        path = root / rel
        try:
            if rel.suffix.lower() == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif rel.suffix.lower() == ".xml":
                ElementTree.parse(path)
        except (ValueError, ElementTree.ParseError, UnicodeDecodeError) as exc:
            return path, exc
    return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"
