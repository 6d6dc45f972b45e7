"""The extraction driver: a method's model built from its plan, and its features of a split
written into stores (`ddpmseg.stores`), one per (layer, timestep) of its source
(`ddpmseg.backbones`), fed as `ddpmseg.model_input` says."""

from pathlib import Path

import numpy as np
from tqdm import tqdm

from ddpmseg import backbones
from ddpmseg.download import sha256_of
from ddpmseg.methods import MethodPlan
from ddpmseg.model_input import batch_noise, model_input
from ddpmseg.precision import cpu_autocast, resolve
from ddpmseg.stores import create_store


def build_method_model(plan: MethodPlan, image_size: int, checkpoint, device: str, model_seed: int) -> tuple:
    """The model of a method (`ddpmseg.methods.MethodPlan`), its source's layer table {layer: (channels,
    resolution)} and the identity its stores' attrs carry (method, the source's
    `identity_settings`, model seed, the checkpoint and its sha256, and as model_<key> what the
    built model knows better than the config (`model_settings`: an ADM checkpoint's full flags,
    known once read)."""
    source, settings = backbones.source(plan.source), plan.settings
    model = source.build(settings, image_size, checkpoint, device, model_seed)
    identity = {"method": plan.key, "method_name": plan.name, "model_seed": model_seed,
                "settings": source.identity_settings(settings)}
    if checkpoint is not None:
        identity.update(checkpoint=str(checkpoint), checkpoint_sha256=sha256_of(checkpoint))
    known = source.model_settings(model)
    settings = {**settings, **known}
    identity.update({f"model_{key}": value for key, value in known.items()})
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
    used_precision = resolve(precision, device)
    source = backbones.source(source_name)
    layers = list(dict.fromkeys(layers))
    steps = sorted(set(timesteps)) if source.TAKES_TIMESTEPS else [None]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = images.shape[1]
    noise_attrs = {"noise_seed": noise_seed, "noise_device": noise_device, "noise_mode": noise_mode}
    stores = _create_stores(source_name, layers, steps, table, out_dir, {
        **attrs, "normalisation": source.NORMALISATION, "precision": used_precision, "image_ids": list(image_ids),
        "image_size": size, "stored_dtype": "float16"}, noise_attrs, len(images))
    noise, noise_shape = None, source.noise_shape(model, size)
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


def _create_stores(source_name: str, layers: list, steps: list, table: dict, out_dir: Path, attrs: dict,
                   noise_attrs: dict, n_images: int) -> dict:
    """{(layer, t): empty store} of every layer at every step under out_dir, each (n_images, C, h, h)
    as the layer table says, described by `attrs`, its source, layer, timestep, channels and
    resolution, and, at a timestep, `noise_attrs`."""
    stores = {}
    for layer in layers:
        channels, resolution = table[layer]
        for t in steps:
            described = {"source": source_name, "layer": layer, "timestep": t, "channels": channels,
                         "resolution": resolution, **(noise_attrs if t is not None else {})}
            stores[layer, t] = create_store(out_dir / backbones.store_name(layer, t),
                                            (n_images, channels, resolution, resolution), {**attrs, **described})
    return stores


def extract_cells(source_name: str, model, images: np.ndarray, image_ids: list, cells, table: dict, out_dir,
                  attrs: dict, **options) -> list:
    """`extract_features` of the (layer, timestep) `cells` of an ensemble (features.json's
    order), one call per distinct set of layers over the timesteps that share it; returns the
    store paths in the cells' order. `options`: extract_features' keyword arguments."""
    for layers, steps in cell_calls(cells):
        extract_features(source_name, model, images, image_ids, layers, steps, table, out_dir, attrs, **options)
    return [Path(out_dir) / backbones.store_name(layer, t) for layer, t in cells]


def cell_calls(cells) -> list:
    """[(layers, timesteps or None)]: the (layer, timestep) `cells` as few forward calls of a
    source, one per distinct set of layers over the timesteps that share it."""
    layers_at = {}  # timestep -> layers
    for layer, t in cells:
        layers_at.setdefault(t, []).append(layer)
    calls = {}
    for t, layers in layers_at.items():
        calls.setdefault(tuple(layers), []).append(t)
    return [(list(layers), None if steps == [None] else steps) for layers, steps in calls.items()]
