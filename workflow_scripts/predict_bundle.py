"""Segments the test images with segmenter bundles (one per seed), written as the predict rule
writes an ensemble's predictions (a single model: majority = soft = its labels)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from pathlib import Path

import numpy as np
import zarr

from ddpmseg.evaluate import save_palette_png
from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.segmenter import Segmenter

log = start_rule(snakemake)
data = zarr.open_group(snakemake.input.data, mode="r")
ids, size, classes = data.attrs["image_ids"], data.attrs["image_size"], data.attrs["classes"]
for bundle, predictions_path, masks_path in zip(snakemake.input.bundles, snakemake.output.predictions, snakemake.output.masks):
    labels, uncertainty = Segmenter.load(bundle).predict(data["images"][:], device=pick_device())
    out = zarr.open_group(predictions_path, mode="w")
    for name, values in (("majority", labels), ("soft", labels), ("uncertainty", uncertainty.astype(np.float16))):
        out.create_array(name, data=values, chunks=(1, size, size), dimension_names=("image", "y", "x"))
    out.attrs.update(image_ids=ids, classes=classes, ignore_label=data.attrs["ignore_label"], bundle=bundle,
                     uncertainty="entropy of the softmax, nats")
    for image_id, mask in zip(ids, labels):
        path = Path(masks_path) / f"{image_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_palette_png(mask, path, len(classes))
    log.info("%s: predicted %d images", bundle, len(ids))
