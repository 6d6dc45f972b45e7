"""Dataset validation, square-resizing and conversion to Zarr.

A dataset folder follows the layout of the paper's code (ddpm-segmentation)::

    <root>/meta.json                 {"classes": [...], "ignore_label": 255, ...}
    <root>/real/train/NAME.{png,jpg,jpeg} + NAME.npy   (H x W integer label)
    <root>/real/test/NAME.{png,jpg,jpeg}  + NAME.npy
    <root>/unlabeled/NAME.{png,jpg,jpeg}               (images only, optional)

Images are found recursively under each split folder (files and folders whose
name starts with "." are skipped) and sorted by their path relative to the split
folder, as the paper's code does. Linked files are read; a linked folder must lead
to a folder inside its split folder not reached otherwise (no loops, no other
split's or outside images). `manifest_digest` fingerprints every file of a dataset
(names, sizes, mtimes), so that the workflow reruns when any of them changes. A label sits next to its image with the image
suffix replaced by ".npy"; its values are class ids 0..K-1 (the index in
``meta.json["classes"]``) or the ignore label.

`validate_dataset` checks every file before any work starts and raises one
`DatasetError` that lists every problem, one line per file, each saying what is
wrong and what to do. `load_image` / `load_label` bring an image / label to an
``image_size`` square (non-square inputs are refused, centre-padded or
centre-cropped), and `prepare_split` writes a whole split as a Zarr v3 group.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import zarr
from PIL import Image

from ddpmseg.atomic import folder_written_atomically
from ddpmseg.errors import DatasetError
from ddpmseg.images import open_image, read_rgb, turned_mask_problem

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test", "unlabeled")
NON_SQUARE_MODES = ("error", "pad", "crop")
# How images and labels are brought to the model's size: 'lanczos' (images LANCZOS, labels
# PIL NEAREST at pixel centres) or 'paper' (the paper's code: torchvision's Resize on a PIL
# image, i.e. PIL BILINEAR, and OpenCV's INTER_NEAREST for labels).
RESIZE_MODES = ("lanczos", "paper")

# Pillow modes whose conversion to 8-bit RGB keeps the picture. 16-bit and float
# modes ("I;16", "I", "F") would be clipped to 0..255 and come out wrong.
_RGB_CONVERTIBLE_MODES = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
)
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_MAX_LISTED_VALUES = 20
log = logging.getLogger(__name__)
_VALIDATION_THREADS = 8


def _problems_error(root: pathlib.Path, problems: list[str]) -> DatasetError:
    """One DatasetError whose message lists ``problems`` (each once) under a header naming the dataset."""
    problems = list(dict.fromkeys(problems))  # an image both unreadable and annotated is found twice
    header = f"Dataset {root} has {len(problems)} problem{'s' if len(problems) != 1 else ''}:"
    return DatasetError("\n".join([header] + [f"  {p}" for p in problems]), problems)


def _check_non_square_mode(non_square: str) -> None:
    if non_square not in NON_SQUARE_MODES:
        raise ValueError(f"non_square must be one of {', '.join(NON_SQUARE_MODES)}; got {non_square!r}")


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
            raise _problems_error(root, [f"{path}: cannot be read as JSON ({exc}). Fix the file, {example}."]) from exc
        if not isinstance(meta, dict):
            raise _problems_error(root, [f"{path}: must hold a JSON object, got {type(meta).__name__}. "
                                         f"Write it as {example}."])
    elif classes is None or ignore_label is None:
        raise _problems_error(root, [f"{path}: file not found. Create it with the class names and ignore label, "
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
        raise _problems_error(root, problems)
    return {"classes": list(classes), "ignore_label": ignore, "num_classes": len(classes), "name": name}


def _folder_link_problem(link: pathlib.Path, folder: pathlib.Path, visited: set) -> str | None:
    """Why the folder link ``link`` below ``folder`` must not be followed, or None."""
    target = link.resolve()
    if not target.is_relative_to(folder.resolve()):
        return (f"{link}: folder link to {target}, outside the split folder {folder}: its images would join "
                "this split (another split's, or from elsewhere). Copy the images in, or remove the link.")
    if target in visited or link.parent.resolve().is_relative_to(target):
        return (f"{link}: folder link to {target}, a folder this split already reaches (a loop or a second way "
                "in): its images would count more than once. Remove the link.")
    return None


def _walk_files(folder: pathlib.Path, strict: bool = True) -> list[pathlib.PurePosixPath]:
    """Paths (relative to ``folder``) of all files below it, skipping dot-files and dot-folders.

    Folder links are followed when they lead inside ``folder`` to a folder not reached
    otherwise; any other raises DatasetError naming it (``strict``) or is skipped.
    """
    found, problems = [], []
    visited = {folder.resolve()}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        kept = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            path = pathlib.Path(dirpath) / name
            if path.is_symlink():
                problem = _folder_link_problem(path, folder, visited)
            elif path.resolve() in visited:  # a link listed earlier leads here
                problem = (f"{path}: this folder is also reached through a folder link in {folder}: its images "
                           "would count twice. Remove the link.")
            else:
                problem = None
            if problem:
                problems.append(problem)
            else:
                visited.add(path.resolve())
                kept.append(name)
        dirnames[:] = kept
        rel = pathlib.PurePosixPath(pathlib.Path(dirpath).relative_to(folder).as_posix())
        found.extend(rel / f for f in filenames if not f.startswith("."))
    if problems and strict:
        raise DatasetError("\n".join(problems), problems)
    return found


def manifest_digest(root, tops=("real", "unlabeled")) -> str:
    """sha256 (hex) over the relative path, size and mtime (ns) of meta.json and of every file
    below the folders ``tops`` of the paper's layout: real/ (the labelled splits), unlabeled/
    (the pool), as the splits list them, links followed where they may be. Any file added,
    removed, rewritten or touched changes it; "" when ``root`` is no folder."""
    root = pathlib.Path(root)
    if not root.is_dir():
        return ""
    digest = hashlib.sha256()
    files = [pathlib.PurePosixPath("meta.json")] if (root / "meta.json").is_file() else []
    for top in tops:
        if (root / top).is_dir():
            files += [pathlib.PurePosixPath(top) / rel for rel in _walk_files(root / top, strict=False)]
    for rel in sorted(files, key=str):
        stat = (root / rel).stat()
        digest.update(f"{rel}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def relative_file(path, root) -> str:
    """``path`` relative to ``root`` with '/' separators, or absolute where it lies outside."""
    path, root = pathlib.Path(path), pathlib.Path(root)
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.absolute().as_posix()


def folder_digest(folder) -> str:
    """sha256 (hex) over the relative path, size and mtime (ns) of every file below ``folder``, as
    `manifest_digest` does for a dataset; "" when it is no folder."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return ""
    digest = hashlib.sha256()
    for rel in sorted(_walk_files(folder, strict=False), key=str):
        stat = (folder / rel).stat()
        digest.update(f"{rel}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


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


def list_folder(folder, labelled: bool = False, max_images: int | None = None, what: str = "") -> list:
    """`list_split` of any folder of images (below it, sorted by relative path); labels are
    looked for only when ``labelled``. ``what`` names the images in the error of a missing folder."""
    folder = pathlib.Path(folder)
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be a positive integer or None; got {max_images!r}")
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found. Put the {what + ' ' if what else ''}images there.")
    images = sorted((p for p in _walk_files(folder) if p.suffix.lower() in IMAGE_SUFFIXES), key=str)
    if max_images is not None:
        images = images[:max_images]
    items = []
    for rel in images:
        image_path = folder / rel
        label_path = image_path.with_suffix(".npy")
        has_label = labelled and label_path.is_file()
        items.append((rel.with_suffix("").as_posix(), image_path, label_path if has_label else None))
    return items


def _non_square_problem(path, width: int, height: int) -> str:
    return (f"{path}: image is {width}x{height} (width x height), not square. Set the dataset's "
            "`non_square: pad` (centre-pad; label padding gets the ignore label) or `non_square: crop` "
            "(centre crop) in the config, or make the images square.")


def _read_label_array(path) -> np.ndarray:
    """The label array as stored (2-D, integer dtype); DatasetError if it is not one."""
    hint = "Save it with np.save(path, label.astype(np.uint8))."
    try:
        with open(path, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise DatasetError(f"{path}: not a .npy file (no NumPy header). {hint}")
            f.seek(0)
            label = np.load(f, allow_pickle=False)
    except DatasetError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DatasetError(f"{path}: label needs pickle to load (object array). {hint}") from exc
        raise DatasetError(f"{path}: cannot be read as a .npy label ({exc}). {hint}") from exc
    except Exception as exc:  # unreadable or damaged file: any reader error means the same to the user
        raise DatasetError(f"{path}: cannot be read as a .npy label ({type(exc).__name__}: {exc}). {hint}") from exc
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise DatasetError(f"{path}: label must be a 2-D integer array (height x width), got shape "
                           f"{label.shape} dtype {label.dtype}. Save one class id per pixel as uint8.")
    return label


def _format_values(values: np.ndarray) -> str:
    shown = [int(v) for v in values[:_MAX_LISTED_VALUES]]
    more = f" and {len(values) - _MAX_LISTED_VALUES} more" if len(values) > _MAX_LISTED_VALUES else ""
    return f"{shown}{more}"


def _check_item(image_path: pathlib.Path, label_path: pathlib.Path | None, labelled: bool,
                non_square: str, meta: dict | None) -> list[str]:
    """Problems of one (image, label) pair; reads the image header and pixels and the whole label."""
    problems = []
    size = None
    tag = 1
    try:
        with open_image(image_path) as im:
            size, mode, tag = im.size, im.mode, im.info["orientation"]
            if mode not in _RGB_CONVERTIBLE_MODES:
                problems.append(f"{image_path}: image mode {mode!r} (e.g. 16-bit or float) cannot be converted to "
                                "8-bit RGB without losing it. Save it as an 8-bit RGB PNG or JPEG.")
    except DatasetError as exc:
        problems.extend(exc.problems)
    if size is not None and size[0] != size[1] and non_square == "error":
        problems.append(_non_square_problem(image_path, *size))
    if not labelled:
        return problems
    if label_path is None:
        problems.append(f"{image_path.with_suffix('.npy')}: label file missing for image {image_path.name}. "
                        "Add the label (np.save of a uint8 height x width array) or remove the image.")
        return problems
    try:
        label = _read_label_array(label_path)
    except DatasetError as exc:
        return problems + exc.problems
    turned = size is not None and turned_mask_problem(label.shape[::-1], size, tag, label_path, image_path.name)
    if turned:
        problems.append(turned)
    elif size is not None and label.shape != (size[1], size[0]):
        problems.append(f"{label_path}: label shape {label.shape} (height, width) does not match the image "
                        f"{image_path.name}, which is {size[1]}x{size[0]} (height x width). "
                        "Save the label at the image's size.")
    if meta is not None:
        k, ignore = meta["num_classes"], meta["ignore_label"]
        values = np.flatnonzero(np.bincount(label.ravel(), minlength=256)) if label.dtype == np.uint8 \
            else np.unique(label)
        bad = values[((values < 0) | (values >= k)) & (values != ignore)]
        if bad.size:
            problems.append(f"{label_path}: label has values {_format_values(bad)} outside 0..{k - 1} "
                            f"(ignore label {ignore}). Fix the label file or the class list (meta.json or the config).")
    return problems


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
    _check_non_square_mode(non_square)
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
        problems.extend(_structure_problems(folder, items, labelled))
        jobs.extend((image_path, label_path, labelled) for _, image_path, label_path in items)

    with ThreadPoolExecutor(_VALIDATION_THREADS) as pool:
        for item_problems in pool.map(lambda job: _check_item(*job, non_square, meta), jobs):
            problems.extend(item_problems)
    if problems:
        raise _problems_error(root, problems)
    return {"counts": counts, "num_classes": meta["num_classes"], "classes": meta["classes"],
            "ignore_label": meta["ignore_label"]}


def _structure_problems(folder: pathlib.Path, items: list, labelled: bool) -> list[str]:
    """Images sharing one id (e.g. a.png and a.jpg), and, in labelled splits, labels with no image."""
    problems = []
    first_path = {}
    for image_id, image_path, _ in items:
        if image_id in first_path:
            problems.append(f"{image_path}: has the same name as {first_path[image_id]}, so both would share one "
                            "image id and label. Rename or remove one of them.")
        else:
            first_path[image_id] = image_path
    if labelled:
        files = _walk_files(folder)
        image_stems = {f.with_suffix("") for f in files if f.suffix.lower() in IMAGE_SUFFIXES}
        for rel in sorted((f for f in files if f.suffix == ".npy"), key=str):
            if rel.with_suffix("") not in image_stems:
                problems.append(f"{folder / rel}: label has no image next to it (expected "
                                f"{rel.stem}.png, .jpg or .jpeg). Add the image in one of those formats "
                                "or remove the label.")
    return problems


def _make_square(array: np.ndarray, path, non_square: str, **pad_kwargs) -> np.ndarray:
    """Centre-pad (np.pad with ``pad_kwargs``) or centre-crop ``array`` (H, W[, C]) to a square.

    Square input comes back unchanged; non-square input with ``non_square='error'``
    raises DatasetError.
    """
    height, width = array.shape[:2]
    if height == width:
        return array
    if non_square == "error":
        raise DatasetError(_non_square_problem(path, width, height))
    top, left, side = square_box(height, width, non_square)
    if non_square == "crop":
        return array[top:top + side, left:left + side]
    pad = [(top, side - height - top), (left, side - width - left)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, pad, **pad_kwargs)


def has_alpha(path) -> bool:
    """Whether the image file has an alpha channel (or a transparent palette entry), which
    `load_image` drops: the model sees the colour under transparent pixels."""
    with Image.open(path) as im:
        return im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)


def opencv_nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source index of each output position of OpenCV's INTER_NEAREST resize along one axis:
    min(floor(x * (1 / (out / in))), in - 1), in float64 as OpenCV computes it (no half-pixel
    offset, unlike PIL's NEAREST, which samples pixel centres)."""
    inverse_scale = 1.0 / (out_size / in_size)
    return np.minimum(np.floor(np.arange(out_size) * inverse_scale).astype(np.int64), in_size - 1)


def load_image(path, image_size: int, non_square: str = "error", resize: str = "lanczos") -> np.ndarray:
    """Image at ``path`` as an (image_size, image_size, 3) uint8 RGB array (`read_rgb`, then `fit_image`)."""
    return fit_image(read_rgb(path), image_size, non_square, resize, path)


def fit_image(rgb: np.ndarray, image_size: int, non_square: str = "error", resize: str = "lanczos",
              path="image") -> np.ndarray:
    """An (H, W, 3) uint8 image brought to (image_size, image_size, 3) uint8.

    Non-square images: 'error' raises DatasetError (naming ``path``), 'pad' centre-pads to a
    square by edge replication, 'crop' takes the centre square (`square_box` says where the
    image lies). Resized with LANCZOS, or with PIL's BILINEAR for ``resize='paper'`` (what
    torchvision's Resize does to a PIL image).
    """
    _check_non_square_mode(non_square)
    square = _make_square(rgb, path, non_square, mode="edge")
    if square.shape[0] != image_size:
        method = Image.Resampling.BILINEAR if resize == "paper" else Image.Resampling.LANCZOS
        square = np.asarray(Image.fromarray(square).resize((image_size, image_size), method))
    return np.ascontiguousarray(square, dtype=np.uint8)


def read_label(path) -> np.ndarray:
    """Label (.npy) at ``path`` as an (H, W) uint8 array at its own size. Any 2-D integer array
    with values in 0..255 is accepted."""
    label = _read_label_array(path)
    if label.dtype != np.uint8:
        if label.size and (label.min() < 0 or label.max() > 255):
            raise DatasetError(f"{path}: label values must lie in 0..255, found "
                               f"{int(label.min())}..{int(label.max())}. Fix the label file.")
        label = label.astype(np.uint8)
    return label


def load_label(path, image_size: int, ignore_label: int, non_square: str = "error",
               resize: str = "lanczos") -> np.ndarray:
    """Label (.npy) at ``path`` as an (image_size, image_size) uint8 array (`read_label`, then `fit_label`)."""
    return fit_label(read_label(path), image_size, ignore_label, non_square, resize, path)


def fit_label(label: np.ndarray, image_size: int, ignore_label: int, non_square: str = "error",
              resize: str = "lanczos", path="label") -> np.ndarray:
    """An (H, W) uint8 label brought to (image_size, image_size) uint8 with `fit_image`'s geometry
    ('pad' fills with ``ignore_label``), resized with PIL's NEAREST, or OpenCV's INTER_NEAREST for
    ``resize='paper'``, so only values present in it appear."""
    _check_non_square_mode(non_square)
    square = _make_square(label, path, non_square, mode="constant", constant_values=ignore_label)
    if square.shape[0] != image_size:
        if resize == "paper":
            rows = opencv_nearest_indices(square.shape[0], image_size)
            square = square[np.ix_(rows, opencv_nearest_indices(square.shape[1], image_size))]
        else:
            square = np.asarray(Image.fromarray(square).resize((image_size, image_size), Image.Resampling.NEAREST))
    return np.ascontiguousarray(square, dtype=np.uint8)


def square_box(height: int, width: int, non_square: str) -> tuple[int, int, int]:
    """Where an image of ``height`` x ``width`` lies in the square `fit_image` makes of it before
    resizing, (top, left, side): for 'pad' the image sits at rows top..top+height and columns
    left..left+width of a side x side square; for 'crop' the square is rows top..top+side and
    columns left..left+side of the image; a square image is (0, 0, height)."""
    if height == width:
        return 0, 0, height
    side = min(height, width) if non_square == "crop" else max(height, width)
    return abs(height - side) // 2, abs(width - side) // 2, side


def prepare_split(root, split: str, out_path, image_size: int, non_square: str = "error",
                  max_images: int | None = None, classes: list | None = None,
                  ignore_label: int | None = None, resize: str = "lanczos") -> None:
    """Validate one split, then write it as a Zarr v3 group at ``out_path`` (a directory).

    Arrays (N = number of images, S = image_size):
      images: (N, S, S, 3) uint8, chunks (1, S, S, 3), dimension_names ("image", "y", "x", "rgb")
      labels: (N, S, S) uint8, chunks (1, S, S), dimension_names ("image", "y", "x"); train/test only
      original_labels/<i>: (H_i, W_i) uint8, image i's label at its own size; train/test only
        (`evaluation.resolution: original` scores against these)
    Group attrs: split, image_ids, classes, ignore_label, image_size, source (str(root)), non_square,
    resize (see `RESIZE_MODES`), original_sizes ([height, width] of each image file).

    The group is written to a temporary sibling directory and renamed into place
    at the end (replacing any old ``out_path``), so a failure never leaves a
    half-written ``out_path``.
    """
    _check_non_square_mode(non_square)
    summary = validate_dataset(root, splits=(split,), non_square=non_square, max_images={split: max_images},
                               classes=classes, ignore_label=ignore_label)
    items = list_split(root, split, max_images)

    def write(group: zarr.Group) -> None:
        images = _create_images(group, len(items), image_size)
        labels = _create_labels(group, len(items), image_size) if split != "unlabeled" else None
        originals = group.create_group(ORIGINAL_LABELS) if labels is not None else None
        with_alpha, sizes = [], []
        for i, (_, image_path, label_path) in enumerate(items):
            rgb = read_rgb(image_path)
            sizes.append(list(rgb.shape[:2]))
            images[i] = fit_image(rgb, image_size, non_square, resize, image_path)
            if has_alpha(image_path):
                with_alpha.append(image_path)
            if labels is not None:
                label = read_label(label_path)
                labels[i] = fit_label(label, image_size, summary["ignore_label"], non_square, resize, label_path)
                write_original_label(originals, i, label)
        group.attrs.update({
            "split": split,
            "image_ids": [image_id for image_id, _, _ in items],
            "classes": summary["classes"],
            "ignore_label": summary["ignore_label"],
            "image_size": image_size,
            "source": str(root),
            "non_square": non_square,
            "resize": resize,
            "original_sizes": sizes,
            "files": [relative_file(image_path, root) for _, image_path, _ in items],
        })
        if with_alpha:
            log.warning("%s: %d of %d %s images have an alpha channel (first: %s); it is dropped, so transparent "
                        "pixels show the colour stored under them. Flatten the images onto a background to choose it.",
                        root, len(with_alpha), len(items), split, with_alpha[0])

    _write_group_atomically(out_path, write)


FOLDER_KINDS = {"segment": False, "annotated": True}  # a prepared folder's kind -> whether it has labels


def prepare_folder(folder, out_path, image_size: int, name: str, classes: list, ignore_label: int,
                   non_square: str = "error", resize: str = "lanczos", kind: str = "segment") -> None:
    """Validate every image below ``folder`` (unreadable, non-square under 'error' and same-named
    images, and for an 'annotated' folder missing, misshapen or out-of-range NAME.npy labels, are
    listed in one DatasetError naming the config key ``<kind>.<name>``), then write them as a
    split group at ``out_path``, resized as `prepare_split` does: 'images' (and for 'annotated'
    'labels') and the attrs of a split, with split "<kind>-<name>" and the dataset's ``classes``
    and ``ignore_label``. Kinds: 'segment' (images to segment, no labels) and 'annotated' (an
    extra labelled training set, e.g. the paper's annotated DDPM samples). Atomic."""
    _check_non_square_mode(non_square)
    labelled = FOLDER_KINDS[kind]
    folder = pathlib.Path(folder)
    items = list_folder(folder, labelled=labelled, what=f"{kind}.{name}")
    what = "annotated images (NAME.jpg/png + NAME.npy)" if labelled else "images to segment"
    problems = [] if items else [f"{folder}: holds no images ({', '.join(IMAGE_SUFFIXES)}). Put the {what} "
                                 f"there, or fix the path in the config's `{kind}.{name}`."]
    problems += _structure_problems(folder, items, labelled=labelled)
    meta = {"num_classes": len(classes), "ignore_label": ignore_label}
    with ThreadPoolExecutor(_VALIDATION_THREADS) as pool:
        for item_problems in pool.map(lambda item: _check_item(item[1], item[2], labelled, non_square, meta), items):
            problems.extend(item_problems)
    if problems:
        raise _problems_error(folder, problems)

    def write(group: zarr.Group) -> None:
        images = _create_images(group, len(items), image_size)
        labels = _create_labels(group, len(items), image_size) if labelled else None
        originals = group.create_group(ORIGINAL_LABELS) if labelled else None
        sizes = []
        for i, (_, image_path, label_path) in enumerate(items):
            rgb = read_rgb(image_path)
            sizes.append(list(rgb.shape[:2]))
            images[i] = fit_image(rgb, image_size, non_square, resize, image_path)
            if labelled:
                label = read_label(label_path)
                labels[i] = fit_label(label, image_size, ignore_label, non_square, resize, label_path)
                write_original_label(originals, i, label)
        group.attrs.update({"split": f"{kind}-{name}", "image_ids": [image_id for image_id, _, _ in items],
                            "classes": list(classes), "ignore_label": ignore_label, "image_size": image_size,
                            "source": str(folder), "non_square": non_square, "resize": resize,
                            "original_sizes": sizes,
                            "files": [image_path.relative_to(folder).as_posix() for _, image_path, _ in items]})

    _write_group_atomically(out_path, write)


def write_empty_split(out_path, image_size: int) -> None:
    """Write an unlabeled group with no images at ``out_path`` (when a pretrained checkpoint makes it unneeded).

    images: (0, S, S, 3) uint8 with the same chunks and dimension_names as `prepare_split`;
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
    Written atomically, as `prepare_split`."""
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


def _create_images(group: zarr.Group, n: int, image_size: int) -> zarr.Array:
    """The (n, S, S, 3) uint8 'images' array of a split group, one chunk per image."""
    return group.create_array("images", shape=(n, image_size, image_size, 3), chunks=(1, image_size, image_size, 3),
                              dtype="uint8", dimension_names=("image", "y", "x", "rgb"))


def _create_labels(group: zarr.Group, n: int, image_size: int) -> zarr.Array:
    """The (n, S, S) uint8 'labels' array of a labelled split group, one chunk per image."""
    return group.create_array("labels", shape=(n, image_size, image_size), chunks=(1, image_size, image_size),
                              dtype="uint8", dimension_names=("image", "y", "x"))


ORIGINAL_LABELS = "original_labels"  # a labelled split's group of labels at each image's own size


def write_original_label(group: zarr.Group, i: int, label: np.ndarray) -> None:
    """Image i's (H, W) uint8 label at its own size, as the array ``str(i)`` of ``group`` (one chunk)."""
    group.create_array(str(i), data=np.ascontiguousarray(label, dtype=np.uint8), chunks=label.shape,
                       dimension_names=("y", "x"))


def read_original_labels(split_path) -> list:
    """The labels at each image's own size of a prepared split: [(H_i, W_i) uint8], in image order;
    DatasetError naming the split if it has none (prepared before they were kept: prepare it again)."""
    split = zarr.open_group(str(split_path), mode="r")
    if ORIGINAL_LABELS not in split:
        raise DatasetError(f"{split_path}: has no {ORIGINAL_LABELS} (labels at each image's own size). Delete it "
                           "and run the workflow again so that it is prepared anew.")
    group = split[ORIGINAL_LABELS]
    return [group[str(i)][:] for i in range(len(split.attrs["image_ids"]))]


def _write_group_atomically(out_path, write) -> None:
    """Call ``write(group)`` on a new Zarr group in a temporary sibling of ``out_path``, then rename it there."""
    with folder_written_atomically(out_path) as tmp:
        write(zarr.open_group(tmp, mode="w"))
