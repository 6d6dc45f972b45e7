"""Prediction with the ensemble: every member's softmax at every pixel of an image, through the
cheaper route for its first layer; the votes and scores of whole sets of images, at the model's
size or at each image's own; and the predictions.zarr that holds them.
"""

import numpy as np
import torch

from ddpmseg.mlp import first_layer_projections, predict_probabilities, probabilities_from_first_layer
from ddpmseg.stores import native_maps, sample_pixel_features
from ddpmseg.votes import LABEL_OUTPUTS, PIXEL_OUTPUTS, unknown_outputs, votes_at_original_size


# What one bilinearly sampled value costs, in multiply-adds of a matrix product: fitted to the
# two sizes of benchmarks/predict_native.py on a 2-core AVX2 CPU (it only has to rank the routes).
SAMPLED_VALUE_MACS = 450


def first_layer_route(models, maps, size: int) -> str:
    """"native" or "upsampled", whichever costs `models` fewer multiply-adds on these maps
    ((h, w, C) each) at size x size, a sampled value counted as SAMPLED_VALUE_MACS. The upsampled
    route samples the D features of every pixel once for all models, then multiplies them by
    each model's (D, M * H1) first layer; the native route multiplies every map at its own h*w
    positions, then samples each model's (M * H1) sums once per distinct resolution. Native wins
    where the features are wide and the maps small (the paper's 8448 features: 1/16 of the
    FLOPs); upsampled where M * H1 outnumbers the features (the default's 640 against 1280)."""
    features = sum(fmap.shape[2] for fmap in maps)
    positions = sum(fmap.shape[0] * fmap.shape[1] * fmap.shape[2] for fmap in maps)  # sum of h * w * C
    resolutions = len({tuple(fmap.shape[:2]) for fmap in maps})
    widths = [model.n_members * model.weight0.shape[2] for model in models]  # M * H1 of each model
    pixels = size * size
    upsampled = pixels * (SAMPLED_VALUE_MACS * features + features * sum(widths))
    native = sum(width * (positions + SAMPLED_VALUE_MACS * resolutions * pixels) for width in widths)
    return "native" if native < upsampled else "upsampled"


def image_probabilities(models, maps, size: int, chunk: int = 8192, first_layer: str = "auto") -> list:
    """Every member's softmax at every pixel of one image: [(M, S * S, C) float32] per model.

    maps: the image's `native_maps`, on the device where the work runs. first_layer "native"
    applies each model's first Linear to every map at its own resolution and upsamples its
    (M * H1)-channel sums per resolution (`mlp.first_layer_projections`); "upsampled" is
    the paper's order, every pixel's full feature vector sampled first (`predict_probabilities`);
    "auto" (the default) takes the cheaper (`first_layer_route`). Both are the same function up
    to float32 rounding. Pixels go `chunk` at a time.
    """
    if first_layer == "auto":
        first_layer = first_layer_route(models, maps, size)
    n_pixels = size * size
    pixel_chunks = [torch.arange(start, min(start + chunk, n_pixels), device=maps[0].device)
                    for start in range(0, n_pixels, chunk)]
    if first_layer == "upsampled":
        features = torch.empty((len(pixel_chunks[0]), sum(m.shape[2] for m in maps)), device=maps[0].device)
        parts = [[] for _ in models]
        for pixels in pixel_chunks:
            sample_pixel_features(maps, pixels, size, features[: len(pixels)])
            for model, model_parts in zip(models, parts):
                model_parts.append(predict_probabilities(model, features[: len(pixels)]))
        return [torch.cat(model_parts, dim=1) for model_parts in parts]
    if first_layer != "native":
        raise ValueError(f"unknown first_layer {first_layer!r}; use 'auto', 'native' or 'upsampled'")
    out = []
    for model in models:
        projections = first_layer_projections(model, maps)  # one (H, W, M * H1) per resolution
        width = projections[0].shape[2]
        sampled = torch.empty((len(pixel_chunks[0]), len(projections) * width), device=maps[0].device)
        model_parts = []
        for pixels in pixel_chunks:
            sample_pixel_features(projections, pixels, size, sampled[: len(pixels)])
            first = sampled[: len(pixels)].reshape(len(pixels), len(projections), width).sum(dim=1)
            model_parts.append(probabilities_from_first_layer(model, first))
        out.append(torch.cat(model_parts, dim=1))
    return out


