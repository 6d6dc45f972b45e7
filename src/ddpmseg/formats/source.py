"""What a format reader gives (a `Source`) and how the config turns it into the workflow's
classes and splits.

A reader lists every image of a dataset with its subset (the export's train/val/test, or "")
and, when annotated, a function that draws its annotation as an (H, W) int32 map of the
source's class ids at the image's own size, `UNCOVERED` where no annotation lies. Then:

- `class_table` applies the dataset's `classes:` mapping (rename, merge: several sources to one
  name, drop: null -> the ignore label) and `unannotated:` (what uncovered pixels become: the
  format's background class, the ignore label, or a named class), giving the final class names
  and a lookup table from source ids to final ids;
- `assign_splits` puts the annotated images into train and test (the format's subsets, file
  lists, or a seeded fraction) and every image without annotation into the unlabeled pool.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ddpmseg.errors import DatasetError

UNCOVERED = -1  # the value of a class map where no annotation lies
IGNORED = -2  # where the annotation itself says "ignore" (e.g. an index mask's ignore value)
# Subset names read as the training and the test split when the config names none.
TRAIN_SUBSETS = ("train", "training", "trainval")
TEST_SUBSETS = ("test", "testing", "val", "valid", "validation")
BACKGROUND_NAMES = ("background", "_background_")  # a class the format means for uncovered pixels


@dataclass(frozen=True)
class SourceImage:
    """One image of a dataset as its format lists it.

    image_id: the format's name of the image ('/' separated, no suffix); subset: its subset
    ("train", "val", ... or "" when the format has none); image_path: the image file;
    annotation: the file holding its annotation (for messages), None when it has none (it then
    goes to the unlabeled pool); class_map: () -> (H, W) int32 source class ids at the image's
    size, UNCOVERED where no annotation lies and IGNORED where it says so; raises DatasetError naming the file when the
    annotation is bad.
    """

    image_id: str
    subset: str
    image_path: pathlib.Path
    annotation: str | None = None
    class_map: Callable[[], np.ndarray] | None = None


@dataclass(frozen=True)
class Source:
    """A dataset read by a format reader: class names in the source's id order, their (r, g, b)
    colours where the format has them (else None), its images, and what it skipped
    ({what: count}, e.g. {"box-only annotations": 3})."""

    classes: list
    colours: list | None
    images: list
    skipped: dict = field(default_factory=dict)


def class_table(source: Source, mapping: dict | None, unannotated: str, ignore_label: int,
                where: str) -> tuple[list, np.ndarray]:
    """The final class names and a lookup table: lut[value + 2] is the final id (uint8) of a class
    map's value (`lut_classes` applies it): of source class ``value``, of UNCOVERED at lut[1] and
    IGNORED (always the ignore label) at lut[0].

    mapping: {source name: final name or None (dropped: its pixels get the ignore label)}, or
    None; source classes it does not name keep their name. Final ids: the mapping's names in its
    order, then the other classes in the source's order (so a mapping also sets the ids, e.g.
    background first; formats without a class list, such as LabelMe, list classes as they
    first appear). unannotated: 'auto' (the format's
    background class, a class named "background" or "_background_", when it has one, else
    ignore), 'ignore', or a final class name. `where` names the config key in messages.
    DatasetError when a name in ``mapping`` or ``unannotated`` is no class, or when there are
    more classes than the 8-bit labels hold beside the ignore label.
    """
    mapping = mapping or {}
    unknown = [name for name in mapping if name not in source.classes]
    if unknown:
        raise DatasetError(f"{where}.classes: {unknown} name no class of the dataset (its classes: "
                           f"{_listed(source.classes)}). Use the dataset's own class names as keys.")
    targets = [mapping.get(name, name) for name in source.classes]
    final = list(dict.fromkeys([t for t in mapping.values() if t is not None] + [t for t in targets if t is not None]))
    if len(final) > 255 or (len(final) > ignore_label and ignore_label not in range(len(final))):
        raise DatasetError(f"{where}: {len(final)} classes do not fit in 8-bit labels beside the ignore label "
                           f"{ignore_label}. Merge or drop classes with `classes:`.")
    lut = np.full(len(source.classes) + 2, ignore_label, np.uint8)
    for source_id, target in enumerate(targets):
        if target is not None:
            lut[source_id + 2] = final.index(target)
    if unannotated == "auto":
        backgrounds = [t for name, t in zip(source.classes, targets) if name.lower() in BACKGROUND_NAMES]
        if backgrounds and backgrounds[0] is not None:
            lut[1] = final.index(backgrounds[0])
    elif unannotated != "ignore":
        if unannotated not in final:
            raise DatasetError(f"{where}.unannotated: {unannotated!r} is no class (the classes: {_listed(final)}). "
                               "Give a class name, 'ignore' or 'auto'.")
        lut[1] = final.index(unannotated)
    return final, lut


def lut_classes(class_map: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """A class map (H, W) int32 through `class_table`'s lookup table: (H, W) uint8 final ids."""
    return lut[class_map + 2]


