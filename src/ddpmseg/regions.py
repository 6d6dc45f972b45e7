"""Regions: every image of a prepared split cut once into connected regions, the unit a region
batch asks an annotator to label (`label_next: {unit: region}`) and the simulated loop reveals
(`experiments.active_labelling.regions`).

Methods (a dataset's `regions: {method, size}`, size in pixels at the model's size):
  slic: scikit-image's SLIC superpixels (k-means in CIELAB and position, compactness 10) with
        about (S / size)^2 segments, so a region's side is about `size`;
  grid: square cells of size x size pixels (the last row and column of cells may be narrower).
Every region is connected (4-neighbours: a segment that falls apart is split into its parts),
the padding that preparation added to a non-square image (`non_square: pad`) is in no region
(-1), and ids run 0..R-1 per image in the raster order of each region's first pixel. Nothing
random or thread-dependent goes in: a rerun cuts the same regions.

Stored beside the prepared split as results/<dataset>/data/regions/<split>.zarr: `regions`
(N, S, S) int32, chunks (1, S, S), dimension_names ("image", "y", "x"); attrs method, size,
image_ids, counts (regions per image).
"""

from __future__ import annotations

import numpy as np
import zarr
from skimage.measure import label as label_connected
from skimage.segmentation import slic

from ddpmseg.atomic import folder_written_atomically
from ddpmseg.resizing import fit_label, square_shift

METHODS = ("slic", "grid")
SLIC_COMPACTNESS = 10.0
OUTSIDE = -1  # a pixel in no region: the padding


def photo_pixels(original_size, image_size: int, non_square: str, resize: str) -> np.ndarray:
    """(S, S) bool: the pixels of a prepared image that show its photo, not the padding
    preparation added; ``original_size`` [height, width] as the split's attrs give it. The
    same geometry as the labels' padding (`fit_label`)."""
    ones = np.ones(tuple(original_size), np.uint8)
    return fit_label(ones, image_size, 0, non_square, resize) == 1


def cut(image: np.ndarray, photo: np.ndarray, method: str, size: int) -> np.ndarray:
    """One image's regions: image (S, S, 3) uint8, photo (S, S) bool (`photo_pixels`) ->
    (S, S) int32, ids 0..R-1 in raster order, -1 outside the photo; each region connected."""
    side = image.shape[0]
    if method == "slic":
        segments = slic(image, n_segments=max(1, round((side / size) ** 2)), compactness=SLIC_COMPACTNESS,
                        start_label=1, mask=photo, enforce_connectivity=True, channel_axis=-1)
    elif method == "grid":
        rows, cols = np.indices((side, side)) // size
        segments = rows * (-(-side // size)) + cols + 1
    else:
        raise ValueError(f"unknown region method {method!r}; use one of {', '.join(METHODS)}")
    segments = np.where(photo, segments, 0)
    # connected parts, numbered in raster order of their first pixel (skimage's own order)
    return (label_connected(segments, background=0, connectivity=1) - 1).astype(np.int32)


def at_original_size(regions: np.ndarray, height: int, width: int, non_square: str) -> np.ndarray:
    """(S, S) regions brought back to an image's own (H, W): each pixel takes the region of the
    model pixel its centre falls in (nearest), -1 where the model saw none of it (outside a
    'crop' square)."""
    side_model = regions.shape[0]
    *shift, side = square_shift(height, width, non_square)  # original pixel + shift = square pixel
    rows = np.floor((np.arange(height) + shift[0] + 0.5) * side_model / side).astype(int)
    cols = np.floor((np.arange(width) + shift[1] + 0.5) * side_model / side).astype(int)
    inside = (rows[:, None] >= 0) & (rows[:, None] < side_model) & (cols[None] >= 0) & (cols[None] < side_model)
    out = regions[np.clip(rows, 0, side_model - 1)[:, None], np.clip(cols, 0, side_model - 1)[None]]
    return np.where(inside, out, OUTSIDE).astype(np.int32)


def write_regions(split_path, out_path, method: str, size: int) -> None:
    """Cut every image of the prepared split at ``split_path`` and write the regions group at
    ``out_path`` (module docstring), atomically."""
    split = zarr.open_group(str(split_path), mode="r")
    images, attrs = split["images"], split.attrs
    n, side = images.shape[0], images.shape[1]
    sizes = attrs.get("original_sizes") or [[side, side]] * n
    with folder_written_atomically(out_path) as tmp:
        group = zarr.open_group(tmp, mode="w")
        regions = group.create_array("regions", shape=(n, side, side), chunks=(1, side, side), dtype="int32",
                                     dimension_names=("image", "y", "x"))
        counts = []
        for i in range(n):
            photo = photo_pixels(sizes[i], side, attrs.get("non_square", "error"), attrs.get("resize", "lanczos"))
            cells = cut(images[i], photo, method, size)
            regions[i] = cells
            counts.append(int(cells.max()) + 1)
        group.attrs.update({"method": method, "size": size, "image_ids": list(attrs["image_ids"]), "counts": counts})


def read_regions(path) -> np.ndarray:
    """(N, S, S) int32: a regions group's regions (`write_regions`)."""
    return zarr.open_group(str(path), mode="r")["regions"][:]
