"""Which of our own readers' layouts a folder is in, each recognised by what only it reads: the
paper's layout (`real/train` or `real/test`), `image_mask` (images/ and masks/), `voc`
(SegmentationClass/), `coco_instances` (a COCO JSON: the file itself, or one below the folder)
and `labelme` (a JSON with `shapes` and `imagePath`)."""

from __future__ import annotations

import json
import pathlib

from ddpmseg.folders import walk_files
from ddpmseg.formats import coco, voc
from ddpmseg.formats.paper import PAPER


def ours(root) -> list:
    """[(format name, why)] of every reader of our own whose layout fits ``root`` (a folder, or a
    COCO JSON file)."""
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
    return found


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
