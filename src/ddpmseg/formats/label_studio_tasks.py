"""A `label_next` batch as Label Studio tasks: each picked image with the ensemble's mask as a
prediction Label Studio imports and shows to correct, and the labelling config they need.

A task is {"data": {"image": URL, "ddpmseg_image": image id, "ddpmseg_name": its name once
labelled, "rank": 1.., "js_top10": nats},
"predictions": [{"model_version": "<method> seed <seed>", "score": js_top10, "result": [...]}]}:
one brush result per class the mask holds (Label Studio's RLE, by label-studio-sdk's
`mask2rle`), at the image's size. `rank` and `js_top10` are data fields so that the Data
Manager sorts by them; `ddpmseg_image` is how `pull` finds the image again, whatever URL the
server gave it. A region batch's task (`unit: region`) scores by the asked regions' mean JS
(`js_mean` instead of `js_top10`), its prediction fills only the asked regions, and its data
also holds `ddpmseg_regions` (the region ids) and `ddpmseg_asked`: {"rle", "width",
"height"}, the asked pixels as Label Studio's RLE, which is all that `pull` writes of it.

The labelling config (`label_config`) has one Image and the dataset's classes, in their order
and palette colours, twice: as BrushLabels (the pre-annotations' tag) and as PolygonLabels,
so that an annotator may paint or outline. A project made by hand takes the predictions on its
own first BrushLabels and the Image it labels (`config_tags`).
"""

from __future__ import annotations

import json
import pathlib
import urllib.parse
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd
from PIL import Image

from ddpmseg.errors import DatasetError

IMAGE, BRUSH, POLYGON = "image", "brush", "polygon"  # our config's tag names (name=)


@dataclass(frozen=True)
class Tags:
    """Where a labelling config takes a brush prediction: the task data's key of the image URL
    (the Image tag's value="$key"), the BrushLabels tag's name and the Image tag's name."""

    data_key: str = IMAGE
    brush: str = BRUSH
    image: str = IMAGE


def config_tags(config: str, where: str) -> Tags:
    """The `Tags` of a labelling config (XML text): its first BrushLabels and the Image it labels;
    DatasetError naming ``where`` where it has none."""
    root = ElementTree.fromstring(config)
    brush = next(root.iter("BrushLabels"), None)
    image = {element.get("name"): element for element in root.iter("Image")}.get(brush.get("toName")) \
        if brush is not None else None
    if image is None or not image.get("value", "").startswith("$"):
        raise DatasetError(f"{where}: its labelling config has no BrushLabels on an Image of the task data; the "
                           "ensemble's masks are brush predictions. Add one, or push into a new project")
    return Tags(image.get("value")[1:], brush.get("name"), brush.get("toName"))
MANIFEST = "batch.json"  # beside batch.csv: what push needs to know about the batch
LOCAL_FILES = "/data/local-files/?d="  # Label Studio's URL of a file below its local-files document root


def label_config(classes: list, colours: list) -> str:
    """The labelling config (XML text) of ``classes`` coloured ``colours`` [(r, g, b)]."""
    labels = [f'    <Label value={quoteattr(name)} background="#{r:02x}{g:02x}{b:02x}"/>'
              for name, (r, g, b) in zip(classes, colours)]
    lines = ["<View>", f'  <Image name="{IMAGE}" value="$image" zoom="true" zoomControl="true"/>']
    for tag, name in (("BrushLabels", BRUSH), ("PolygonLabels", POLYGON)):
        lines += [f'  <{tag} name="{name}" toName="{IMAGE}">', *labels, f"  </{tag}>"]
    return "\n".join([*lines, "</View>", ""])


def brush_results(mask: np.ndarray, classes: list, tags: Tags = Tags()) -> list:
    """One brush result for each class of ``classes`` that the (H, W) class-id mask holds, in
    class order (values past the classes, such as the ignore label, are left unpainted), for the
    config's ``tags``."""
    from label_studio_sdk.converter.brush import mask2rle

    height, width = mask.shape
    return [{"id": f"ddpmseg-{c}", "from_name": tags.brush, "to_name": tags.image, "type": "brushlabels",
             "original_width": int(width), "original_height": int(height), "image_rotation": 0,
             "value": {"format": "rle", "rle": mask2rle((mask == c).astype(np.uint8) * 255), "brushlabels": [name]}}
            for c, name in enumerate(classes) if (mask == c).any()]


def read_manifest(batch: pathlib.Path) -> dict:
    """The batch's manifest ({dataset, method, seed, classes, colours, ignore_label}, written by
    `label_next`); DatasetError naming the folder where it is missing."""
    path = pathlib.Path(batch) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{path}: not found; give a label_next batch folder (results/<dataset>/label_next/batch), "
                           "written by this version of the workflow (rerun it where the folder is older)")
    return json.loads(path.read_text(encoding="utf-8"))


