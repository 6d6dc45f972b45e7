"""Pixel features of any source (`ddpmseg.backbones`) into Zarr stores, and reading them back.

Every feature set is a list of Zarr arrays of shape (image, channel, y, x), float16, one
image per chunk, at the resolution where it was computed (never upsampled), one store per
(layer, timestep) of a source (`backbones.store_name`). The ensemble reads them at label
resolution on the fly: `sample_pixel_features` gives the bilinearly upsampled features of
chosen pixels only, equal to upsampling the whole map as the paper's code does
(F.interpolate, align_corners=False) and then picking those pixels.

Sources that take diffusion steps get the paper's shared noise by default: one tensor of shape
(1, 3, S, S) drawn from a generator seeded with `noise_seed` on `noise_device` (the paper's
code draws it on the run's device: a CUDA generator on a GPU), shared by every timestep and
image. Table 5's variants (`NOISE_MODES`) draw one tensor per timestep, or one per (image,
timestep), each from a generator seeded with a hash of (noise_seed, t) or (noise_seed, image
index, t): the same for an image whatever the batching or the other timesteps extracted.
"""

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import zarr
from tqdm import tqdm

from ddpmseg import backbones
from ddpmseg.errors import UserError


DIMENSION_NAMES = ("image", "channel", "y", "x")
STORE_ARRAY = "features"  # the array of a feature store's Zarr group
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])


def pick_device() -> str:
    """'cuda' when a GPU is visible, else 'cpu'."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def images_to_model_input(images: np.ndarray) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float32 in [-1, 1], contiguous (channels-first in
    memory, as torchvision's ToTensor gives the paper's code: a channels-last view would make
    the convolutions pick other kernels and other roundings). u / 127.5 - 1 equals the paper's
    2 * (u / 255) - 1 bit for bit for every uint8 u."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().float() / 127.5 - 1.0


def shared_noise(image_size: int, seed: int, device: str = "cpu", shape=None) -> torch.Tensor:
    """The paper's `share_noise`: (1, 3, S, S) standard normal from a generator on `device`
    ('cpu' or 'cuda': their generators give different numbers from one seed) seeded with `seed`;
    (1, *shape) for a source whose noise is not image-shaped (`noise_shape`: a latent).
    Raises a UserError for 'cuda' where no GPU is visible."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"features.noise_device is {device!r}, but this job sees no GPU: run it on a GPU, or set "
                        "noise_device: cpu (other noise, so other features than the paper's GPU runs)")
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(1, *(shape or (3, image_size, image_size)), generator=generator, device=device)


NOISE_MODES = ("shared", "per_timestep", "per_image")


def _seeded_noise(image_size: int, entropy: list, device: str, shape=None) -> torch.Tensor:
    """(1, 3, S, S) (or (1, *shape)) standard normal from a generator on `device` seeded from `entropy` (ints)."""
    seed = int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)
    return shared_noise(image_size, seed, device, shape)


def batch_noise(mode: str, image_size: int, seed: int, device: str, images, timesteps, shape=None) -> torch.Tensor:
    """The noise of one forward batch: `shared_noise` (1, 3, S, S) for mode "shared"; else
    (len(images) * len(timesteps), 3, S, S), image-major and timestep-minor, one tensor per
    timestep ("per_timestep", the same for every image) or per (image, timestep) ("per_image";
    images: the batch's indices in the split). `shape` (C, h, w) replaces (3, S, S)."""
    if mode == "shared":
        return shared_noise(image_size, seed, device, shape)
    if mode == "per_timestep":
        return torch.cat([_seeded_noise(image_size, [seed, t], device, shape) for _ in images for t in timesteps])
    if mode == "per_image":
        return torch.cat([_seeded_noise(image_size, [seed, int(i), t], device, shape) for i in images
                          for t in timesteps])
    raise ValueError(f"unknown noise mode {mode!r}; one of {NOISE_MODES}")


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


