"""mIoU (majority and soft vote) and per-class IoU of each seed's predictions on the test split,
at the model's size (the paper's convention) or, with `evaluation.resolution: original`, at each
image's own size (the model-size mIoU kept as miou_at_model_size); how far the uncertainty can be
trusted: the AUROC of the pixel uncertainty for finding the misclassified pixels, and the soft
vote's expected calibration error with its reliability bins (labelled, predicted pixels only);
with the run's training_labels.json, train_images and train_labelled_pixels (model size)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import numpy as np
import pandas as pd
import zarr

from ddpmseg.metrics import (calibration_bins, error_detection_auroc, expected_calibration_error, mean_iou,
                             per_class_iou)
from ddpmseg.runtime import start_rule
from ddpmseg.splits import read_original_labels
from ddpmseg.votes import image_uncertainty_score

log = start_rule(snakemake)
evaluation = snakemake.params.evaluation
at_original = evaluation["resolution"] == "original"
data = zarr.open_group(snakemake.input.data, mode="r")
labels, classes, ignore = data["labels"][:], data.attrs["classes"], data.attrs["ignore_label"]
if at_original:  # every image's pixels, flattened into one row: mIoU sums counts over all pixels
    original_labels = np.concatenate([label.ravel() for label in read_original_labels(snakemake.input.data)])
scoring = dict(num_classes=len(classes), ignore_label=ignore, convention=evaluation["miou_convention"])


def flat(group) -> np.ndarray:
    """The arrays 0..N-1 of an original/<name> group, flattened and joined: (1, total pixels)."""
    return np.concatenate([group[str(i)][:].ravel() for i in range(len(labels))])[None]


trained_on = [{} for _ in snakemake.output.metrics]  # a DeepLab's (distill) runs: no count of labelled pixels
for i, path in enumerate(snakemake.input.get("training_labels") or []):
    with open(path) as f:
        trained_on[i] = json.load(f)
for predictions_path, metrics_path, per_class_path, counts in zip(
    snakemake.input.predictions, snakemake.output.metrics, snakemake.output.per_class, trained_on
):
    predictions = zarr.open_group(predictions_path, mode="r")
    votes = {vote: predictions[vote][:] for vote in ("majority", "soft")}
    uncertainty = [u.astype(np.float32) for u in predictions["uncertainty"][:]]
    confidence = predictions["confidence"][:] if "confidence" in predictions else None  # none for a DeepLab
    truth = labels
    model_size_miou = mean_iou(votes[evaluation["vote"]], labels, **scoring)
    if at_original:
        if "original" not in predictions:
            raise SystemExit(f"{predictions_path}: holds no predictions at original size; delete it and run again")
        votes = {vote: flat(predictions[f"original/{vote}"]) for vote in ("majority", "soft")}
        group = predictions["original/uncertainty"]
        uncertainty = [group[str(i)][:].astype(np.float32) for i in range(len(labels))]
        confidence = flat(predictions["original/confidence"]) if confidence is not None else None
        truth = original_labels[None]
    scored = (truth != ignore) & (votes[evaluation["vote"]] != ignore)  # labelled pixels the model predicted
    all_uncertainty = np.concatenate([u.ravel() for u in uncertainty])
    trust = {"auroc_uncertainty": error_detection_auroc(all_uncertainty[scored.ravel()],
                                                        (votes[evaluation["vote"]] != truth)[scored])}
    if confidence is not None:
        bins = calibration_bins(confidence[scored], (votes["soft"] == truth)[scored])
        trust.update(ece=expected_calibration_error(bins), calibration=bins)
    miou = {vote: mean_iou(masks, truth, **scoring) for vote, masks in votes.items()}
    metrics = {
        "miou": miou[evaluation["vote"]], "miou_majority": miou["majority"], "miou_soft": miou["soft"],
        "vote": evaluation["vote"], "convention": evaluation["miou_convention"], "n_images": len(labels),
        "resolution": evaluation["resolution"],
        "mean_image_uncertainty": float(np.mean([image_uncertainty_score(u) for u in uncertainty])),
        "uncertainty": predictions.attrs.get("uncertainty", ""), **trust, **counts,
    }
    if at_original:
        metrics["miou_at_model_size"] = model_size_miou
    with open(metrics_path, "w") as f:
        json.dump(metrics, f, indent=2)
    pd.DataFrame({"class_id": range(len(classes)), "class": classes,
                  "iou": per_class_iou(votes[evaluation["vote"]], truth, **scoring)}).to_csv(per_class_path, index=False)
    log.info("%s: mIoU %.4f (majority %.4f, soft %.4f; %s size); uncertainty AUROC %.3f, ECE %s", predictions_path,
             metrics["miou"], miou["majority"], miou["soft"], evaluation["resolution"], trust["auroc_uncertainty"],
             f"{trust['ece']:.4f}" if "ece" in trust else "-")
