"""`format: paper` (the default): a dataset in the layout of the paper's code (ddpm-segmentation)::

    <root>/meta.json                 {"classes": [...], "ignore_label": 255, ...}
    <root>/real/train/NAME.jpg + NAME.npy   (H x W integer label; any suffix of IMAGE_SUFFIXES)
    <root>/real/test/NAME.jpg  + NAME.npy
    <root>/unlabeled/NAME.jpg               (images only, optional)

Images are found recursively under each split folder (`ddpmseg.folders.list_folder`) and sorted
by their path relative to the split folder, as the paper's code does. Its splits and class ids are
fixed, so it takes none of the other formats' `classes` mapping, `split`, `unannotated` or
`unlabeled`. `validate_dataset` checks every file before any work starts and raises one
`DatasetError` that lists every problem, one line per file, each saying what is wrong and what
to do; `prepare` writes the splits the workflow asks for, as `ddpmseg.formats.prepare.prepare_formatted`
does for the other formats (`prepare_split`: one split).
"""

from __future__ import annotations

import json
import logging
import pathlib

from ddpmseg.datasets import check_items, problems_error, read_label, structure_problems
from ddpmseg.errors import DatasetError
from ddpmseg.folders import list_folder
from ddpmseg.images import IMAGE_SUFFIXES, has_alpha
from ddpmseg.resizing import check_non_square_mode
from ddpmseg.splits import write_empty_split, write_split

PAPER = "paper"  # its `format:` name
SPLITS = ("train", "test", "unlabeled")
log = logging.getLogger(__name__)


def _split_dir(root, split: str) -> pathlib.Path:
    """Folder of ``split`` ('train', 'test' or 'unlabeled') inside dataset ``root``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    root = pathlib.Path(root)
    return root / "unlabeled" if split == "unlabeled" else root / "real" / split


def read_meta(root, classes: list | None = None, ignore_label: int | None = None) -> dict:
    """Parse and check ``<root>/meta.json``, or the class list and ignore label given instead.

    'classes' must be a non-empty list of distinct strings (at most 256, the label id is
    the list index) and 'ignore_label' an int in 0..255. The ignore label may be a class id
    (the paper's bedroom_28 ignores its class 0, 'background'): that class is then never
    trained on nor scored. ``classes`` / ``ignore_label`` (from the config) replace the
    file's keys; when both are given, meta.json may be absent (as in the paper's archive).
    Other keys are ignored.

    Returns ``{'classes': [str], 'ignore_label': int, 'num_classes': int,
    'name': str}``; 'name' is meta.json's "name" or else the folder name.
    Raises DatasetError listing every problem found.
    """
    root = pathlib.Path(root)
    path = root / "meta.json"
    example = 'e.g. {"classes": ["background", "skin", "hair"], "ignore_label": 255}'
    meta = {}
    if path.is_file():
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise problems_error(root, [f"{path}: cannot be read as JSON ({exc}). Fix the file, {example}."]) from exc
        if not isinstance(meta, dict):
            raise problems_error(root, [f"{path}: must hold a JSON object, got {type(meta).__name__}. "
                                         f"Write it as {example}."])
    elif classes is None or ignore_label is None:
        raise problems_error(root, [f"{path}: file not found. Create it with the class names and ignore label, "
                                     f"{example}, or set the dataset's `classes` and `ignore_label` in the config."])
    source = {key: path for key in ("classes", "ignore_label")}
    for key, value in (("classes", classes), ("ignore_label", ignore_label)):
        if value is not None:
            meta[key], source[key] = value, f"config ({key})"

    problems = []
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        problems.append(f"{source['classes']}: 'classes' must be a non-empty list of class names (strings), got "
                        f"{classes!r}. List the class names in label-id order, {example}.")
    else:
        duplicates = sorted({c for c in classes if classes.count(c) > 1})
        if duplicates:
            problems.append(f"{source['classes']}: 'classes' names {duplicates} more than once. "
                            "Give every class a distinct name.")
        if len(classes) > 256:
            problems.append(f"{source['classes']}: 'classes' has {len(classes)} entries but labels are 8-bit "
                            "(at most 256 classes). Merge classes.")
    ignore = meta.get("ignore_label")
    if isinstance(ignore, bool) or not isinstance(ignore, int) or not 0 <= ignore <= 255:
        problems.append(f"{source['ignore_label']}: 'ignore_label' must be an integer in 0..255, got {ignore!r}. "
                        "Set it to the label value of unannotated pixels, usually 255.")
    name = meta.get("name", root.resolve().name)
    if not isinstance(name, str) or not name:
        problems.append(f"{path}: 'name' must be a non-empty string, got {name!r}. Fix or remove it.")
    if problems:
        raise problems_error(root, problems)
    return {"classes": list(classes), "ignore_label": ignore, "num_classes": len(classes), "name": name}


def list_split(root, split: str, max_images: int | None = None) -> list[tuple[str, pathlib.Path, pathlib.Path | None]]:
    """Images of one split, sorted by path relative to the split folder.

    Returns ``[(image_id, image_path, label_path or None)]``, the first
    ``max_images`` if given. ``image_id`` is the relative path without suffix
    with '/' separators (e.g. "0001" or "sub/0001"). ``label_path`` is the
    ``.npy`` next to the image when the split is labelled and the file exists,
    else None (always None for 'unlabeled').
    Raises DatasetError when the split folder does not exist.
    """
    return list_folder(_split_dir(root, split), labelled=split != "unlabeled", max_images=max_images, what=split)


def validate_dataset(root, splits=("train", "test", "unlabeled"), non_square: str = "error",
                     max_images: dict | None = None, classes: list | None = None,
                     ignore_label: int | None = None) -> dict:
    """Check meta.json (or the ``classes`` / ``ignore_label`` given instead, see `read_meta`)
    and every image and label of ``splits`` before any work.

    ``max_images`` maps a split to the number of (sorted) images used; only
    those are checked. 'unlabeled' may be absent only when it is not in
    ``splits``. Each image is opened and decoded (to catch truncation), each
    label read fully. Raises one DatasetError listing every problem (one line
    per file: path, what is wrong, what to do).

    Returns ``{'counts': {split: n}, 'num_classes': int, 'classes': [str],
    'ignore_label': int}``.
    """
    check_non_square_mode(non_square)
    root = pathlib.Path(root)
    max_images = max_images or {}
    problems = []
    try:
        meta = read_meta(root, classes, ignore_label)
    except DatasetError as exc:
        meta = None
        problems.extend(exc.problems)

    counts = {}
    jobs = []
    for split in splits:
        folder = _split_dir(root, split)
        if not folder.is_dir():
            what = ("Add unlabeled images there, or give a pretrained diffusion checkpoint so that none are needed."
                    if split == "unlabeled" else f"Put the {split} images and their .npy labels there.")
            problems.append(f"{folder}: {split} folder not found. {what}")
            continue
        try:
            items = list_split(root, split, max_images.get(split))
        except DatasetError as exc:  # folder links that must not be followed
            problems.extend(exc.problems)
            continue
        counts[split] = len(items)
        if not items:
            problems.append(f"{folder}: {split} folder holds no images ({', '.join(IMAGE_SUFFIXES)}). "
                            f"Add the {split} images there.")
        labelled = split != "unlabeled"
        problems.extend(structure_problems(folder, items, labelled))
        jobs.extend((image_path, label_path, labelled) for _, image_path, label_path in items)

    problems.extend(check_items(jobs, non_square, meta))
    if problems:
        raise problems_error(root, problems)
    return {"counts": counts, "num_classes": meta["num_classes"], "classes": meta["classes"],
            "ignore_label": meta["ignore_label"]}


def prepare_split(root, split: str, out_path, image_size: int, non_square: str = "error",
                  max_images: int | None = None, classes: list | None = None,
                  ignore_label: int | None = None, resize: str = "lanczos") -> dict:
    """Validate one split (`validate_dataset`), then write its first ``max_images`` images (all:
    None) as a split group at ``out_path`` (`ddpmseg.splits.write_split`; labels for train and
    test; attrs source str(root)). Returns the validation's summary."""
    summary = validate_dataset(root, splits=(split,), non_square=non_square, max_images={split: max_images},
                               classes=classes, ignore_label=ignore_label)
    _write(root, split, out_path, summary, image_size, non_square, max_images, resize)
    return summary