def model_input(images: np.ndarray, normalisation: str) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float32, contiguous, as a source's NORMALISATION says:
    "[-1, 1]" (`images_to_model_input`) or "imagenet" (u / 255, then minus the ImageNet mean and
    over its std per channel, as torchvision's ToTensor and Normalize)."""
    if normalisation == "[-1, 1]":
        return images_to_model_input(images)
    if normalisation != "imagenet":
        raise ValueError(f"unknown normalisation {normalisation!r}")
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().float() / 255.0
    return x.sub_(IMAGENET_MEAN.view(1, 3, 1, 1)).div_(IMAGENET_STD.view(1, 3, 1, 1))


def build_method_model(plan: dict, image_size: int, checkpoint, device: str, model_seed: int) -> tuple:
    """The model of a method (`ddpmseg.methods.plan`), its source's layer table {layer: (channels,
    resolution)} and the identity its stores' attrs carry (method, settings, model seed, the
    checkpoint and its sha256, an ADM's full flags, which a checkpoint gives once read)."""
    from ddpmseg.download import sha256_of

    source, settings = backbones.source(plan["source"]), plan["settings"]
    model = source.build(settings, image_size, checkpoint, device, model_seed)
    identity = {"method": plan["key"], "method_name": plan["name"], "model_seed": model_seed,
                "settings": {k: v for k, v in settings.items() if k not in ("blocks", "flags")}}
    if checkpoint is not None:
        identity.update(checkpoint=str(checkpoint), checkpoint_sha256=sha256_of(checkpoint))
    if plan["source"] == "adm":
        settings = {**settings, "flags": model.flags}
        identity["model_flags"] = model.flags
    return model, source.layer_table(settings, image_size), identity


def extract_features(
    source_name: str,
    model,
    images: np.ndarray,
    image_ids: list,
    layers,
    timesteps,
    table: dict,
    out_dir,
    attrs: dict,
    *,
    noise_seed: int = 0,
    noise_device: str = "cpu",
    noise_mode: str = "shared",
    batch_images: int = 1,
    device: str = "cpu",
    precision: str = "float32",
) -> list:
    """Writes one store per (layer, timestep) of source `source_name` under out_dir; returns
    their paths, layer-major.

    model: the source's `build`; images: (N, S, S, 3) uint8; layers: names from the source's
    layer table; timesteps: ints for a source that takes them, else None; table: the source's
    `layer_table` {layer: (channels, resolution)}, which every batch's maps must match. Store
    `features_<layer>[_t<t>].zarr` holds (N, C, h, h) float16, with attrs naming the source,
    layer, timestep, normalisation, image ids and `attrs` (model identity etc.); with
    timesteps, the noise seed, device and mode (`batch_noise`) too. The timesteps of
    `batch_images` images run as one forward batch, in `precision` (`ddpmseg.precision`: on a
    CPU, bf16 runs the forward under autocast; the attrs record what was used).
    """
    from ddpmseg.precision import cpu_autocast, resolve

    used_precision = resolve(precision, device)
    source = backbones.source(source_name)
    layers = list(dict.fromkeys(layers))
    steps = sorted(set(timesteps)) if source.TAKES_TIMESTEPS else [None]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = images.shape[1]
    stores = {}
    for layer in layers:
        channels, resolution = table[layer]
        for t in steps:
            described = {"source": source_name, "layer": layer, "timestep": t, "channels": channels,
                         "resolution": resolution, "normalisation": source.NORMALISATION,
                         "precision": used_precision}
            if t is not None:
                described.update(noise_seed=noise_seed, noise_device=noise_device, noise_mode=noise_mode)
            stores[layer, t] = create_store(out_dir / backbones.store_name(layer, t),
                                            (len(images), channels, resolution, resolution), {
                **attrs, **described, "image_ids": list(image_ids), "image_size": size, "stored_dtype": "float16"})
    noise, noise_shape = None, source.noise_shape(model, size) if hasattr(source, "noise_shape") else None
    for start in tqdm(range(0, len(images), batch_images), desc="extract", unit="batch", mininterval=5):
        x = model_input(images[start : start + batch_images], source.NORMALISATION).to(device)
        if steps != [None] and (noise_mode != "shared" or start == 0):  # the shared tensor is drawn once
            noise = batch_noise(noise_mode, size, noise_seed, noise_device, range(start, start + len(x)), steps,
                                noise_shape).to(device)
        with cpu_autocast(used_precision):
            maps = source.activations(model, x, layers, None if steps == [None] else steps, noise)
        for (layer, t), store in stores.items():
            fmap = maps[layer, t]
            if fmap.shape[1:] != store.shape[1:]:
                raise RuntimeError(f"{source_name} layer {layer}: maps of shape {tuple(fmap.shape[1:])}, its layer "
                                   f"table says {store.shape[1:]}")
            store[start : start + len(x)] = fmap.cpu().numpy().astype(np.float16)
    return [out_dir / backbones.store_name(layer, t) for layer in layers for t in steps]


def extract_cells(source_name: str, model, images: np.ndarray, image_ids: list, cells, table: dict, out_dir,
                  attrs: dict, **options) -> list:
    """`extract_features` of the (layer, timestep) `cells` of an ensemble (features.json's
    order), one call per distinct set of layers over the timesteps that share it; returns the
    store paths in the cells' order. `options`: extract_features' keyword arguments."""
    layers_at = {}  # timestep -> layers
    for layer, t in cells:
        layers_at.setdefault(t, []).append(layer)
    calls = {}
    for t, layers in layers_at.items():
        calls.setdefault(tuple(layers), []).append(t)
    for layers, steps in calls.items():
        extract_features(source_name, model, images, image_ids, layers, None if steps == [None] else steps, table,
                         out_dir, attrs, **options)
    return [Path(out_dir) / backbones.store_name(layer, t) for layer, t in cells]


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
