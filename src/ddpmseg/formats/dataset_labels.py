"""New labels written into a dataset beside the user's files, without rewriting any of them
(what `ddpmseg label-studio pull` does with finished annotations):

- the paper's layout: the pool image (`unlabeled/`) copied upright to `real/train/NAME<suffix>`
  with its labels in `real/train/NAME.npy` (uint8 class ids); the pool keeps the image (the
  diffusion model trained on the pool stays), and `label_next` ranks it last from then on;
- `image_mask`: the mask `masks/PATH.png` (8-bit class ids) of the image `images/PATH.*`;
- `label_studio`, where `path` is a folder: one more export in it, `NAME.json`, of the finished
  tasks (the reader takes a later export's annotated task of an image over an earlier one), each
  image named by its path below the images folder (a local-files URL); a region batch's labels,
  which are partial, go to its `added_labels` folder as for any other format;
- any other format (an annotation tool's export): the dataset's `added_labels` folder
  (`formats.added_labels`; where the config sets none, `<folder>-added-labels` beside the
  dataset's folder, which the config must then name): the image copied upright to
  `images/ID<suffix>`, its mask to `masks/ID.png`, the classes to `labelmap.txt`.

Each file is written whole (a temporary file renamed) and only where its bytes change, so that
writing the same labels again changes nothing, and Snakemake reruns nothing. `current` reads back
what was written (a region batch adds its regions to an image's earlier labels).
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import tempfile
import urllib.parse

import numpy as np
from PIL import Image

from ddpmseg.errors import DatasetError
from ddpmseg.formats import paper
from ddpmseg.formats.added_labels import FOLDER_SUFFIX, setting_folder
from ddpmseg.formats.label_studio_tasks import LOCAL_FILES
from ddpmseg.formats.prepare import dataset_folder, final_classes, read_source, unlabeled_folder_images
from ddpmseg.formats.source import BACKGROUND_NAMES, IGNORED, UNCOVERED
from ddpmseg.images import write_upright


def write_if_changed(path: pathlib.Path, data: bytes) -> bool:
    """Writes ``data`` to ``path`` whole (a temporary file renamed) unless the file holds it
    already; True where it was written."""
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return True


def upright_bytes(image: pathlib.Path) -> bytes:
    """The image file's bytes as `images.write_upright` writes it."""
    with tempfile.TemporaryDirectory() as tmp:
        upright = pathlib.Path(tmp) / image.name
        write_upright(image, upright)
        return upright.read_bytes()


class DatasetLabels:
    """Where a dataset takes new labels. classes: its final class names; ignore: its ignore label;
    images: {image id: file} of the images that may take them; exports: the folder of a Label
    Studio dataset's exports (`write_export`), else None; added: the `added_labels` folder
    written into (None for the paper's layout and image_mask), and whether the config names it
    yet (`named`)."""

    def __init__(self, root, settings: dict, where: str):
        self.root, self.format = pathlib.Path(root), settings["format"]
        self.exports, self.added, self.named = None, None, True
        if self.format == paper.PAPER:
            meta = paper.read_meta(self.root, settings["classes"], settings["ignore_label"])
            self.classes, self.ignore = meta["classes"], meta["ignore_label"]
            background = [i for i, name in enumerate(self.classes) if name in BACKGROUND_NAMES]
            self.uncovered = background[0] if background else self.ignore
            self.images = {image_id: path for image_id, path, _ in paper.list_split(self.root, "unlabeled")}
            return
        source = read_source(self.root, settings, where)
        self.classes, lut, self.ignore = final_classes(source, settings, where)
        self.uncovered = int(lut[UNCOVERED + 2])
        folder = dataset_folder(self.root)
        self.images = {image.image_id: image.image_path
                       for image in source.images + unlabeled_folder_images(folder, settings)}
        if self.format == "label_studio" and self.root.is_dir():
            images = (settings.get("label_studio") or {}).get("images")
            self.exports, self.images_root = self.root, setting_folder(self.root, images) if images else self.root
        if self.format != "image_mask":
            self.named = bool(settings.get("added_labels"))
            self.added = setting_folder(folder, settings["added_labels"]) if self.named \
                else folder.parent / f"{folder.name}{FOLDER_SUFFIX}"

    def _image(self, image_id: str) -> pathlib.Path:
        if image_id not in self.images:
            raise DatasetError(f"{self.root}: has no image {image_id!r}; pull into the dataset whose pool the batch "
                               "was ranked from")
        return self.images[image_id]

    def _label_file(self, image_id: str, name: str) -> pathlib.Path:
        """Where `write` puts the labels of ``image_id`` (``name`` in the paper's layout)."""
        image = self._image(image_id)
        if self.format == paper.PAPER:
            return self.root / "real" / "train" / f"{name}.npy"
        if self.added is None:  # image_mask: the mask beside the image
            return self.root / "masks" / image.relative_to(self.root / "images").with_suffix(".png")
        return self.added / "masks" / f"{image_id}.png"

    def current(self, image_id: str, name: str) -> np.ndarray | None:
        """The (H, W) uint8 labels `write` gave ``image_id`` before (class ids, the ignore label
        where none), None where it has given none."""
        path = self._label_file(image_id, name)
        if not path.is_file():
            return None
        return np.load(path) if path.suffix == ".npy" else np.asarray(Image.open(path))

    def write(self, image_id: str, name: str, labels: np.ndarray) -> bool:
        """Adds the (H, W) labels (indices into `classes`, UNCOVERED where none, IGNORED where
        not to learn from) of the image ``image_id`` (``name`` once labelled, in the paper's
        layout). True where a file changed."""
        image, path = self._image(image_id), self._label_file(image_id, name)
        ids = np.where(labels == UNCOVERED, self.uncovered, np.where(labels == IGNORED, self.ignore, labels))
        ids = ids.astype(np.uint8)
        if self.format == paper.PAPER:
            npy = io.BytesIO()
            np.save(npy, ids)
            changed = write_if_changed(path.with_suffix(image.suffix), upright_bytes(image))
            return write_if_changed(path, npy.getvalue()) or changed
        png = io.BytesIO()
        Image.fromarray(ids, mode="L").save(png, format="PNG")
        if self.added is None:
            return write_if_changed(path, png.getvalue())
        changed = write_if_changed(self.added / "labelmap.txt", "".join(f"{c}\n" for c in self.classes).encode())
        changed = write_if_changed(self.added / "images" / f"{image_id}{image.suffix}", upright_bytes(image)) or changed
        return write_if_changed(path, png.getvalue()) or changed

    def write_export(self, name: str, tasks: list) -> bool:
        """Adds the Label Studio tasks (an export's, finished) as the export ``name``.json of a
        label_studio dataset, each task's image named by its path below the images folder. True
        where the file changed."""
        for task in tasks:
            path = self.images[task["data"]["ddpmseg_image"]].relative_to(self.images_root).as_posix()
            task["data"]["image"] = LOCAL_FILES + urllib.parse.quote(path)
        return write_if_changed(self.exports / f"{name}.json", json.dumps(tasks, indent=1).encode())
