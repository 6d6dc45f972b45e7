"""Pixel features: UNet decoder activations, and the hand-made controls, into Zarr stores.

Every feature set is a list of Zarr arrays of shape (image, channel, y, x), float16, one
image per chunk, at the resolution where it was computed (never upsampled). The ensemble
reads them at label resolution on the fly: `sample_pixel_features` gives the bilinearly
upsampled features of chosen pixels only, equal to upsampling the whole map as the paper's
code does (F.interpolate, align_corners=False) and then picking those pixels.

Decoder features follow the paper's code (Sec. 3.2 and its `feature_extractors.py`): the
image scaled to [-1, 1] is noised with x_t = q_sample(x0, t, noise), one noise tensor of
shape (1, 3, S, S) drawn from a generator seeded with `noise_seed` on `noise_device` (the
paper's code draws it on the run's device: a CUDA generator on a GPU) and shared by every
timestep and image; the noise predictor is called with the unscaled t and the outputs of
`model.output_blocks[b]` are kept. Our forward pass stops after the deepest requested block.
"""

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import zarr
from guided_diffusion.nn import timestep_embedding
from tqdm import tqdm

from ddpmseg.errors import UserError


DIMENSION_NAMES = ("image", "channel", "y", "x")
STORE_ARRAY = "features"  # the array of a feature store's Zarr group


def store_name(block: int, timestep: int) -> str:
    """File name of the store holding decoder block `block` at diffusion step `timestep`."""
    return f"features_b{block}_t{timestep}.zarr"


def pick_device() -> str:
    """'cuda' when a GPU is visible, else 'cpu'."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def images_to_model_input(images: np.ndarray) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float32 in [-1, 1], contiguous (channels-first in
    memory, as torchvision's ToTensor gives the paper's code: a channels-last view would make
    the convolutions pick other kernels and other roundings). u / 127.5 - 1 equals the paper's
    2 * (u / 255) - 1 bit for bit for every uint8 u."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().float() / 127.5 - 1.0


def shared_noise(image_size: int, seed: int, device: str = "cpu") -> torch.Tensor:
    """The paper's `share_noise`: (1, 3, S, S) standard normal from a generator on `device`
    ('cpu' or 'cuda': their generators give different numbers from one seed) seeded with `seed`.
    Raises a UserError for 'cuda' where no GPU is visible."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"features.noise_device is {device!r}, but this job sees no GPU: run it on a GPU, or set "
                        "noise_device: cpu (other noise, so other features than the paper's GPU runs)")
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(1, 3, image_size, image_size, generator=generator, device=device)


@torch.no_grad()
def decoder_activations(model, x: torch.Tensor, timesteps: torch.Tensor, blocks) -> dict:
    """Outputs of `model.output_blocks[b]` for b in `blocks`, as float32 tensors.

    x: (B, 3, S, S) noised input; timesteps: (B,) int64. Returns {b: (B, C_b, H_b, W_b)}.
    The forward pass runs the encoder, the middle block and the decoder only up to
    max(blocks); the final output layer is never computed.
    """
    deepest = max(blocks)
    if deepest >= len(model.output_blocks):
        raise ValueError(f"block {deepest} requested, the model has {len(model.output_blocks)} decoder blocks")
    emb = model.time_embed(timestep_embedding(timesteps, model.model_channels))
    h = x.type(model.dtype)
    skips = []
    for module in model.input_blocks:
        h = module(h, emb)
        skips.append(h)
    h = model.middle_block(h, emb)
    activations = {}
    for index, module in enumerate(model.output_blocks[: deepest + 1]):
        h = module(torch.cat([h, skips.pop()], dim=1), emb)
        if index in blocks:
            activations[index] = h.float()
    return activations


def decoder_block_shapes(model, image_size: int) -> dict:
    """{block: (channels, height, width)} for every decoder block, from one probe pass."""
    device = next(model.parameters()).device
    x = torch.zeros(1, 3, image_size, image_size, device=device)
    t = torch.zeros(1, dtype=torch.long, device=device)
    blocks = range(len(model.output_blocks))
    return {b: tuple(a.shape[1:]) for b, a in decoder_activations(model, x, t, blocks).items()}


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