def predict_images(models, stores, n_images: int, size: int, device: str = "cpu", chunk: int = 8192,
                   first_layer: str = "auto", outputs=("majority", "soft", "js")) -> list:
    """Predictions of each ensemble in `models` for every image of the stores.

    Image by image, its native maps are read to `device` and scored there by all ensembles
    (`image_probabilities`, `chunk` pixels at a time: never the whole upsampled image), so
    memory does not grow with the number of images. Returns one tuple per model, one array per
    name of ``outputs`` in that order (`PIXEL_OUTPUTS`): labels (N, S, S) uint8, scores (N, S, S)
    float32 (the default: majority, soft, JS uncertainty in nats).
    """
    unknown_outputs(outputs)
    models = [model.to(device) for model in models]
    results = [tuple(np.zeros((n_images, size, size), np.uint8 if name in LABEL_OUTPUTS else np.float32)
                     for name in outputs) for _ in models]
    for i in range(n_images):
        maps = native_maps(stores, i, device)
        for p, arrays in zip(image_probabilities(models, maps, size, chunk, first_layer), results):
            for name, array in zip(outputs, arrays):
                array[i] = PIXEL_OUTPUTS[name](p).reshape(size, size).cpu().numpy()
    return results


def predict_images_at_original_size(models, stores, original_sizes: list, size: int, non_square: str,
                                    ignore_label: int, device: str = "cpu", first_layer: str = "auto",
                                    outputs=("majority", "soft", "js")) -> list:
    """`predict_images` at each image's own size: every member's probabilities at the model's
    size (`image_probabilities`) brought back to the image's (height, width) of
    ``original_sizes`` and voted there (`votes_at_original_size`). Returns one tuple per model,
    one list per name of ``outputs``: [(H, W) uint8] for labels, [(H, W) float32] for scores."""
    unknown_outputs(outputs)
    models = [model.to(device) for model in models]
    results = [tuple([] for _ in outputs) for _ in models]
    for i, (height, width) in enumerate(original_sizes):
        maps = native_maps(stores, i, device)
        for p, lists in zip(image_probabilities(models, maps, size, first_layer=first_layer), results):
            p = p.reshape(p.shape[0], size, size, p.shape[2]).permute(0, 3, 1, 2)  # (M, C, S, S)
            votes = votes_at_original_size(p, height, width, non_square, ignore_label, outputs)
            for name, values in zip(outputs, lists):
                values.append(votes[name])
    return results


def write_predictions(path, outputs: dict, attrs: dict, original: dict | None = None) -> None:
    """A predictions.zarr group at ``path``: one array per entry of ``outputs`` (name ->
    (N, S, S): majority, soft uint8; uncertainty (JS, nats), confidence float, stored float16),
    one chunk per image, and ``attrs``; where ``original`` (the same names -> lists of (H_i, W_i)
    arrays at each image's own size) is given, also original/<name>/<i>
    (`evaluation.resolution: original`)."""
    import zarr

    out = zarr.open_group(str(path), mode="w")
    for name, values in outputs.items():
        values = values if values.dtype == np.uint8 else values.astype(np.float16)
        out.create_array(name, data=values, chunks=(1, *values.shape[1:]), dimension_names=("image", "y", "x"))
    for name, arrays in (original or {}).items():
        group = out.create_group(f"original/{name}")
        for i, array in enumerate(arrays):
            group.create_array(str(i), data=array if array.dtype == np.uint8 else array.astype(np.float16),
                               chunks=array.shape, dimension_names=("y", "x"))
    out.attrs.update(attrs)
