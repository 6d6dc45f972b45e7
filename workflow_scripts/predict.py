"""Segments the test images with every seed's ensemble: majority and soft votes, JS
uncertainty, the soft vote's confidence, palette PNG masks; with `evaluation.resolution:
original` also all of these at each image's own size (group original/)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from pathlib import Path

import zarr

from ddpmseg.ensemble import load_ensemble
from ddpmseg.evaluate import (predict_images, predict_images_at_original_size, save_palette_png,
                              write_predictions)
from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.stores import open_stores

log = start_rule(snakemake)
data = zarr.open_group(snakemake.input.data, mode="r")
ids, size, classes = data.attrs["image_ids"], data.attrs["image_size"], data.attrs["classes"]
device = pick_device() if snakemake.params.gpu else "cpu"
models = [load_ensemble(path, snakemake.params.precision, device) for path in snakemake.input.models]
log.info("predicting on %s", device)
stores = open_stores(snakemake.params.stores)


def predict_each(predict, *args) -> list:
    """predict(models, stores, *args) per model, each seed's ensemble on its own run's stores
    where the method has per-run noise."""
    if not snakemake.params.runs_own_stores:
        return predict(models, stores, *args)
    per_run = len(stores) // len(models)
    return [predict([model], stores[k * per_run : (k + 1) * per_run], *args)[0] for k, model in enumerate(models)]


# names in the predictions.zarr -> the pixel outputs of ddpmseg.evaluate that fill them
ARRAYS = {"majority": "majority", "soft": "soft", "uncertainty": "js", "confidence": "confidence"}
outputs = predict_each(predict_images, len(ids), size, device, 8192, "auto", tuple(ARRAYS.values()))
at_original = (predict_each(predict_images_at_original_size, data.attrs["original_sizes"], size,
                            data.attrs["non_square"], data.attrs["ignore_label"], device, "auto", tuple(ARRAYS.values()))
               if snakemake.params.resolution == "original" else [None] * len(models))
for arrays, original, predictions_path, masks_path in zip(
    outputs, at_original, snakemake.output.predictions, snakemake.output.masks
):
    arrays = dict(zip(ARRAYS, arrays))
    write_predictions(predictions_path, arrays,
                      dict(image_ids=ids, classes=classes, ignore_label=data.attrs["ignore_label"],
                           uncertainty="Jensen-Shannon divergence of the members' softmax, nats",
                           confidence="largest of the members' mean probabilities (the soft vote's)"),
                      None if original is None else dict(zip(ARRAYS, original)))
    chosen = arrays["majority"] if snakemake.params.vote == "majority" else arrays["soft"]
    for image_id, mask in zip(ids, chosen):
        path = Path(masks_path) / f"{image_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_palette_png(mask, path, len(classes))
log.info("predicted %d images with %d ensembles", len(ids), len(models))