def batch_images(batch: pathlib.Path) -> list:
    """[(row of batch.csv as a dict, image file, mask file)] of a batch, in rank order."""
    batch = pathlib.Path(batch)
    rows = pd.read_csv(batch / "batch.csv", dtype={"image": str, "file": str, "name": str}).to_dict("records")
    found = []
    for row in rows:
        stem = batch / "images" / row["image"]
        images = [p for p in stem.parent.glob("*") if p.with_suffix("") == stem]
        mask = batch / "masks" / f"{row['image']}.png"
        if len(images) != 1 or not mask.is_file():
            raise DatasetError(f"{batch}: image {row['image']!r} of batch.csv has {len(images)} image files and "
                               f"{'a' if mask.is_file() else 'no'} mask; rerun label_next to write the batch again")
        found.append((row, images[0], mask))
    return found


def model_version(manifest: dict) -> str:
    """The predictions' model_version of a batch: "<method> seed <seed>"."""
    return f"{manifest['method']} seed {manifest['seed']}"


def score_name(row: dict) -> str:
    """The batch.csv column that scores an image of the batch: js_top10 (an image batch) or
    js_mean (a region batch: its asked regions' mean JS)."""
    return "js_top10" if "js_top10" in row else "js_mean"


def asked_file(mask_file: pathlib.Path) -> pathlib.Path:
    """A region batch's asked-pixels PNG (asked/ID.png) beside the image's mask (masks/ID.png)."""
    return mask_file.parent.parent / "asked" / mask_file.name


def asked_data(asked: np.ndarray) -> dict:
    """A task's `ddpmseg_asked`: the (H, W) bool asked pixels as Label Studio's RLE."""
    from label_studio_sdk.converter.brush import mask2rle

    height, width = asked.shape
    return {"rle": mask2rle(asked.astype(np.uint8) * 255), "width": int(width), "height": int(height)}


def read_asked(data: dict) -> np.ndarray:
    """(H, W) bool: a task's `ddpmseg_asked` decoded."""
    from label_studio_sdk.converter.brush import decode_rle

    height, width = int(data["height"]), int(data["width"])
    return np.reshape(decode_rle(data["rle"]), (height, width, 4))[:, :, 3] > 0


def task_key(data: dict) -> tuple:
    """What a task of ours is one of: (image id, its asked region ids or None) from the task's
    data, so that a later region batch asking other regions of an image is a task of its own."""
    return data.get("ddpmseg_image"), data.get("ddpmseg_regions")


def row_key(row: dict) -> tuple:
    """`task_key` of the task a batch.csv row makes."""
    return row["image"], str(row["regions"]) if "regions" in row else None


def task_data(row: dict, url: str, tags: Tags = Tags(), mask_file: pathlib.Path | None = None) -> dict:
    """The data of one batch image's task (its row of batch.csv), shown from ``url``; a region
    batch's image (``mask_file`` with an asked/ PNG beside it) adds the asked regions."""
    score = score_name(row)
    data = {tags.data_key: url, "ddpmseg_image": row["image"], "ddpmseg_name": row["name"],
            "rank": int(row["rank"]), score: float(row[score])}
    if mask_file is not None and asked_file(mask_file).is_file():
        data["ddpmseg_regions"] = str(row["regions"])
        data["ddpmseg_asked"] = asked_data(np.asarray(Image.open(asked_file(mask_file))) > 0)
    return data


def image_prediction(manifest: dict, row: dict, mask_file: pathlib.Path, tags: Tags = Tags()) -> dict:
    """The prediction of one batch image: its mask file as brush results (a region batch's: its
    asked regions only), scored by its js_top10 or js_mean."""
    mask = np.asarray(Image.open(mask_file))
    if asked_file(mask_file).is_file():
        mask = np.where(np.asarray(Image.open(asked_file(mask_file))) > 0, mask, manifest["ignore_label"])
    return {"model_version": model_version(manifest), "score": float(row[score_name(row)]),
            "result": brush_results(mask, manifest["classes"], tags)}


def image_task(manifest: dict, row: dict, mask_file: pathlib.Path, url: str) -> dict:
    """The task of one batch image with its prediction, shown from ``url``."""
    return {"data": task_data(row, url, mask_file=mask_file),
            "predictions": [image_prediction(manifest, row, mask_file)]}


def local_file_tasks(batch: pathlib.Path) -> list:
    """The tasks of a batch (`batch_images` order), each image named as a Label Studio local
    file relative to the batch folder (/data/local-files/?d=images/NAME): served where Label
    Studio runs with LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT the batch folder."""
    batch, manifest = pathlib.Path(batch), read_manifest(batch)
    return [image_task(manifest, row, mask, LOCAL_FILES + urllib.parse.quote(image.relative_to(batch).as_posix()))
            for row, image, mask in batch_images(batch)]
