"""Prediction with the ensemble, voting, uncertainty, mIoU and the pictures a person looks at."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ddpmseg.ensemble import first_layer_projections, predict_probabilities, probabilities_from_first_layer
from ddpmseg.stores import native_maps, sample_pixel_features


def majority_vote(probabilities: torch.Tensor) -> torch.Tensor:
    """The paper's vote: per-member argmax, then the most frequent class (ties: smallest id).

    probabilities: (M, P, C) -> (P,) int64.
    """
    return torch.mode(probabilities.argmax(dim=-1), dim=0).values


def soft_vote(probabilities: torch.Tensor) -> torch.Tensor:
    """Argmax of the members' mean probabilities: (M, P, C) -> (P,) int64."""
    return probabilities.mean(dim=0).argmax(dim=-1)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim=-1)


def jensen_shannon(probabilities: torch.Tensor) -> torch.Tensor:
    """DatasetGAN's uncertainty: H(mean_m p_m) - mean_m H(p_m), in nats; (M, P, C) -> (P,)."""
    return _entropy(probabilities.mean(dim=0)) - _entropy(probabilities).mean(dim=0)


def confidence(probabilities: torch.Tensor) -> torch.Tensor:
    """The soft vote's confidence: the largest of the members' mean probabilities; (M, P, C) -> (P,)."""
    return probabilities.mean(dim=0).max(dim=-1).values


def margin(probabilities: torch.Tensor) -> torch.Tensor:
    """The soft vote's margin: its largest mean probability less the second; (M, P, C) -> (P,).
    Small where the ensemble hesitates between two classes."""
    top = probabilities.mean(dim=0).topk(min(2, probabilities.shape[-1]), dim=-1).values
    return top[:, 0] - top[:, 1] if top.shape[1] > 1 else top[:, 0]


def image_uncertainty_score(js: np.ndarray, top_fraction: float = 0.1) -> float:
    """An image's score as DatasetGAN: the mean of its top 10% per-pixel JS values."""
    flat = np.sort(js.reshape(-1))[::-1]
    return float(flat[: max(1, int(len(flat) * top_fraction))].mean())


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
    (M * H1)-channel sums per resolution (`ensemble.first_layer_projections`); "upsampled" is
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


LABEL_OUTPUTS = {"majority": majority_vote, "soft": soft_vote, "argmax": lambda p: p[0].argmax(dim=-1)}
SCORE_OUTPUTS = {"js": jensen_shannon, "entropy": lambda p: _entropy(p.mean(dim=0)), "confidence": confidence,
                 "margin": margin}
PIXEL_OUTPUTS = {**LABEL_OUTPUTS, **SCORE_OUTPUTS}  # name -> (M, P, C) probabilities -> (P,)


def unknown_outputs(outputs) -> None:
    """Raises ValueError naming any of ``outputs`` that is not a `PIXEL_OUTPUTS` name."""
    unknown = set(outputs) - set(PIXEL_OUTPUTS)
    if unknown:
        raise ValueError(f"unknown outputs {sorted(unknown)}; use {sorted(PIXEL_OUTPUTS)}")


def votes_at_original_size(probabilities: torch.Tensor, height: int, width: int, non_square: str, ignore_label: int,
                           outputs=("majority", "js"), chunk: int = 1 << 24) -> dict:
    """The votes of M members' softmax at the model's size brought back to an image's own size.

    probabilities: (M, C, S, S) float32 of the image as the model saw it (the square that
    `ddpmseg.datasets.fit_image` made of its height x width original). Each member's
    probabilities are sampled bilinearly (as F.interpolate, align_corners=False) at the centre of
    every pixel of the square at the original resolution, the square's padding left out (for
    'crop', pixels outside the centre square get ``ignore_label`` and the largest uncertainty);
    then ``outputs`` are taken there, pixel by pixel, about ``chunk`` values at a time: labels
    'majority', 'soft' (argmax of the mean), 'argmax' (of the first member), (H, W) uint8; and
    scores 'js' (Jensen-Shannon divergence over members), 'entropy' (of the mean), both nats,
    'confidence' and 'margin' (of the mean), (H, W) float32. Returns {output: array}. At the model's own size it gives the model-size votes.
    """
    from ddpmseg.datasets import square_box

    unknown_outputs(outputs)
    members, classes = probabilities.shape[0], probabilities.shape[1]
    top, left, side = square_box(height, width, non_square)
    shift = (top, left) if non_square != "crop" else (-top, -left)  # original pixel + shift = square pixel
    most = {"js": math.log(min(members, classes)), "entropy": math.log(classes), "confidence": 1 / classes,
            "margin": 0.0}  # outside a crop: the largest uncertainty
    result = {name: (np.full((height, width), ignore_label, np.uint8) if name in LABEL_OUTPUTS
                     else np.full((height, width), most[name], np.float32)) for name in outputs}
    rows_in = [y for y in range(height) if 0 <= y + shift[0] < side]
    cols = np.arange(width)
    inside = (cols + shift[1] >= 0) & (cols + shift[1] < side)
    x = torch.from_numpy((2 * (cols[inside] + shift[1]) + 1) / side - 1).float()
    step = max(1, chunk // (members * classes * max(1, int(inside.sum()))))
    for start in range(0, len(rows_in), step):
        rows = np.asarray(rows_in[start:start + step])
        y = torch.from_numpy((2 * (rows + shift[0]) + 1) / side - 1).float()
        grid = torch.stack(torch.meshgrid(y, x, indexing="ij")[::-1], dim=-1)  # (rows, cols, 2) as (x, y)
        grid = grid.to(probabilities.device).expand(members, *grid.shape)
        sampled = F.grid_sample(probabilities, grid, mode="bilinear", padding_mode="border",
                                align_corners=False)  # (M, C, rows, cols), edges clamped as F.interpolate
        p = sampled.permute(0, 2, 3, 1).reshape(members, -1, classes)
        for name in outputs:
            value = PIXEL_OUTPUTS[name](p)
            result[name][rows[:, None], cols[inside][None, :]] = value.reshape(len(rows), -1).cpu().numpy()
    return result


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


def error_detection_auroc(uncertainty: np.ndarray, errors: np.ndarray) -> float:
    """How well a pixel's uncertainty finds the misclassified pixels: the area under the ROC
    curve of ``uncertainty`` as a score for ``errors`` (bool, same shape), 0.5 = chance, 1 = every
    error more uncertain than every correct pixel. NaN where all pixels are right or all wrong."""
    from sklearn.metrics import roc_auc_score

    errors = errors.reshape(-1)
    if errors.all() or not errors.any():
        return float("nan")
    return float(roc_auc_score(errors, uncertainty.reshape(-1).astype(np.float64)))


def calibration_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> dict:
    """The reliability diagram's numbers: pixels binned by confidence into ``n_bins`` equal
    bins of [0, 1] (a bin holds (lower, upper]); per bin the pixel count, the mean confidence
    and the accuracy (None in empty bins). Lists, so that they can go into a JSON file."""
    confidence, correct = confidence.reshape(-1).astype(np.float64), correct.reshape(-1)
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, confidence, n_bins) / count
        accuracy = np.bincount(index, correct.astype(np.float64), n_bins) / count
    return {"count": count.tolist(), "confidence": [None if np.isnan(v) else v for v in mean_confidence.tolist()],
            "accuracy": [None if np.isnan(v) else v for v in accuracy.tolist()]}


