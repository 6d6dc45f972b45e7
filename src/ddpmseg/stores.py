"""Feature stores: one Zarr group per (layer, timestep) of a source, and reading them back.

Every feature set is a list of Zarr arrays of shape (image, channel, y, x), float16, one
image per chunk, at the resolution where it was computed (never upsampled), one store per
(layer, timestep) of a source (`backbones.store_name`). The ensemble reads them at label
resolution on the fly: `sample_pixel_features` gives the bilinearly upsampled features of
chosen pixels only, equal to upsampling the whole map as the paper's code does
(F.interpolate, align_corners=False) and then picking those pixels.
"""

import warnings
from functools import lru_cache

import numpy as np
import torch
import zarr

DIMENSION_NAMES = ("image", "channel", "y", "x")
STORE_ARRAY = "features"  # the array of a feature store's Zarr group


def create_store(path, shape, attrs: dict) -> zarr.Array:
    """An empty float16 (image, channel, y, x) array, one image per chunk, as the array
    `features` of a Zarr v3 group at `path` with consolidated metadata, so that zarr
    (`open_store`), xarray (`xr.open_zarr(path)`) and dask (`da.from_zarr(path,
    component="features")`) all open it; `attrs` describe it (on the array)."""
    group = zarr.open_group(str(path), mode="w")
    array = group.create_array(
        STORE_ARRAY, shape=shape, chunks=(1, *shape[1:]), dtype="float16", dimension_names=DIMENSION_NAMES,
    )
    array.attrs.update(attrs)
    with warnings.catch_warnings():  # "not part of the Zarr v3 specification": xarray reads it all the same
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(str(path))
    return array


def open_store(path) -> zarr.Array:
    """The read-only (image, channel, y, x) feature array of the store at `path`."""
    return zarr.open_group(str(path), mode="r")[STORE_ARRAY]


def open_stores(paths) -> list:
    """Read-only feature arrays (`open_store`) for the given store paths."""
    return [open_store(p) for p in paths]


@lru_cache(maxsize=64)
def bilinear_taps(in_size: int, out_size: int) -> tuple:
    """Where upsampling from in_size to out_size reads, as F.interpolate(bilinear, align_corners=False).

    Returns (first (out,), second (out,) int64, weight (out,) float32): output position j is
    (1 - weight[j]) * input[first[j]] + weight[j] * input[second[j]].
    """
    scale = np.float32(in_size / out_size)
    source = np.maximum((np.arange(out_size, dtype=np.float32) + 0.5) * scale - 0.5, 0)
    first = np.floor(source).astype(np.int64)
    second = np.minimum(first + 1, in_size - 1)
    return torch.from_numpy(first), torch.from_numpy(second), torch.from_numpy((source - first).astype(np.float32))


class ImageSubset:
    """A read-only view of some images of a store, read as a store: shape (len(indices), C, H, W).

    `store`: one (N, C, H, W) array, or a list of arrays of the same cell (a train and a test
    store, say) read as one, their images one after another; `indices` index into that."""

    def __init__(self, store, indices):
        self.parts = list(store) if isinstance(store, (list, tuple)) else [store]
        self.starts = np.cumsum([0] + [part.shape[0] for part in self.parts])
        self.indices = [int(i) for i in indices]
        self.shape = (len(self.indices), *self.parts[0].shape[1:])

    def __getitem__(self, i):
        index = self.indices[i]
        part = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.parts[part][index - self.starts[part]]


def native_bytes_per_image(stores) -> int:
    """Bytes of one image's float16 features over all `stores` (N, C_k, H_k, W_k)."""
    return sum(2 * int(np.prod(store.shape[1:])) for store in stores)


def native_maps(stores, index: int, device: str = "cpu") -> list:
    """One image's features from every store, each as an (H_k, W_k, C_k) float16 tensor on `device`
    (copied there from pinned memory when it is a GPU)."""
    maps = [torch.from_numpy(np.asarray(store[index])).permute(1, 2, 0).contiguous() for store in stores]
    if torch.device(device).type == "cuda":
        maps = [m.pin_memory().to(device, non_blocking=True) for m in maps]
    return maps


def sample_pixel_features(maps, pixels: torch.Tensor, size: int, out: torch.Tensor) -> None:
    """Writes the features of some pixels of one image, at label resolution, into `out`.

    maps: `native_maps` of the image; pixels: (n,) int64 flat indices y * size + x into the
    (size, size) label grid; out: (n, sum C_k) float32; all on one device, where the work
    runs. Each map is sampled bilinearly at the pixels (align_corners=False), which equals
    upsampling the whole map with F.interpolate and picking those pixels, up to float32
    rounding, at the cost of 4 reads per pixel and channel instead of a full map.
    """
    y, x = pixels // size, pixels % size
    column = 0
    for fmap in maps:
        height, width, channels = fmap.shape
        table = fmap.reshape(height * width, channels)
        target = out[:, column : column + channels]
        if (height, width) == (size, size):
            target.copy_(table[pixels])
        else:
            y0, y1, wy = (tap.to(y.device)[y] for tap in bilinear_taps(height, size))
            x0, x1, wx = (tap.to(x.device)[x] for tap in bilinear_taps(width, size))
            wx = wx.unsqueeze(1)
            top = torch.lerp(table[y0 * width + x0].float(), table[y0 * width + x1].float(), wx)
            bottom = torch.lerp(table[y1 * width + x0].float(), table[y1 * width + x1].float(), wx)
            torch.lerp(top, bottom, wy.unsqueeze(1), out=top)
            target.copy_(top)
        column += channels
