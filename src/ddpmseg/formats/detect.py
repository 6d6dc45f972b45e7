"""`format: auto`: which reader a folder is for.

Our own readers' layouts are recognised first, each by what only it reads: the paper's layout
(`real/train` or `real/test`), `image_mask` (images/ and masks/), `voc` (SegmentationClass/),
`coco_instances` (a COCO JSON: the file itself, or one below the folder) and `labelme` (a JSON
with `shapes` and `imagePath`). Where none fits, datumaro's own detection is asked, among the
formats datumaro reads for us (`datumaro_formats.NAMES`). Exactly one candidate is the answer;
none, or several (e.g. labelme JSONs beside a VOC export), is a DatasetError listing them.
"""

from __future__ import annotations

import json
import pathlib

from ddpmseg.errors import DatasetError
from ddpmseg.folders import walk_files
from ddpmseg.formats import coco, datumaro_formats, voc
from ddpmseg.formats.paper import PAPER


def candidates(root) -> list:
    """[(format name, why)] of every reader that fits ``root`` (a folder, or a COCO JSON file)."""
    root = pathlib.Path(root)
    if root.is_file():
        try:
            document = json.loads(root.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, OSError):
            document = None
        return [("coco_instances", f"{root.name} is a COCO JSON")] if coco.is_coco(document) else []
    found = []
    if any((root / "real" / split).is_dir() for split in ("train", "test")):
        found.append((PAPER, "real/train, real/test: the paper's layout"))
    if (root / "images").is_dir() and (root / "masks").is_dir():
        found.append(("image_mask", "images/ and masks/"))
    if voc.is_voc(root):
        found.append(("voc", "SegmentationClass/"))
    coco_json, labelme_json = _json_kinds(root)
    if coco_json:
        found.append(("coco_instances", f"{coco_json} is a COCO JSON"))
    if labelme_json:
        found.append(("labelme", f"{labelme_json} is a labelme JSON"))
    if not found:
        found = [(name, "datumaro's detection") for name in _datumaro_detected(root)]
    return found


def detect(root) -> tuple[str, str]:
    """(format name, and why) of the one reader that fits ``root`` (`PAPER` for the paper's layout);
    DatasetError naming the folder and the candidates when none or several fit."""
    root = pathlib.Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: not found. Fix the dataset's `path`.")
    found = candidates(root)
    if len(found) == 1:
        return found[0]
    if not found:
        raise DatasetError(f"{root}: no known format found (none of the paper's layout, image_mask, voc, "
                           "coco_instances, labelme, nor what datumaro detects). Set the dataset's `format`.")
    listed = "; ".join(f"{name} ({why})" for name, why in found)
    raise DatasetError(f"{root}: fits {len(found)} formats: {listed}. Set the dataset's `format` to the one "
                       "meant, or move the other files out of the folder.")


def _json_kinds(root: pathlib.Path) -> tuple:
    """(the first COCO JSON, the first labelme JSON) below ``root``, as paths relative to it, or None."""
    coco_json = labelme_json = None
    for rel in sorted(walk_files(root, strict=False), key=str):
        if rel.suffix.lower() != ".json" or (coco_json and labelme_json):
            continue
        try:
            document = json.loads((root / rel).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, OSError):
            continue
        if coco.is_coco(document):
            coco_json = coco_json or rel
        elif isinstance(document, dict) and "shapes" in document and "imagePath" in document:
            labelme_json = labelme_json or rel
    return coco_json, labelme_json


def _datumaro_detected(root: pathlib.Path) -> list:
    """The formats datumaro detects at ``root`` that it reads for us, a family (voc_*) once."""
    from datumaro.components.environment import Environment

    try:
        detected = Environment().detect_dataset(str(root))
    except Exception:  # datumaro's detectors may fail on an unusual folder: then it detects nothing
        return []
    return [name for name in detected if name in datumaro_formats.NAMES]
