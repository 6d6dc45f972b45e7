"""mIoU (majority and soft vote) and per-class IoU of each seed's predictions on the test split."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import numpy as np
import pandas as pd
import zarr

from ddpmseg.evaluate import image_uncertainty_score, mean_iou, per_class_iou
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
evaluation = snakemake.params.evaluation
data = zarr.open_group(snakemake.input.data, mode="r")
labels, classes, ignore = data["labels"][:], data.attrs["classes"], data.attrs["ignore_label"]
scoring = dict(num_classes=len(classes), ignore_label=ignore, convention=evaluation["miou_convention"])
for predictions_path, metrics_path, per_class_path in zip(
    snakemake.input.predictions, snakemake.output.metrics, snakemake.output.per_class
):
    predictions = zarr.open_group(predictions_path, mode="r")
    votes = {vote: predictions[vote][:] for vote in ("majority", "soft")}
    miou = {vote: mean_iou(masks, labels, **scoring) for vote, masks in votes.items()}
    uncertainty = predictions["uncertainty"][:].astype(np.float32)
    metrics = {
        "miou": miou[evaluation["vote"]], "miou_majority": miou["majority"], "miou_soft": miou["soft"],
        "vote": evaluation["vote"], "convention": evaluation["miou_convention"], "n_images": len(labels),
        "mean_image_uncertainty": float(np.mean([image_uncertainty_score(u) for u in uncertainty])),
    }
    with open(metrics_path, "w") as f:
        json.dump(metrics, f, indent=2)
    pd.DataFrame({"class_id": range(len(classes)), "class": classes,
                  "iou": per_class_iou(votes[evaluation["vote"]], labels, **scoring)}).to_csv(per_class_path, index=False)
    log.info("%s: mIoU %.4f (majority %.4f, soft %.4f)", predictions_path, metrics["miou"], miou["majority"], miou["soft"])
