"""Segments the test images with every seed's ensemble: majority and soft votes, JS
uncertainty, palette PNG masks."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from pathlib import Path

import numpy as np
import zarr

from ddpmseg.ensemble import load_ensemble
from ddpmseg.evaluate import predict_images, save_palette_png
from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.stores import open_stores

log = start_rule(snakemake)
data = zarr.open_group(snakemake.input.data, mode="r")
ids, size, classes = data.attrs["image_ids"], data.attrs["image_size"], data.attrs["classes"]
device = pick_device() if snakemake.params.gpu else "cpu"
models = [load_ensemble(path, snakemake.params.precision, device) for path in snakemake.input.models]
log.info("predicting on %s", device)
stores = open_stores(snakemake.input.stores)
if snakemake.params.runs_own_stores:  # each seed's ensemble on its run's stores (per-run noise)
    per_run = len(stores) // len(models)
    outputs = [predict_images([model], stores[k * per_run : (k + 1) * per_run], len(ids), size, device)[0]
               for k, model in enumerate(models)]
else:
    outputs = predict_images(models, stores, len(ids), size, device)
for (majority, soft, uncertainty), predictions_path, masks_path in zip(
    outputs, snakemake.output.predictions, snakemake.output.masks
):
    out = zarr.open_group(predictions_path, mode="w")
    for name, values in (("majority", majority), ("soft", soft), ("uncertainty", uncertainty.astype(np.float16))):
        out.create_array(name, data=values, chunks=(1, size, size), dimension_names=("image", "y", "x"))
    out.attrs.update(image_ids=ids, classes=classes, ignore_label=data.attrs["ignore_label"],
                     uncertainty="Jensen-Shannon divergence of the members' softmax, nats")
    chosen = majority if snakemake.params.vote == "majority" else soft
    for image_id, mask in zip(ids, chosen):
        path = Path(masks_path) / f"{image_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_palette_png(mask, path, len(classes))
log.info("predicted %d images with %d ensembles", len(ids), len(models))
