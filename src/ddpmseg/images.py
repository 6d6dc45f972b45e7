"""Opening images as they are shown: the one place the workflow reads a photo.

`IMAGE_SUFFIXES` says which files every reader (the paper's layout, the annotation formats, the
`ddpmseg` command) takes for images.

A JPEG (or TIFF, PNG, WebP) may store its pixels in one orientation and carry an EXIF tag
(0x0112, values 1-8) saying how to turn them for display: phones save portrait photos as
landscape pixels with orientation 6. Every viewer and annotation tool shows the turned image, so
masks are drawn on it. `open_image` applies the tag (Pillow's `ImageOps.exif_transpose`), and
every reader and writer of the workflow goes through it (`read_rgb`, `shown_size`), so images,
masks, predictions and overlays are all in the shown orientation. `write_upright` writes an image
the workflow hands back to a tool (label_next's batch, exports) upright and without the tag, so
that a round trip through an annotation tool is stable.
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
from PIL import Image, ImageOps

from ddpmseg.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # compared lower-cased
ORIENTATION_TAG = 0x0112  # EXIF's Orientation
ROTATED = (5, 6, 7, 8)  # orientations that swap width and height
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})  # Pillow modes with an alpha channel


def unreadable(path, exc: Exception) -> DatasetError:
    """The one-line error of an image file Pillow cannot read."""
    return DatasetError(f"{path}: cannot be read as an image ({type(exc).__name__}: {exc}). "
                        "Replace it with a valid PNG or JPEG file, or remove it.")


def orientation(im: Image.Image) -> int:
    """The EXIF orientation (1-8) of an open image; 1 (as stored) when it has none or a bad value."""
    try:
        value = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block: Pillow shows such an image as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def open_image(path) -> Image.Image:
    """The image at ``path``, loaded and turned as its EXIF orientation says (a new image, the
    file closed; ``info['orientation']`` keeps the tag it had, 1 for none). DatasetError naming
    the file and Pillow's error when it cannot be read."""
    try:
        with Image.open(path) as im:
            tag = orientation(im)
            im.load()
            shown = ImageOps.exif_transpose(im) if tag != 1 else im.copy()
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...) for bad files
        raise unreadable(path, exc) from exc
    shown.info["orientation"] = tag
    return shown


def shown_size(path) -> tuple[int, int, int]:
    """(width, height, orientation) of the image at ``path`` as it is shown, from its header
    alone; DatasetError naming the file when it cannot be read."""
    try:
        with Image.open(path) as im:
            tag = orientation(im)
            width, height = im.size
    except Exception as exc:
        raise unreadable(path, exc) from exc
    return (height, width, tag) if tag in ROTATED else (width, height, tag)


def read_rgb(path) -> np.ndarray:
    """The image at ``path`` as shown, as an (H, W, 3) uint8 RGB array at its own size;
    DatasetError naming the file when unreadable."""
    with open_image(path) as im:
        return np.asarray(im.convert("RGB"))


def has_alpha(path) -> bool:
    """Whether the image file has an alpha channel (or a transparent palette entry), which
    `read_rgb` drops: the model sees the colour under transparent pixels."""
    with Image.open(path) as im:
        return im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)


def write_upright(source, target) -> None:
    """Put the image at ``source`` at ``target`` as it is shown: the file's bytes where it carries
    no turning orientation, else its pixels turned and saved in its own format (JPEG at quality
    95) with the orientation tag removed and its other metadata kept."""
    source, target = pathlib.Path(source), pathlib.Path(target)
    with Image.open(source) as im:
        tag, fmt = orientation(im), im.format
    if tag == 1:
        shutil.copy2(source, target)
        return
    upright = open_image(source)
    exif = upright.getexif()
    exif.pop(ORIENTATION_TAG, None)  # exif_transpose drops it; kept out whatever Pillow version
    options = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
    upright.save(target, format=fmt, exif=exif.tobytes(), **options)


def turned_mask_problem(mask_size: tuple, shown: tuple, tag: int, mask_name: str, image_name: str) -> str | None:
    """Why a mask of ``mask_size`` (width, height) does not fit an image shown at ``shown``
    (width, height) with orientation ``tag``, when it fits the stored pixels instead (a rotating
    tag on a non-square photo): the one-line problem, else None."""
    if tag in ROTATED and tuple(mask_size) == (shown[1], shown[0]) and shown[0] != shown[1]:
        return (f"{mask_name}: mask is {mask_size[0]}x{mask_size[1]} (width x height), the stored pixels of "
                f"{image_name}, which is shown {shown[0]}x{shown[1]} (EXIF orientation {tag}: turned for display). "
                "Draw the mask on the photo as it is shown (as annotation tools do), or save the photo upright "
                "without the orientation tag.")
    return None
