"""mIoU (majority and soft vote) and per-class IoU of one run on the test split."""
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
predictions = zarr.open_group(snakemake.input.predictions, mode="r")
labels, classes, ignore = data["labels"][:], data.attrs["classes"], data.attrs["ignore_label"]
scoring = dict(num_classes=len(classes), ignore_label=ignore, convention=evaluation["miou_convention"])
votes = {vote: predictions[vote][:] for vote in ("majority", "soft")}
miou = {vote: mean_iou(masks, labels, **scoring) for vote, masks in votes.items()}
uncertainty = predictions["uncertainty"][:].astype(np.float32)
metrics = {
    "miou": miou[evaluation["vote"]], "miou_majority": miou["majority"], "miou_soft": miou["soft"],
    "vote": evaluation["vote"], "convention": evaluation["miou_convention"], "n_images": len(labels),
    "mean_image_uncertainty": float(np.mean([image_uncertainty_score(u) for u in uncertainty])),
}
with open(snakemake.output.metrics, "w") as f:
    json.dump(metrics, f, indent=2)
pd.DataFrame({"class_id": range(len(classes)), "class": classes,
              "iou": per_class_iou(votes[evaluation["vote"]], labels, **scoring)}).to_csv(snakemake.output.per_class, index=False)
log.info("mIoU %.4f (majority %.4f, soft %.4f)", metrics["miou"], miou["majority"], miou["soft"])
