"""Trains one DeepLabV3 on the kept images of a labelled pool; the epoch with the best mIoU on
the real train images is kept, as a segmenter bundle (kind deeplab)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json
import time
from pathlib import Path

import pandas as pd
import zarr

from ddpmseg.deeplab import train_deeplab
from ddpmseg.distill import load_kept
from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.segmenter import Segmenter

log = start_rule(snakemake)
settings, seed = snakemake.params.settings, int(snakemake.wildcards.seed)
selection = pd.read_csv(snakemake.input.selection, dtype={"image": str})
images, labels = load_kept(selection)
valid = zarr.open_group(snakemake.input.valid, mode="r")
classes, ignore = valid.attrs["classes"], valid.attrs["ignore_label"]
log.info("training on %d of %d pool images (%s backbone, %s)", len(images), len(selection), settings["backbone"],
         "weights " + snakemake.input.backbone if "backbone" in snakemake.input.keys() else "random backbone")
start = time.perf_counter()
state, history, best_epoch = train_deeplab(
    images, labels, valid["images"][:], valid["labels"][:], num_classes=len(classes), ignore_label=ignore,
    backbone=settings["backbone"], backbone_weights=snakemake.input.get("backbone"), batch_size=settings["batch_size"],
    epochs=settings["epochs"], lr=settings["lr"], seed=seed, convention=snakemake.params.convention,
    input_size=settings["input_size"], recalibrate=settings["recalibrate_batchnorm"], device=pick_device())
seconds = time.perf_counter() - start
labelling = [json.loads((Path(folder) / "labelling.json").read_text()) for folder in snakemake.input.pool]
pd.DataFrame(history).to_csv(snakemake.output.history, index=False)
Segmenter.for_deeplab(
    state, backbone=settings["backbone"], threads=snakemake.params.torch_threads, classes=classes, ignore_label=ignore,
    image_size=valid.attrs["image_size"], non_square=valid.attrs["non_square"], resize=valid.attrs["resize"],
    provenance={"dataset": snakemake.wildcards.dataset, "pool": snakemake.wildcards.pool, "seed": seed,
                "selection": snakemake.input.selection, "best_epoch": best_epoch},
    input_size=settings["input_size"],
).save(snakemake.output.bundle)
with open(snakemake.output.outcome, "w") as f:
    json.dump({"pool": snakemake.wildcards.pool, "seed": seed, "images": len(images), "pool_images": len(selection),
               "epochs": settings["epochs"], "best_epoch": best_epoch, "best_valid_miou": max(h["valid_miou"] for h in history),
               "seconds": seconds, "labelling_seconds": sum(job["seconds"] for job in labelling),
               "sampling_seconds": sum(job["sampling_seconds"] for job in labelling), "backbone": settings["backbone"],
               "input_size": settings["input_size"], "recalibrate_batchnorm": settings["recalibrate_batchnorm"],
               "backbone_weights": snakemake.input.get("backbone"),
               "torch_threads": snakemake.params.torch_threads},
              f, indent=1)
