"""Scores of predictions against labels, from numpy arrays, without torch: the paper's per-class
IoU and mIoU (from intersection and union counts, in either convention for the ignore label), how
well uncertainty finds the errors (AUROC, scikit-learn's), and calibration (reliability bins, ECE).
"""

import numpy as np


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
