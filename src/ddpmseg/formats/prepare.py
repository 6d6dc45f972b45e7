"""A dataset in an annotation format (`format:`), validated as a whole and written as the
workflow's train / test / unlabeled split groups (`ddpmseg.splits.write_split`), as
`ddpmseg.formats.paper.prepare` writes the paper's layout; `prepare_dataset` calls the one of the
dataset's format.

Every annotation is drawn (at the image's own size) and mapped to the final classes before
anything is written; every problem found is listed in one DatasetError, one line per file. Each group also records each image's original (height, width)
(attr ``original_sizes``) and the transform that brought it to the model's size (``non_square``,
``resize``); a labelled one its labels at each image's own size (``original_labels/<i>``).
"""

from __future__ import annotations

import pathlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ddpmseg.datasets import check_item, problems_error
from ddpmseg.errors import DatasetError
from ddpmseg.folders import list_folder
from ddpmseg.formats import FILE_READERS, READERS, paper
from ddpmseg.formats.added_labels import final_table, read_added, setting_folder, with_added
from ddpmseg.formats.source import Source, SourceImage, assign_splits, class_table, lut_classes
from ddpmseg.splits import write_empty_split, write_split

_THREADS = 8


def prepare_dataset(root, settings: dict, outputs: dict, needs_unlabeled: bool, where: str) -> dict:
    """Read, check and write the dataset at ``root`` in its ``format`` (settings): the paper's
    layout by `ddpmseg.formats.paper.prepare`, any other format by `prepare_formatted` (the
    arguments and the summary are theirs)."""
    if settings["format"] == paper.PAPER:
        return paper.prepare(root, settings, outputs, needs_unlabeled)
    return prepare_formatted(root, settings, outputs, needs_unlabeled, where)


def read_source(root, settings: dict, where: str) -> Source:
    """The dataset at ``root`` read by the reader of its ``format`` (settings); DatasetError naming
    the config key and listing the known formats when there is no such reader."""
    name = settings["format"]
    if name not in READERS:
        from difflib import get_close_matches

        near = get_close_matches(name, READERS, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise DatasetError(f"{where}.format: unknown format {name!r}{hint}; known: {', '.join(sorted(READERS))}.")
    root = pathlib.Path(root)
    if not root.is_dir() and not (root.is_file() and READERS[name] in FILE_READERS):
        raise DatasetError(f"{root}: folder not found. Fix the dataset's `path`.")
    return READERS[name](root, settings)


def dataset_folder(root) -> pathlib.Path:
    """The folder of a dataset at ``root``: itself, or an export file's (COCO, Label Studio) folder."""
    return pathlib.Path(root) if pathlib.Path(root).is_dir() else pathlib.Path(root).parent


def final_classes(source: Source, settings: dict, where: str) -> tuple:
    """(final class names, `class_table`'s lookup table, ignore label) of a dataset read by its
    format's reader, with its config ``settings`` (classes mapping, unannotated, ignore_label)."""
    ignore = 255 if settings["ignore_label"] is None else settings["ignore_label"]
    mapping = settings["classes"] if isinstance(settings["classes"], dict) else None
    classes, lut = class_table(source, mapping, settings["unannotated"], ignore, where)
    return classes, lut, ignore


def unlabeled_folder_images(root: pathlib.Path, settings: dict) -> list:
    """The images of the dataset's `unlabeled:` folder (relative to its folder ``root``, or
    absolute) as SourceImages named <folder name>/<id>; none where it sets no folder."""
    if not settings.get("unlabeled"):
        return []
    folder = setting_folder(root, settings["unlabeled"])
    return [SourceImage(f"{folder.name}/{image_id}", "", path)
            for image_id, path, _ in list_folder(folder, what="unlabeled")]


def prepare_formatted(root, settings: dict, outputs: dict, needs_unlabeled: bool, where: str) -> dict:
    """Read, check and write the dataset at ``root`` (its config ``settings``, named ``where`` in
    messages, e.g. "config: datasets.faces") to ``outputs`` {split: group path} of the splits
    to write ('train', 'test', 'unlabeled'; the workflow writes the labelled two in one job and
    the pool in another); the unlabeled group is written empty unless ``needs_unlabeled``.

    Returns the summary: counts, classes, num_classes, ignore_label, colours (or None), format,
    and the image ids of each split ('splits').
    """
    source = read_source(root, settings, where)
    root = dataset_folder(root)
    classes, lut, ignore = final_classes(source, settings, where)
    splits = assign_splits(source.images, settings["split"], root, where)
    added = read_added(setting_folder(root, settings["added_labels"]), classes, where) \
        if settings.get("added_labels") else []
    splits = with_added(splits, added, where)
    for split, limit in (("train", settings["max_train"]), ("test", settings["max_test"])):
        splits[split] = splits[split][:limit]
    splits["unlabeled"] += unlabeled_folder_images(root, settings)
    if needs_unlabeled and not splits["unlabeled"]:
        raise DatasetError(f"{root}: no unlabeled images (none without annotation, and no `unlabeled:` folder), but "
                           "the workflow trains a model on them. Set the dataset's `unlabeled:` to a folder of "
                           "images, or give a pretrained checkpoint.")
    size, non_square, resize = settings["image_size"], settings["non_square"], settings["resize"]

    final, added_ids = final_table(len(classes), ignore), {id(image) for image in added}

    def original_label(image: SourceImage) -> np.ndarray:
        """The image's (H, W) uint8 label in the final classes, at its own size."""
        return lut_classes(image.class_map(), final if id(image) in added_ids else lut)

    problems = []
    written = [split for split in outputs if split != "unlabeled" or needs_unlabeled]
    with ThreadPoolExecutor(_THREADS) as pool:  # images in threads; annotations in this one (datumaro's
        for split in written:                   # readers keep state in context variables)
            for found in pool.map(lambda image: _check_image(image, non_square), splits[split]):
                problems.extend(found)
    for split in set(written) - {"unlabeled"}:
        for image in splits[split]:
            try:
                original_label(image)  # drawn again when written, rather than all held in memory
            except DatasetError as exc:
                problems.extend(exc.problems)
    if problems:
        raise problems_error(root, problems)

    for split in written:
        images = splits[split]
        label_of = None if split == "unlabeled" else (lambda i, images=images: original_label(images[i]))
        write_split(outputs[split], split, [(image.image_id, image.image_path, image.annotation) for image in images],
                    label_of, root, classes, ignore, size, non_square, resize, {"format": settings["format"]})
    if "unlabeled" in outputs and not needs_unlabeled:
        write_empty_split(outputs["unlabeled"], size)
    colours = None if source.colours is None or isinstance(settings["classes"], dict) else [list(c) for c in source.colours]
    return {"counts": {split: len(splits[split]) for split in ("train", "test", "unlabeled")}, "num_classes": len(classes),
            "classes": classes, "ignore_label": ignore, "colours": colours, "format": settings["format"],
            "splits": {split: [image.image_id for image in splits[split]] for split in ("train", "test")},
            "skipped": source.skipped}


def _check_image(image: SourceImage, non_square: str) -> list:
    """Problems of one image file (unreadable, or non-square under 'error'); an annotated image
    whose file is missing is left to its annotation's message, which names both."""
    if image.class_map is not None and not image.image_path.is_file():
        return []
    return check_item(image.image_path, None, False, non_square, None)
