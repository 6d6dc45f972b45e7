"""Segments the test images with segmenter bundles (one per seed), written as the predict rule
writes an ensemble's predictions (a single model: majority = soft = its labels), with
`evaluation.resolution: original` also at each image's own size."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from pathlib import Path

import zarr

from ddpmseg.palette import save_palette_png
from ddpmseg.predict import write_predictions
from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.segmenter import Segmenter

log = start_rule(snakemake)
data = zarr.open_group(snakemake.input.data, mode="r")
ids, classes, images = data.attrs["image_ids"], data.attrs["classes"], data["images"][:]
for bundle, predictions_path, masks_path in zip(snakemake.input.bundles, snakemake.output.predictions, snakemake.output.masks):
    segmenter, device = Segmenter.load(bundle), pick_device()
    labels, uncertainty = segmenter.predict(images, device=device)
    original = None
    if snakemake.params.resolution == "original":
        own_labels, own_uncertainty = segmenter.predict(images, device=device, original_sizes=data.attrs["original_sizes"])
        original = {"majority": own_labels, "soft": own_labels, "uncertainty": own_uncertainty}
    write_predictions(predictions_path, {"majority": labels, "soft": labels, "uncertainty": uncertainty},
                      dict(image_ids=ids, classes=classes, ignore_label=data.attrs["ignore_label"], bundle=bundle,
                           uncertainty=segmenter.UNCERTAINTY_IN_FULL), original)
    for image_id, mask in zip(ids, labels):
        path = Path(masks_path) / f"{image_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_palette_png(mask, path, len(classes))
    log.info("%s: predicted %d images", bundle, len(ids))