def expected_calibration_error(bins: dict) -> float:
    """ECE of `calibration_bins`: the count-weighted mean |accuracy - confidence| over the
    bins, a fraction in [0, 1] (0: the confidence is the accuracy)."""
    count = np.asarray(bins["count"], np.float64)
    gap = [abs(a - c) if n else 0.0 for n, a, c in zip(bins["count"], bins["accuracy"], bins["confidence"])]
    return float(np.sum(np.asarray(gap) * count) / max(count.sum(), 1))


def confusion_counts(predictions: np.ndarray, labels: np.ndarray, num_classes: int, ignore_label: int, convention: str):
    """Per-class intersection and union summed over all images: two (K,) int64 arrays.

    convention 'paper': as the paper's code, pixels whose label is the ignore label still
    count: a prediction of class c there adds to c's union. 'masked': those pixels are left
    out entirely. Classes equal to the ignore label get zero counts.
    """
    if convention not in ("paper", "masked"):
        raise ValueError(f"unknown mIoU convention {convention!r}; use 'paper' or 'masked'")
    predictions, labels = predictions.reshape(-1), labels.reshape(-1)
    if convention == "masked":
        keep = labels != ignore_label
        predictions, labels = predictions[keep], labels[keep]
    intersection = np.zeros(num_classes, np.int64)
    union = np.zeros(num_classes, np.int64)
    for c in range(num_classes):
        if c == ignore_label:
            continue
        is_pred, is_label = predictions == c, labels == c
        intersection[c] = np.count_nonzero(is_pred & is_label)
        union[c] = np.count_nonzero(is_pred | is_label)
    return intersection, union


def iou_from_counts(intersection: np.ndarray, union: np.ndarray, ignore_label: int) -> np.ndarray:
    """IoU_c = I_c / (1e-8 + U_c), (K,) float64; a class absent from both prediction and label
    gets 0 (as the paper's code). The ignore label's entry is NaN."""
    iou = intersection / (1e-8 + union)
    if 0 <= ignore_label < len(iou):
        iou[ignore_label] = np.nan
    return iou


def per_class_iou(predictions, labels, num_classes: int, ignore_label: int, convention: str = "paper") -> np.ndarray:
    """`iou_from_counts` of the intersections and unions summed over the whole set."""
    return iou_from_counts(*confusion_counts(predictions, labels, num_classes, ignore_label, convention), ignore_label)


def mean_iou(predictions, labels, num_classes: int, ignore_label: int, convention: str = "paper") -> float:
    """Mean of `per_class_iou` over the classes other than the ignore label."""
    return float(np.nanmean(per_class_iou(predictions, labels, num_classes, ignore_label, convention)))


def palette(num_classes: int) -> np.ndarray:
    """(256, 3) uint8 colours: distinct colours for the classes, white for the rest (ignore)."""
    colours = np.full((256, 3), 255, np.uint8)
    cmap = [
        (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
        (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
        (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0),
        (255, 215, 180), (0, 0, 128), (128, 128, 128),
    ]
    rng = np.random.default_rng(0)
    for c in range(min(num_classes, 255)):
        colours[c] = cmap[c] if c < len(cmap) else rng.integers(0, 256, 3)
    return colours


def save_palette_png(mask: np.ndarray, path, num_classes: int) -> None:
    """A (H, W) uint8 class map as an indexed PNG whose palette shows the classes."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette(palette(num_classes).reshape(-1).tolist())
    image.save(path)
