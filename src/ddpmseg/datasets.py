"""Image files with their labels beside them (NAME.jpg + NAME.npy, as the paper's code names
them): the paper's layout (`ddpmseg.formats.paper`) and the folders a config names
(`prepare_folder`: images to segment, annotated training sets).

A label is an (H, W) integer array of the image's shown size, saved with np.save; its values are
class ids 0..K-1 or the ignore label. `check_item` (`check_items`: many, in threads) lists what is
wrong with an image and its label, `structure_problems` what is wrong with a folder of them
(same-named images, labels without an image), one line per problem naming the file and what to
do; `problems_error` gathers them in one `DatasetError`, so that every file is checked before any
work starts. `load_image` / `load_label` bring an image / label file to the model's square
(`ddpmseg.resizing`).
"""

from __future__ import annotations

import pathlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ddpmseg.errors import DatasetError
from ddpmseg.folders import list_folder, walk_files
from ddpmseg.images import IMAGE_SUFFIXES, open_image, read_rgb, turned_mask_problem
from ddpmseg.resizing import check_non_square_mode, fit_image, fit_label, non_square_problem
from ddpmseg.splits import write_split

# Pillow modes whose conversion to 8-bit RGB keeps the picture. 16-bit and float
# modes ("I;16", "I", "F") would be clipped to 0..255 and come out wrong.
_RGB_CONVERTIBLE_MODES = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
)
_MAX_LISTED_VALUES = 20
_VALIDATION_THREADS = 8


def problems_error(root: pathlib.Path, problems: list[str]) -> DatasetError:
    """One DatasetError whose message lists ``problems`` (each once) under a header naming the dataset."""
    problems = list(dict.fromkeys(problems))  # an image both unreadable and annotated is found twice
    header = f"Dataset {root} has {len(problems)} problem{'s' if len(problems) != 1 else ''}:"
    return DatasetError("\n".join([header] + [f"  {p}" for p in problems]), problems)


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


def load_image(path, image_size: int, non_square: str = "error", resize: str = "lanczos") -> np.ndarray:
    """Image at ``path`` as an (image_size, image_size, 3) uint8 RGB array (`read_rgb`, then `fit_image`)."""
    return fit_image(read_rgb(path), image_size, non_square, resize, path)


def load_label(path, image_size: int, ignore_label: int, non_square: str = "error",
               resize: str = "lanczos") -> np.ndarray:
    """Label (.npy) at ``path`` as an (image_size, image_size) uint8 array (`read_label`, then `fit_label`)."""
    return fit_label(read_label(path), image_size, ignore_label, non_square, resize, path)


def _format_values(values: np.ndarray) -> str:
    shown = [int(v) for v in values[:_MAX_LISTED_VALUES]]
    more = f" and {len(values) - _MAX_LISTED_VALUES} more" if len(values) > _MAX_LISTED_VALUES else ""
    return f"{shown}{more}"


def check_item(image_path: pathlib.Path, label_path: pathlib.Path | None, labelled: bool,
               non_square: str, meta: dict | None) -> list[str]:
    """Problems of one (image, label) pair, one line each; reads the image header and pixels and the
    whole label. ``labelled``: a label must be there; ``meta`` ({'num_classes', 'ignore_label'}, or
    None: not checked) bounds its values."""
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
        problems.append(non_square_problem(image_path, *size))
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


def check_items(jobs: list, non_square: str, meta: dict | None) -> list[str]:
    """`check_item`'s problems of every (image_path, label_path, labelled) in ``jobs``, in order
    (checked in threads)."""
    problems = []
    with ThreadPoolExecutor(_VALIDATION_THREADS) as pool:
        for item_problems in pool.map(lambda job: check_item(*job, non_square, meta), jobs):
            problems.extend(item_problems)
    return problems


def structure_problems(folder: pathlib.Path, items: list, labelled: bool) -> list[str]:
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
        files = walk_files(folder)
        image_stems = {f.with_suffix("") for f in files if f.suffix.lower() in IMAGE_SUFFIXES}
        for rel in sorted((f for f in files if f.suffix == ".npy"), key=str):
            if rel.with_suffix("") not in image_stems:
                problems.append(f"{folder / rel}: label has no image next to it (expected {rel.stem}"
                                f"{', '.join(IMAGE_SUFFIXES[:-1])} or {IMAGE_SUFFIXES[-1]}). Add the image in one "
                                "of those formats or remove the label.")
    return problems


FOLDER_KINDS = {"segment": False, "annotated": True}  # a prepared folder's kind -> whether it has labels


def prepare_folder(folder, out_path, image_size: int, name: str, classes: list, ignore_label: int,
                   non_square: str = "error", resize: str = "lanczos", kind: str = "segment") -> None:
    """Validate every image below ``folder`` (unreadable, non-square under 'error' and same-named
    images, and for an 'annotated' folder missing, misshapen or out-of-range NAME.npy labels, are
    listed in one DatasetError naming the config key ``<kind>.<name>``), then write them as a
    split group at ``out_path`` (`ddpmseg.splits.write_split`) with split "<kind>-<name>" and the
    dataset's ``classes`` and ``ignore_label``. Kinds: 'segment' (images to segment, no labels)
    and 'annotated' (an extra labelled training set, e.g. the paper's annotated DDPM samples)."""
    check_non_square_mode(non_square)
    labelled = FOLDER_KINDS[kind]
    folder = pathlib.Path(folder)
    items = list_folder(folder, labelled=labelled, what=f"{kind}.{name}")
    what = "annotated images (NAME.jpg/png + NAME.npy)" if labelled else "images to segment"
    problems = [] if items else [f"{folder}: holds no images ({', '.join(IMAGE_SUFFIXES)}). Put the {what} "
                                 f"there, or fix the path in the config's `{kind}.{name}`."]
    problems += structure_problems(folder, items, labelled=labelled)
    meta = {"num_classes": len(classes), "ignore_label": ignore_label}
    problems += check_items([(image_path, label_path, labelled) for _, image_path, label_path in items],
                            non_square, meta)
    if problems:
        raise problems_error(folder, problems)
    label_of = (lambda i: read_label(items[i][2])) if labelled else None
    write_split(out_path, f"{kind}-{name}", items, label_of, folder, classes, ignore_label, image_size, non_square,
                resize)
