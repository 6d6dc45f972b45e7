"""The ensemble's votes and its uncertainty, pixel by pixel, from every member's softmax
(M, P, C): the paper's majority vote and the soft vote, Jensen-Shannon divergence, entropy,
confidence and margin (`PIXEL_OUTPUTS`), an image's uncertainty score, and all of them at an
image's own size (`votes_at_original_size`).
"""

import math

import numpy as np
import torch
import torch.nn.functional as F


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
    `ddpmseg.resizing.fit_image` made of its height x width original). Each member's
    probabilities are sampled bilinearly (as F.interpolate, align_corners=False) at the centre of
    every pixel of the square at the original resolution, the square's padding left out (for
    'crop', pixels outside the centre square get ``ignore_label`` and the largest uncertainty);
    then ``outputs`` are taken there, pixel by pixel, about ``chunk`` values at a time: labels
    'majority', 'soft' (argmax of the mean), 'argmax' (of the first member), (H, W) uint8; and
    scores 'js' (Jensen-Shannon divergence over members), 'entropy' (of the mean), both nats,
    'confidence' and 'margin' (of the mean), (H, W) float32. Returns {output: array}. At the model's own size it gives the model-size votes.
    """
    from ddpmseg.resizing import square_shift

    unknown_outputs(outputs)
    members, classes = probabilities.shape[0], probabilities.shape[1]
    *shift, side = square_shift(height, width, non_square)  # original pixel + shift = square pixel
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