def assign_splits(images: list, split: dict, root, where: str) -> dict:
    """{'train': [SourceImage], 'test': [...], 'unlabeled': [...]}, each sorted by image id.

    split (the dataset's `split:` settings): 'train' / 'test' lists of image ids (or a text
    file of them, one per line, relative to ``root``) take precedence; else a 'test_fraction'
    with 'seed' (absent: 0) draws the test images from all annotated ones; else the format's subsets
    ('subsets': {train: [...], test: [...]}, default: train/training/trainval and the first of
    test/testing/val/valid/validation that holds annotated images). Annotated images in no
    split and images without annotation go to the unlabeled pool. An image id that two
    chosen images share is prefixed by its subset ("train/0001"). DatasetError when a split
    comes out empty or a listed id is no annotated image.
    """
    annotated = [image for image in images if image.class_map is not None]
    chosen = {"train": [], "test": []}
    if split.get("train") is not None or split.get("test") is not None:
        ids = _unique_ids(annotated)
        by_id = dict(zip(ids, annotated))
        for name in ("train", "test"):
            listed = _id_list(split.get(name), root, f"{where}.split.{name}")
            missing = [i for i in listed if i not in by_id]
            if missing:
                raise DatasetError(f"{where}.split.{name}: {_listed(missing)} are no annotated images of the dataset "
                                   f"(its ids look like {_listed(ids[:3])}). Fix the list.")
            chosen[name] = [by_id[i] for i in listed]
        if not chosen["train"] or not chosen["test"]:
            rest = [image for image in annotated if all(image not in part for part in chosen.values())]
            chosen["train" if not chosen["train"] else "test"] = rest
    elif split.get("test_fraction") is not None:
        order = sorted(annotated, key=lambda image: (image.subset, image.image_id))
        permutation = np.random.default_rng(split.get("seed", 0)).permutation(len(order))
        n_test = int(round(split["test_fraction"] * len(order)))
        chosen["test"] = [order[i] for i in permutation[:n_test]]
        chosen["train"] = [order[i] for i in permutation[n_test:]]
    else:
        subsets = split.get("subsets") or {}
        present = sorted({image.subset for image in annotated})
        for name, defaults in (("train", TRAIN_SUBSETS), ("test", TEST_SUBSETS)):
            wanted = subsets.get(name)
            if wanted is None:
                wanted = [s for s in defaults if s in present][:1]
            unknown = [s for s in wanted if s not in present]
            if unknown:
                raise DatasetError(f"{where}.split.subsets.{name}: {unknown} are not subsets with annotated images "
                                   f"(those are {present}). Name one of them.")
            chosen[name] = [image for image in annotated if image.subset in wanted]
    for name, part in chosen.items():
        if not part:
            subsets = sorted({image.subset or '""' for image in annotated})
            raise DatasetError(f"{root}: the {name} split is empty ({len(annotated)} annotated images, subsets "
                               f"{subsets}). Set the dataset's split.subsets, split.test_fraction or split.{name}.")
    used = {id(image) for part in chosen.values() for image in part}
    out = {name: _sorted_unique(part) for name, part in chosen.items()}
    out["unlabeled"] = _sorted_unique([image for image in images if id(image) not in used])
    return out


def _unique_ids(images: list) -> list:
    """Each image's id, prefixed by its subset where two of ``images`` share one."""
    counts = {}
    for image in images:
        counts[image.image_id] = counts.get(image.image_id, 0) + 1
    return [f"{image.subset}/{image.image_id}" if counts[image.image_id] > 1 and image.subset else image.image_id
            for image in images]


def _sorted_unique(images: list) -> list:
    """``images`` with ids made unique (`_unique_ids`), sorted by id."""
    ids = _unique_ids(images)
    return [SourceImage(i, image.subset, image.image_path, image.annotation, image.class_map)
            for i, image in sorted(zip(ids, images), key=lambda pair: pair[0])]


def _id_list(value, root, key: str) -> list:
    """A `split.train` / `split.test` value: a list of ids, or a text file of them (one per line)."""
    if value is None or isinstance(value, list):
        return list(value or [])
    path = pathlib.Path(value)
    path = path if path.is_absolute() else pathlib.Path(root) / path
    if not path.is_file():
        raise DatasetError(f"{key}: file {path} not found. Give a text file of image ids, one per line, or a list.")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _listed(names: list, limit: int = 12) -> str:
    shown = ", ".join(str(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
