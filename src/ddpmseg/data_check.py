"""`ddpmseg data check PATH`: a dataset folder read exactly as the workflow's preparation reads it
(the same readers, class table and split rules), nothing written, and a report a person can act on:
the format found, images per subset and split, labelled and unlabeled counts, the classes with
their pixel shares, the image sizes and orientation tags, what the reader skipped, and every
problem, one per line.
"""

from __future__ import annotations

import pathlib
from collections import Counter

import numpy as np

from ddpmseg.datasets import check_item, read_label
from ddpmseg.errors import DatasetError
from ddpmseg.formats.detect import detect
from ddpmseg.formats.paper import PAPER, list_split, read_meta
from ddpmseg.formats.prepare import read_source
from ddpmseg.formats.source import TEST_SUBSETS, TRAIN_SUBSETS, assign_splits, class_table, lut_classes
from ddpmseg.images import shown_size


class Report:
    """What `check` found: ``lines`` to print and ``problems`` (one line each; none: the data is usable)."""

    def __init__(self):
        self.lines, self.problems = [], []


def check(path, fmt: str = "auto", classes=None, split: dict | None = None, unannotated: str = "auto",
          ignore_label: int | None = None) -> Report:
    """Read the dataset at ``path`` as the workflow would with these dataset settings (``classes``:
    a list, a {name: new name or None} mapping, or None) and report on it. DatasetError only
    where the format cannot be told (auto fits none or several) or the reader cannot list the folder."""
    report, path = Report(), pathlib.Path(path)
    why = "given"
    if fmt == "auto":
        fmt, why = detect(path)
    report.lines.append(f"format: {fmt} ({why})")
    if fmt == PAPER:
        _check_paper(path, classes, ignore_label, report)
    else:
        _check_format(path, fmt, classes, split or {}, unannotated, ignore_label, report)
    report.problems = list(dict.fromkeys(report.problems))  # an unreadable annotated image is found twice
    return report


def _check_paper(root: pathlib.Path, classes, ignore_label, report: Report) -> None:
    """The paper's layout: real/train, real/test (NAME + NAME.npy), unlabeled/, meta.json."""
    try:
        meta = read_meta(root, classes if isinstance(classes, list) else None, ignore_label)
    except DatasetError as exc:
        report.problems.extend(exc.problems)
        return
    counts, pixels, images = {}, Counter(), []
    for split in ("train", "test", "unlabeled"):
        try:
            items = list_split(root, split)
        except DatasetError as exc:
            if split != "unlabeled":
                report.problems.extend(exc.problems)
            continue
        counts[split] = len(items)
        for _, image_path, label_path in items:
            found = check_item(image_path, label_path, split != "unlabeled", "pad", meta)
            report.problems.extend(found)
            images.append(image_path)
            if split != "unlabeled" and label_path is not None and not found:
                pixels.update(Counter(dict(zip(*np.unique(read_label(label_path), return_counts=True)))))
    report.lines.append("splits: " + ", ".join(f"{split} {n}" for split, n in counts.items()))
    report.lines.append(f"labelled {counts.get('train', 0) + counts.get('test', 0)}, "
                        f"unlabeled {counts.get('unlabeled', 0)}")
    _class_lines(meta["classes"], meta["ignore_label"], pixels, report)
    _size_lines(images, report)


def _check_format(root: pathlib.Path, fmt: str, classes, split: dict, unannotated: str, ignore_label,
                  report: Report) -> None:
    settings = {"format": fmt, "classes": classes, "ignore_label": ignore_label}
    try:
        source = read_source(root, settings, "data check")
    except DatasetError as exc:
        report.problems.extend(exc.problems)
        return
    ignore = 255 if ignore_label is None else ignore_label
    try:
        final, lut = class_table(source, classes if isinstance(classes, dict) else None, unannotated, ignore,
                                 "data check")
    except DatasetError as exc:
        report.problems.extend(exc.problems)
        return
    annotated = [image for image in source.images if image.class_map is not None]
    subsets = Counter(image.subset or '""' for image in source.images)
    report.lines.append("subsets (images): " + ", ".join(f"{name} {n}" for name, n in sorted(subsets.items())))
    present = {image.subset for image in annotated}
    has_subsets = any(s in present for s in TRAIN_SUBSETS) and any(s in present for s in TEST_SUBSETS)
    if split or has_subsets:
        try:
            splits = assign_splits(source.images, split, root, "data check")
            report.lines.append("splits: " + ", ".join(f"{name} {len(images)}" for name, images in splits.items()))
        except DatasetError as exc:
            report.problems.extend(exc.problems)
    else:
        names = ", ".join(sorted(s or '""' for s in present)) or "none"
        report.lines.append(f"splits: no train and test subsets among the annotated images (subsets: {names}); "
                            "add to the dataset's config: split: {test_fraction: 0.2, seed: 0}")
    report.lines.append(f"labelled {len(annotated)}, unlabeled {len(source.images) - len(annotated)}")
    pixels = Counter()
    for image in source.images:
        report.problems.extend(check_item(image.image_path, None, False, "pad", None)
                               if image.image_path.is_file() or image.class_map is None else [])
        if image.class_map is None:
            continue
        try:
            label = lut_classes(image.class_map(), lut)
        except DatasetError as exc:
            report.problems.extend(exc.problems)
            continue
        pixels.update(Counter(dict(zip(*np.unique(label, return_counts=True)))))
    _class_lines(final, ignore, pixels, report)
    _size_lines([image.image_path for image in source.images if image.image_path.is_file()], report)
    for what, n in source.skipped.items():
        report.lines.append(f"skipped: {n} {what}")


def _class_lines(classes: list, ignore: int, pixels: Counter, report: Report) -> None:
    """The classes with their share of the labelled images' pixels (the ignore label's too)."""
    total = sum(pixels.values()) or 1
    shares = [f"{i} {name} {100 * pixels.get(i, 0) / total:.1f}%" for i, name in enumerate(classes)]
    report.lines.append(f"classes ({len(classes)}): " + ", ".join(shares))
    report.lines.append(f"ignored ({ignore}): {100 * pixels.get(ignore, 0) / total:.1f}% of the labelled pixels")
    absent = [name for i, name in enumerate(classes) if not pixels.get(i) and i != ignore]
    if absent and pixels:
        report.lines.append(f"classes without pixels: {', '.join(absent)}")


def _size_lines(paths: list, report: Report) -> None:
    """The images' shown sizes and how many carry an orientation tag that turns or flips them."""
    sizes, tags = Counter(), Counter()
    for path in paths:
        try:
            width, height, tag = shown_size(path)
        except DatasetError:
            continue  # listed among the problems already
        sizes[(width, height)] += 1
        tags[tag] += 1
    common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(5))
    more = f" and {len(sizes) - 5} more sizes" if len(sizes) > 5 else ""
    report.lines.append(f"image sizes (width x height, as shown): {common or 'none'}{more}")
    non_square = sum(n for (w, h), n in sizes.items() if w != h)
    if non_square:
        report.lines.append(f"non-square: {non_square} images; the config's non_square: pad (or crop) takes them")
    tagged = sum(n for tag, n in tags.items() if tag != 1)
    report.lines.append(f"orientation tags: {tagged} of {sum(tags.values())} images"
                        + (f" ({', '.join(f'{n} x {t}' for t, n in sorted(tags.items()) if t != 1)}: read as "
                           "shown)" if tagged else ""))
