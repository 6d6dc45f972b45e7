"""Images and labels brought to the model's square: ``image_size`` x ``image_size`` pixels.

A non-square image is refused ('error'), centre-padded ('pad': edge pixels for an image, the
ignore label for its label) or centre-cropped ('crop') to a square (`square_box` says where the
image lies in it), then resized: images with LANCZOS, labels with PIL's NEAREST ('lanczos'), or
as the paper's code does ('paper': torchvision's Resize on a PIL image, i.e. PIL BILINEAR, and
OpenCV's INTER_NEAREST for labels).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ddpmseg.errors import DatasetError

NON_SQUARE_MODES = ("error", "pad", "crop")
RESIZE_MODES = ("lanczos", "paper")


def check_non_square_mode(non_square: str) -> None:
    """ValueError unless ``non_square`` is one of `NON_SQUARE_MODES`."""
    if non_square not in NON_SQUARE_MODES:
        raise ValueError(f"non_square must be one of {', '.join(NON_SQUARE_MODES)}; got {non_square!r}")


def non_square_problem(path, width: int, height: int) -> str:
    """The one-line problem of a non-square image under `non_square: error`."""
    return (f"{path}: image is {width}x{height} (width x height), not square. Set the dataset's "
            "`non_square: pad` (centre-pad; label padding gets the ignore label) or `non_square: crop` "
            "(centre crop) in the config, or make the images square.")


def _make_square(array: np.ndarray, path, non_square: str, **pad_kwargs) -> np.ndarray:
    """Centre-pad (np.pad with ``pad_kwargs``) or centre-crop ``array`` (H, W[, C]) to a square.

    Square input comes back unchanged; non-square input with ``non_square='error'``
    raises DatasetError.
    """
    height, width = array.shape[:2]
    if height == width:
        return array
    if non_square == "error":
        raise DatasetError(non_square_problem(path, width, height))
    top, left, side = square_box(height, width, non_square)
    if non_square == "crop":
        return array[top:top + side, left:left + side]
    pad = [(top, side - height - top), (left, side - width - left)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, pad, **pad_kwargs)


def opencv_nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source index of each output position of OpenCV's INTER_NEAREST resize along one axis:
    min(floor(x * (1 / (out / in))), in - 1), in float64 as OpenCV computes it (no half-pixel
    offset, unlike PIL's NEAREST, which samples pixel centres)."""
    inverse_scale = 1.0 / (out_size / in_size)
    return np.minimum(np.floor(np.arange(out_size) * inverse_scale).astype(np.int64), in_size - 1)


def fit_image(rgb: np.ndarray, image_size: int, non_square: str = "error", resize: str = "lanczos",
              path="image") -> np.ndarray:
    """An (H, W, 3) uint8 image brought to (image_size, image_size, 3) uint8.

    Non-square images: 'error' raises DatasetError (naming ``path``), 'pad' centre-pads to a
    square by edge replication, 'crop' takes the centre square (`square_box` says where the
    image lies). Resized with LANCZOS, or with PIL's BILINEAR for ``resize='paper'`` (what
    torchvision's Resize does to a PIL image).
    """
    check_non_square_mode(non_square)
    square = _make_square(rgb, path, non_square, mode="edge")
    if square.shape[0] != image_size:
        method = Image.Resampling.BILINEAR if resize == "paper" else Image.Resampling.LANCZOS
        square = np.asarray(Image.fromarray(square).resize((image_size, image_size), method))
    return np.ascontiguousarray(square, dtype=np.uint8)


def fit_label(label: np.ndarray, image_size: int, ignore_label: int, non_square: str = "error",
              resize: str = "lanczos", path="label") -> np.ndarray:
    """An (H, W) uint8 label brought to (image_size, image_size) uint8 with `fit_image`'s geometry
    ('pad' fills with ``ignore_label``), resized with PIL's NEAREST, or OpenCV's INTER_NEAREST for
    ``resize='paper'``, so only values present in it appear."""
    check_non_square_mode(non_square)
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


def square_shift(height: int, width: int, non_square: str) -> tuple[int, int, int]:
    """(dy, dx, side): an original pixel (y, x) of a ``height`` x ``width`` image is the pixel
    (y + dy, x + dx) of the square `fit_image` makes of it before resizing (`square_box`); for
    'crop', pixels that land outside 0..side-1 were cut off."""
    top, left, side = square_box(height, width, non_square)
    return (top, left, side) if non_square != "crop" else (-top, -left, side)
