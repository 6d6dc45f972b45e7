"""`format: auto`: which reader a folder is for.

Our own readers' layouts are recognised first, each by what only it reads: the paper's layout
(`real/train` or `real/test`), `image_mask` (images/ and masks/), `voc` (SegmentationClass/),
`coco_instances` (a COCO JSON: the file itself, or one below the folder) and `labelme` (a JSON
with `shapes` and `imagePath`). Where none fits, datumaro's own detection is asked, among the
formats datumaro reads for us (`datumaro_formats.NAMES`). Exactly one candidate is the answer;
none, or several (e.g. labelme JSONs beside a VOC export), is a DatasetError listing them.
"""

from __future__ import annotations

import pathlib

from ddpmseg.errors import DatasetError
from ddpmseg.formats import datumaro_formats, layouts


def candidates(root) -> list:
    """[(format name, why)] of every reader that fits ``root`` (a folder, or a COCO JSON file):
    our own readers' layouts, else what datumaro detects."""
    return layouts.ours(root) or [(name, "datumaro's detection") for name in datumaro_formats.detected(root)]


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
                           "coco_instances, labelme, label_studio, nor what datumaro detects). Set the dataset's `format`.")
    listed = "; ".join(f"{name} ({why})" for name, why in found)
    raise DatasetError(f"{root}: fits {len(found)} formats: {listed}. Set the dataset's `format` to the one "
                       "meant, or move the other files out of the folder.")
