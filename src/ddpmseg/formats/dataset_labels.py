"""New labels written into a dataset in its own form, beside the user's files and without
rewriting any of them (what `ddpmseg label-studio pull` does with finished annotations):

- the paper's layout: the pool image (`unlabeled/`) copied upright to `real/train/NAME<suffix>`
  with its labels in `real/train/NAME.npy` (uint8 class ids); the pool keeps the image (the
  diffusion model trained on the pool stays), and `label_next` ranks it last from then on;
- `image_mask`: the mask `masks/PATH.png` (8-bit class ids) of the pool image `images/PATH.*`,
  which thereby leaves the pool.

Each file is written whole (a temporary file renamed) and only where its bytes change, so that
writing the same labels again changes nothing, and Snakemake reruns nothing.
"""

from __future__ import annotations

import io
import os
import pathlib
import tempfile

import numpy as np
from PIL import Image

from ddpmseg.errors import DatasetError
from ddpmseg.formats import image_mask, paper
from ddpmseg.formats.source import BACKGROUND_NAMES, UNCOVERED, class_table
from ddpmseg.images import write_upright

WRITABLE = (paper.PAPER, "image_mask")  # the formats new labels are written into


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


class DatasetLabels:
    """Where a dataset takes new labels. classes: its final class names; images: {image id: file}
    of the images that may take them (the paper's layout: the pool's; image_mask: all, a
    labelled one's mask replaced); `write` adds one image's labels."""

    def __init__(self, root, settings: dict, where: str):
        self.root, self.format = pathlib.Path(root), settings["format"]
        if self.format == paper.PAPER:
            meta = paper.read_meta(self.root, settings["classes"], settings["ignore_label"])
            self.classes, self.ignore = meta["classes"], meta["ignore_label"]
            background = [i for i, name in enumerate(self.classes) if name in BACKGROUND_NAMES]
            self.uncovered = background[0] if background else self.ignore
            self.images = {image_id: path for image_id, path, _ in paper.list_split(self.root, "unlabeled")}
        elif self.format == "image_mask":
            source = image_mask.read(self.root, settings)
            self.ignore = 255 if settings["ignore_label"] is None else settings["ignore_label"]
            self.classes, lut = class_table(source, None, settings["unannotated"], self.ignore, where)
            self.uncovered = int(lut[UNCOVERED + 2])
            self.images = {image.image_id: image.image_path for image in source.images}
        else:
            raise DatasetError(f"{where}.format: new labels are written into datasets in "
                               f"{' or '.join(WRITABLE)} form, not {self.format}; convert the dataset "
                               "(or keep the batch's own files)")

    def write(self, image_id: str, name: str, labels: np.ndarray) -> bool:
        """Adds the (H, W) labels (indices into `classes`, UNCOVERED where none) of the pool
        image ``image_id`` (``name`` once labelled, in the paper's layout). True where a file changed."""
        if image_id not in self.images:
            raise DatasetError(f"{self.root}: has no pool image {image_id!r}; pull into the dataset whose pool the "
                               "batch was ranked from")
        image = self.images[image_id]
        ids = np.where(labels == UNCOVERED, self.uncovered, labels).astype(np.uint8)
        if self.format == "image_mask":
            png = io.BytesIO()
            Image.fromarray(ids, mode="L").save(png, format="PNG")
            mask = self.root / "masks" / image.relative_to(self.root / "images").with_suffix(".png")
            return write_if_changed(mask, png.getvalue())
        train = self.root / "real" / "train"
        npy = io.BytesIO()
        np.save(npy, ids)
        with tempfile.TemporaryDirectory() as tmp:
            upright = pathlib.Path(tmp) / image.name
            write_upright(image, upright)
            changed = write_if_changed(train / f"{name}{image.suffix}", upright.read_bytes())
        return write_if_changed(train / f"{name}.npy", npy.getvalue()) or changed
