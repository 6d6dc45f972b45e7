"""Which of our own readers' layouts a folder is in, each recognised by what only it reads: the
paper's layout (`real/train` or `real/test`), `image_mask` (images/ and masks/), `voc`
(SegmentationClass/), `coco_instances` (a COCO JSON: the file itself, or one below the folder),
`labelme` (a JSON with `shapes` and `imagePath`) and `label_studio` (a JSON export: a list of
tasks with `data` and `annotations`, the file itself or one in the folder)."""

from __future__ import annotations

import json
import pathlib

from ddpmseg.folders import walk_files
from ddpmseg.formats import coco, voc
from ddpmseg.formats.paper import PAPER


def ours(root) -> list:
    """[(format name, why)] of every reader of our own whose layout fits ``root`` (a folder, or an
    export's JSON file: COCO or Label Studio)."""
    root = pathlib.Path(root)
    if root.is_file():
        kind = _json_kind(_json(root))
        return [(kind, f"{root.name} is a {JSON_NAMES[kind]} JSON")] if kind in ("coco_instances", "label_studio") else []
    found = []
    if any((root / "real" / split).is_dir() for split in ("train", "test")):
        found.append((PAPER, "real/train, real/test: the paper's layout"))
    if (root / "images").is_dir() and (root / "masks").is_dir():
        found.append(("image_mask", "images/ and masks/"))
    if voc.is_voc(root):
        found.append(("voc", "SegmentationClass/"))
    for kind, rel in _json_kinds(root).items():
        found.append((kind, f"{rel} is a {JSON_NAMES[kind]} JSON"))
    return found


JSON_NAMES = {"coco_instances": "COCO", "labelme": "labelme", "label_studio": "Label Studio export"}


def _json(path: pathlib.Path):
    """The JSON document in ``path``, or None where it holds none."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError):
        return None


def _json_kind(document) -> str | None:
    """The reader a JSON document is for: coco_instances, labelme, label_studio, or None."""
    if coco.is_coco(document):
        return "coco_instances"
    if isinstance(document, dict) and "shapes" in document and "imagePath" in document:
        return "labelme"
    if isinstance(document, list) and document and all(isinstance(t, dict) and isinstance(t.get("data"), dict)
                                                       and "annotations" in t for t in document):
        return "label_studio"
    return None


def _json_kinds(root: pathlib.Path) -> dict:
    """{reader: the first JSON below ``root`` it is for (relative to it)}, in COCO, labelme, Label
    Studio order; a Label Studio export counts only at the top (its reader reads the folder's
    .json files)."""
    found = {}
    for rel in sorted(walk_files(root, strict=False), key=str):
        if rel.suffix.lower() != ".json" or len(found) == len(JSON_NAMES):
            continue
        kind = _json_kind(_json(root / rel))
        if kind and kind not in found and (kind != "label_studio" or len(rel.parts) == 1):
            found[kind] = rel
    return {kind: found[kind] for kind in JSON_NAMES if kind in found}
