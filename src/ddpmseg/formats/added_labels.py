"""`added_labels:` labels added to a dataset whose own files ddpmseg does not rewrite (an
annotation tool's export), as `ddpmseg label-studio pull` writes them: an `image_mask` folder

    <added_labels>/images/ID.<suffix>   the dataset's image ID, upright
    <added_labels>/masks/ID.png         its labels: 8-bit ids of the dataset's final classes
    <added_labels>/labelmap.txt         those classes, one per line, in id order

Each of its images joins the training split under its id, replacing a training image of the
same id (its mask is the newer label); the pool keeps its images (as the paper's layout does:
the diffusion model trained on the pool stays), and `label_next` ranks them last.
"""

from __future__ import annotations

import pathlib

import numpy as np

from ddpmseg.errors import DatasetError
from ddpmseg.formats import image_mask
from ddpmseg.formats.source import SourceImage

FOLDER_SUFFIX = "-added-labels"  # pull's folder for a dataset at <folder>: <folder>-added-labels beside it


def setting_folder(root: pathlib.Path, setting: str) -> pathlib.Path:
    """A folder a dataset setting names (`added_labels`, `unlabeled`, `label_studio.images`):
    relative to the dataset's folder ``root``, or absolute."""
    return pathlib.Path(setting) if pathlib.Path(setting).is_absolute() else root / setting


def read_added(folder: pathlib.Path, classes: list, where: str) -> list:
    """The added images as SourceImages (subset "train") whose class maps hold final class ids
    (IGNORED where the mask holds the ignore label); DatasetError where the folder names other
    classes than the dataset's or is missing."""
    if not folder.is_dir():
        raise DatasetError(f"{where}.added_labels: {folder} not found. Fix the path, or remove the key.")
    source = image_mask.read(folder, {"classes": None, "ignore_label": None})
    if source.classes != list(classes):
        raise DatasetError(f"{folder / 'labelmap.txt'}: names the classes {source.classes}, the dataset's are "
                           f"{list(classes)}. Pull the labels again into a new folder.")
    return [SourceImage(image.image_id, "train", image.image_path, image.annotation, image.class_map)
            for image in source.images if image.class_map is not None]


def final_table(num_classes: int, ignore: int) -> np.ndarray:
    """The lookup table (`source.class_table`'s form) of maps already in final ids: each id to
    itself, IGNORED to ``ignore``."""
    lut = np.full(num_classes + 2, ignore, np.uint8)
    lut[2:] = np.arange(num_classes, dtype=np.uint8)  # lut[0]: IGNORED, lut[1]: UNCOVERED (a mask has none)
    return lut


def with_added(splits: dict, added: list, where: str) -> dict:
    """``splits`` ({train, test, unlabeled}: [SourceImage]) with the added images in train,
    replacing training images of the same id; DatasetError for an id of a test image."""
    ids = {image.image_id for image in added}
    tested = sorted(ids & {image.image_id for image in splits["test"]})
    if tested:
        raise DatasetError(f"{where}.added_labels: {', '.join(tested[:3])} are test images; labels added to them "
                           "would train on the test split. Remove their masks from the folder.")
    train = [image for image in splits["train"] if image.image_id not in ids] + added
    return {**splits, "train": sorted(train, key=lambda image: image.image_id)}
