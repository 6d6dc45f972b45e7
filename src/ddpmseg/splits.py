"""A prepared split: the Zarr v3 group that every reader writes a dataset's train, test or
unlabeled images to, brought to the model's square (`ddpmseg.resizing`).

Arrays (N = number of images, S = image_size):
  images: (N, S, S, 3) uint8, chunks (1, S, S, 3), dimension_names ("image", "y", "x", "rgb")
  labels: (N, S, S) uint8, chunks (1, S, S), dimension_names ("image", "y", "x"); labelled splits only
  original_labels/<i>: (H_i, W_i) uint8, image i's label at its own size; labelled splits only
    (`evaluation.resolution: original` scores against these)
Group attrs: split, image_ids, classes, ignore_label, image_size, source (the dataset's folder),
what the reader adds (e.g. format), non_square, resize, original_sizes ([height, width] of each
image as shown), files (each image's path relative to source).

Every group is written to a temporary sibling directory and renamed into place at the end
(replacing any old one), so a failure never leaves a half-written split.
"""

from __future__ import annotations

import numpy as np
import zarr

from ddpmseg.atomic import folder_written_atomically
from ddpmseg.errors import DatasetError
from ddpmseg.folders import relative_file
from ddpmseg.images import read_rgb
from ddpmseg.resizing import fit_image, fit_label

ORIGINAL_LABELS = "original_labels"  # a labelled split's group of labels at each image's own size


def write_split(out_path, split: str, items: list, label_of, root, classes: list, ignore_label: int,
                image_size: int, non_square: str, resize: str, described: dict | None = None) -> None:
    """Write ``items`` [(image_id, image_path, label file or None)], images of the dataset at
    ``root``, as the split group ``split`` at ``out_path``: each image read as shown and brought to
    ``image_size`` (`fit_image`). ``label_of`` is None for an unlabeled split (no labels), else
    i -> item i's (H, W) uint8 label at its image's own size, brought to the model's size by
    `fit_label` (its label file named in messages) and kept as it is in original_labels/<i>.
    ``described``: attrs that say how the reader read the dataset (e.g. {"format": "voc"})."""
    def write(group: zarr.Group) -> None:
        images = _create_images(group, len(items), image_size)
        labels = None if label_of is None else group.create_array(
            "labels", shape=(len(items), image_size, image_size), chunks=(1, image_size, image_size), dtype="uint8",
            dimension_names=("image", "y", "x"))
        originals = None if label_of is None else group.create_group(ORIGINAL_LABELS)
        sizes = []
        for i, (_, image_path, label_file) in enumerate(items):
            rgb = read_rgb(image_path)
            sizes.append(list(rgb.shape[:2]))
            images[i] = fit_image(rgb, image_size, non_square, resize, image_path)
            if label_of is not None:
                label = label_of(i)
                labels[i] = fit_label(label, image_size, ignore_label, non_square, resize, label_file)
                originals.create_array(str(i), data=np.ascontiguousarray(label, dtype=np.uint8), chunks=label.shape,
                                       dimension_names=("y", "x"))
        group.attrs.update({"split": split, "image_ids": [image_id for image_id, _, _ in items],
                            "classes": list(classes), "ignore_label": ignore_label, "image_size": image_size,
                            "source": str(root), **(described or {}), "non_square": non_square, "resize": resize,
                            "original_sizes": sizes, "files": [relative_file(path, root) for _, path, _ in items]})

    _write_group_atomically(out_path, write)


def write_empty_split(out_path, image_size: int) -> None:
    """Write an unlabeled group with no images at ``out_path`` (when a pretrained checkpoint makes it unneeded).

    images: (0, S, S, 3) uint8 with the same chunks and dimension_names as `write_split`;
    group attrs: {"split": "unlabeled", "image_ids": [], "image_size": S}.
    """
    def write(group: zarr.Group) -> None:
        _create_images(group, 0, image_size)
        group.attrs.update({"split": "unlabeled", "image_ids": [], "image_size": image_size})

    _write_group_atomically(out_path, write)


def write_split_variant(split_path, out_path, images: np.ndarray, attrs: dict) -> None:
    """Write at ``out_path`` a copy of the prepared split at ``split_path`` whose images are
    ``images`` (N, S, S, 3) uint8 (the same N and S; e.g. corrupted ones), its labels and attrs
    kept and ``attrs`` added (e.g. {"split": "test-fog-3", "corruption": "fog", "severity": 3}).
    Written atomically, as `write_split`."""
    split = zarr.open_group(str(split_path), mode="r")
    if images.shape != split["images"].shape or images.dtype != np.uint8:
        raise ValueError(f"images {images.shape} {images.dtype}, the split {split['images'].shape} uint8")

    def write(group: zarr.Group) -> None:
        _create_images(group, len(images), images.shape[1])[:] = images
        if "labels" in split:
            group.create_array("labels", data=split["labels"][:], chunks=split["labels"].chunks,
                               dimension_names=("image", "y", "x"))
        group.attrs.update({**split.attrs, **attrs})

    _write_group_atomically(out_path, write)


def read_original_labels(split_path) -> list:
    """The labels at each image's own size of a prepared split: [(H_i, W_i) uint8], in image order;
    DatasetError naming the split if it has none (prepared before they were kept: prepare it again)."""
    split = zarr.open_group(str(split_path), mode="r")
    if ORIGINAL_LABELS not in split:
        raise DatasetError(f"{split_path}: has no {ORIGINAL_LABELS} (labels at each image's own size). Delete it "
                           "and run the workflow again so that it is prepared anew.")
    group = split[ORIGINAL_LABELS]
    return [group[str(i)][:] for i in range(len(split.attrs["image_ids"]))]


def _create_images(group: zarr.Group, n: int, image_size: int) -> zarr.Array:
    """The (n, S, S, 3) uint8 'images' array of a split group, one chunk per image."""
    return group.create_array("images", shape=(n, image_size, image_size, 3), chunks=(1, image_size, image_size, 3),
                              dtype="uint8", dimension_names=("image", "y", "x", "rgb"))


def _write_group_atomically(out_path, write) -> None:
    """Call ``write(group)`` on a new Zarr group in a temporary sibling of ``out_path``, then rename it there."""
    with folder_written_atomically(out_path) as tmp:
        write(zarr.open_group(tmp, mode="w"))
