"""Ranks the unlabeled pool for labelling with one seed's ensemble (ddpmseg.label_next) and
writes the picked batch: the original images, their predicted masks at their own size as palette
PNGs and in the dataset's format (or as Label Studio tasks), an overlay each for the annotator,
batch.csv and batch.json (dataset, method, seed, classes and colours: what `ddpmseg label-studio
push` needs)."""
import json
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from pathlib import Path

import numpy as np
import zarr

from ddpmseg.atomic import folder_written_atomically
from ddpmseg.images import read_rgb, write_upright
from ddpmseg.errors import UserError
from ddpmseg.formats.export import export_masks
from ddpmseg.formats.label_studio_tasks import MANIFEST, label_config, local_file_tasks
from ddpmseg.label_next import already_labelled, pooled_features, rank, score_images
from ddpmseg.mlp import load_ensemble
from ddpmseg.palette import palette, save_palette_png
from ddpmseg.predict import predict_images_at_original_size
from ddpmseg.plots import labelling_overlay
from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.stores import ImageSubset, open_stores

log = start_rule(snakemake)
settings = snakemake.params.settings
pool = zarr.open_group(snakemake.input.pool, mode="r")
train = zarr.open_group(snakemake.input.train, mode="r")
ids, size = pool.attrs["image_ids"], pool.attrs["image_size"]
classes, ignore = train.attrs["classes"], train.attrs["ignore_label"]
if not ids:
    raise UserError(f"{snakemake.input.pool}: the unlabeled pool is empty; add images to the dataset's unlabeled "
                    "images (the paper's layout: unlabeled/; a format: images without annotation, or `unlabeled:`)")
device = pick_device() if snakemake.params.gpu else "cpu"
model = load_ensemble(snakemake.input.model, snakemake.params.precision, device)
pool_stores, train_stores = open_stores(snakemake.params.stores["pool_stores"]), open_stores(snakemake.params.stores["train_stores"])
log.info("scoring %d pool images with %s on %s", len(ids), snakemake.input.model, device)
scores = score_images(model, pool_stores, len(ids), size, classes, device)
scores.insert(0, "image", ids)
scores.insert(1, "file", pool.attrs["files"])
exclude = already_labelled((pool["images"][i] for i in range(len(ids))),
                           (train["images"][i] for i in range(len(train.attrs["image_ids"]))))
ranked = rank(scores, pooled_features(pool_stores, len(ids)), pooled_features(train_stores, len(train.attrs["image_ids"])),
              settings["strategy"], settings["count"], settings["seed"], settings["candidates"], exclude)
log.info("%d of the pool already labelled (pixel for pixel a training image): ranked last", int(exclude.sum()))

picked = ranked[ranked["picked"]]
index = picked.index.tolist()  # rank keeps the scores' row labels: the pool's image indices
sizes = [pool.attrs["original_sizes"][i] for i in index]
vote = "majority" if snakemake.params.vote == "majority" else "soft"
[(masks, uncertainty)] = predict_images_at_original_size(
    [model], [ImageSubset(store, index) for store in pool_stores], sizes, size, pool.attrs["non_square"], ignore,
    device, outputs=(vote, "js"))
source = Path(pool.attrs["source"])
files = [source / name for name in picked["file"]]
fmt = settings["format"]
taken = set(train.attrs["image_ids"])  # a pool image named as a training image is renamed in real/train/
names = [image_id if image_id not in taken else f"pool-{image_id}" for image_id in picked["image"]]
picked.insert(picked.columns.get_loc("file") + 1, "name", names)  # the image's name once labelled (paper layout)
colours = palette(len(classes))[: len(classes)].tolist()
with folder_written_atomically(snakemake.output.batch) as out:
    picked.to_csv(out / "batch.csv", index=False)
    (out / MANIFEST).write_text(json.dumps(
        {"dataset": snakemake.wildcards.dataset, "method": settings["method"], "seed": settings["seed"],
         "strategy": settings["strategy"], "classes": classes, "colours": colours, "ignore_label": ignore}, indent=1))
    for image_id, name, file, mask, js, (_, row) in zip(picked["image"], names, files, masks, uncertainty,
                                                        picked.iterrows()):
        for folder in ("images", "masks", "overlays"):
            (out / folder / image_id).parent.mkdir(parents=True, exist_ok=True)
        write_upright(file, out / "images" / f"{image_id}{file.suffix}")
        save_palette_png(mask, out / "masks" / f"{image_id}.png", len(classes))
        labelling_overlay(read_rgb(file), mask, js, classes, ignore,
                          f"rank {row['rank']}: {image_id} (JS top 10% {row['js_top10']:.3f} nats, "
                          f"margin {row['margin_mean']:.2f})", out / "overlays" / f"{image_id}.png")
        if fmt == "paper":  # the paper's layout, ready to copy into the dataset's real/train/
            (out / "real" / "train" / name).parent.mkdir(parents=True, exist_ok=True)
            write_upright(file, out / "real" / "train" / f"{name}{file.suffix}")
            np.save(out / "real" / "train" / f"{name}.npy", mask)
    if fmt == "label_studio":  # images served from the batch folder as Label Studio's local files
        (out / fmt).mkdir()
        (out / fmt / "tasks.json").write_text(json.dumps(local_file_tasks(out)))
        (out / fmt / "label_config.xml").write_text(label_config(classes, colours))
    elif fmt not in ("paper", "palette"):
        export_masks(out / fmt, fmt, list(picked["image"]), files, masks, classes, colours)
ranked.to_csv(snakemake.output.ranking, index=False)
log.info("ranked %d pool images by %s; picked %s", len(ranked), settings["strategy"], ", ".join(picked["image"]))