def extract_decoder_features(
    model,
    diffusion,
    images: np.ndarray,
    image_ids: list,
    blocks,
    timesteps,
    noise_seed: int,
    out_dir,
    attrs: dict,
    batch_images: int = 1,
    noise_device: str = "cpu",
) -> list:
    """Writes one store per (block, timestep) under out_dir; returns their paths.

    images: (N, S, S, 3) uint8. The timesteps of `batch_images` images run as one batch of
    batch_images * len(timesteps) forward passes. Store `features_b{b}_t{t}.zarr` holds
    (N, C_b, H_b, W_b) float16 at the block's native resolution, with attrs naming the
    block, timestep, noise seed, image ids and `attrs` (model identity etc.).
    """
    blocks, timesteps = sorted(set(blocks)), sorted(set(timesteps))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    size = images.shape[1]
    noise = shared_noise(size, noise_seed, noise_device).to(device)

    def create(b, t, shape):
        return create_store(out_dir / store_name(b, t), (len(images), *shape), {
            **attrs,
            "block": b,
            "timestep": t,
            "noise_seed": noise_seed,
            "noise_device": noise_device,
            "image_ids": list(image_ids),
            "image_size": size,
            "stored_dtype": "float16",
            "description": f"output of model.output_blocks[{b}] on q_sample(x0, t={t}, shared noise)",
        })

    stores = {}  # created with the first batch's shapes
    if len(images) == 0:
        shapes = decoder_block_shapes(model, size)
        stores = {(b, t): create(b, t, shapes[b]) for b in blocks for t in timesteps}
    t_batch = torch.tensor(timesteps, dtype=torch.long, device=device)
    for start in tqdm(range(0, len(images), batch_images), desc="extract", unit="batch", mininterval=5):
        x0 = images_to_model_input(images[start : start + batch_images]).to(device)
        n = len(x0)
        x0_rep = x0.repeat_interleave(len(timesteps), dim=0)  # image-major, timestep-minor
        t_rep = t_batch.repeat(n)
        x_t = diffusion.q_sample(x0_rep, t_rep, noise=noise.expand_as(x0_rep))
        activations = decoder_activations(model, x_t, t_rep, blocks)
        for b, act in activations.items():
            act = act.reshape(n, len(timesteps), *act.shape[1:]).cpu().numpy().astype(np.float16)
            for k, t in enumerate(timesteps):
                if (b, t) not in stores:
                    stores[b, t] = create(b, t, act.shape[2:])
                stores[b, t][start : start + n] = act[:, k]
    return [out_dir / store_name(b, t) for b in blocks for t in timesteps]


def control_features(images: np.ndarray, kind: str) -> np.ndarray:
    """Hand-made pixel features, (N, C, S, S) float32.

    kind 'pixels': RGB in [-1, 1] plus x, y in [-1, 1] (C = 5).
    kind 'patch': the 5x5 RGB neighbourhood (reflect-padded) plus x, y (C = 77).
    """
    x = images_to_model_input(images)
    n, _, size, _ = x.shape
    coords = torch.linspace(-1.0, 1.0, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    xy = torch.stack([xx, yy]).expand(n, 2, size, size)
    if kind == "pixels":
        colour = x
    elif kind == "patch":
        padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
        colour = F.unfold(padded, kernel_size=5).reshape(n, 75, size, size)
    else:
        raise ValueError(f"unknown control feature kind {kind!r}")
    return torch.cat([colour, xy], dim=1).numpy()


def write_control_features(images: np.ndarray, image_ids: list, kind: str, path, attrs: dict) -> None:
    """One store (N, C, S, S) float16 of `control_features(images, kind)`."""
    features = control_features(images, kind)
    store = create_store(
        path,
        features.shape,
        {**attrs, "kind": kind, "image_ids": list(image_ids), "image_size": images.shape[1], "stored_dtype": "float16"},
    )
    store[:] = features.astype(np.float16)


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