def prepare(root, settings: dict, outputs: dict, needs_unlabeled: bool) -> dict:
    """`ddpmseg.formats.prepare.prepare_formatted` for the paper's layout: the splits ``outputs``
    {split: group path} of the dataset at ``root`` (its config ``settings``) validated together
    before any is written, then each written as `prepare_split` writes it; the unlabeled split is
    read only when ``needs_unlabeled``, else written empty. Returns `validate_dataset`'s summary
    ({'counts': {}} where no split is read)."""
    limits = {"train": settings["max_train"], "test": settings["max_test"]}
    read = [split for split in outputs if split != "unlabeled" or needs_unlabeled]
    summary = validate_dataset(root, splits=read, non_square=settings["non_square"], max_images=limits,
                               classes=settings["classes"], ignore_label=settings["ignore_label"]) \
        if read else {"counts": {}}
    for split in read:
        _write(root, split, outputs[split], summary, settings["image_size"], settings["non_square"],
               limits.get(split), settings["resize"])
    if "unlabeled" in outputs and not needs_unlabeled:
        write_empty_split(outputs["unlabeled"], settings["image_size"])
    return summary


def _write(root, split: str, out_path, summary: dict, image_size: int, non_square: str, max_images: int | None,
           resize: str) -> None:
    """Write a split that `validate_dataset` found usable (its ``summary``), warning of images with
    an alpha channel (it is dropped)."""
    items = list_split(root, split, max_images)
    label_of = None if split == "unlabeled" else (lambda i: read_label(items[i][2]))
    write_split(out_path, split, items, label_of, root, summary["classes"], summary["ignore_label"], image_size,
                non_square, resize)
    with_alpha = [image_path for _, image_path, _ in items if has_alpha(image_path)]
    if with_alpha:
        log.warning("%s: %d of %d %s images have an alpha channel (first: %s); it is dropped, so transparent "
                    "pixels show the colour stored under them. Flatten the images onto a background to choose it.",
                    root, len(with_alpha), len(items), split, with_alpha[0])
