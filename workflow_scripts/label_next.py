"""Ranks the unlabeled pool for labelling with one seed's ensemble, its images
(ddpmseg.label_next) or its regions (ddpmseg.label_regions), and writes the picked batch: the
original images, their pre-annotations at their own size as palette PNGs and in the dataset's
format (or as Label Studio tasks), an overlay each for the annotator, batch.csv and batch.json
(dataset, method, seed, unit, classes and colours: what `ddpmseg label-studio push` needs); a
region batch also the asked pixels of each image (ddpmseg.region_batch)."""
import json
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from pathlib import Path

import numpy as np
import zarr
from PIL import Image

from ddpmseg.atomic import folder_written_atomically
from ddpmseg.images import read_rgb, write_upright
from ddpmseg.errors import UserError
from ddpmseg.formats.export import export_masks
from ddpmseg.formats.label_studio_tasks import MANIFEST, label_config, local_file_tasks
from ddpmseg.label_next import pooled_features, rank, score_images, training_match
from ddpmseg.label_regions import rank_regions, score_regions
from ddpmseg.mlp import load_ensemble
from ddpmseg.palette import palette, save_palette_png
from ddpmseg.predict import predict_images_at_original_size
from ddpmseg.plots import labelling_overlay, region_overlay
from ddpmseg.region_batch import asked_regions, image_rows, pre_annotation
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
match = training_match((pool["images"][i] for i in range(len(ids))),
                       (train["images"][i] for i in range(len(train.attrs["image_ids"]))))
unit, fmt = settings["unit"], settings["format"]
if unit != snakemake.params.unit:
    raise UserError(f"{snakemake.output.ranking}: a ranking of {snakemake.params.unit}s, but the config's "
                    f"datasets.{snakemake.wildcards.dataset}.label_next.unit is {unit}; ask for "
                    f"results/{snakemake.wildcards.dataset}/{'label_next' if unit == 'image' else 'label_next/regions'}/"
                    "ranking.csv")
if unit == "image":
    scores = score_images(model, pool_stores, len(ids), size, classes, device)
    scores.insert(0, "image", ids)
    scores.insert(1, "file", pool.attrs["files"])
    ranked = rank(scores, pooled_features(pool_stores, len(ids)),
                  pooled_features(train_stores, len(train.attrs["image_ids"])), settings["strategy"], settings["count"],
                  settings["seed"], settings["candidates"], match >= 0)
    log.info("%d of the pool already labelled (pixel for pixel a training image): ranked last", int((match >= 0).sum()))
    picked = ranked[ranked["picked"]]  # rank keeps the scores' row labels: the pool's image indices
else:  # regions of the pool; of an image already in the training split, only those with no label yet
    regions = zarr.open_group(snakemake.input.regions, mode="r")["regions"]
    table = score_regions(model, pool_stores, regions, size, classes, device)
    labelled = {(i, int(r)) for i in np.flatnonzero(match >= 0)
                for r in np.unique(regions[i][train["labels"][match[i]] != ignore]) if r >= 0}
    table = table[[(i, r) not in labelled for i, r in zip(table["image"], table["region"])]]
    if table.empty:
        raise UserError(f"{snakemake.input.pool}: every region of the pool is labelled already; add unlabeled images "
                        "to the dataset")
    table.insert(1, "image_id", [ids[i] for i in table["image"]])
    table.insert(2, "file", [pool.attrs["files"][i] for i in table["image"]])
    ranked = rank_regions(table, settings["strategy"], classes, settings["per_image"], count=settings["count"],
                          seed=settings["seed"])
    log.info("%d regions of %d pool images ranked (%d regions of partly labelled ones already labelled)",
             len(ranked), ranked["image"].nunique(), len(labelled))
    picked = image_rows(ranked[ranked["picked"]]).set_index("index")
index = picked.index.tolist()
sizes = [pool.attrs["original_sizes"][i] for i in index]
vote = "majority" if snakemake.params.vote == "majority" else "soft"
[(guesses, uncertainty)] = predict_images_at_original_size(
    [model], [ImageSubset(store, index) for store in pool_stores], sizes, size, pool.attrs["non_square"], ignore,
    device, outputs=(vote, "js"))
source = Path(pool.attrs["source"])
files = [source / name for name in picked["file"]]
taken = set(train.attrs["image_ids"])  # a pool image named as a training image is renamed in real/train/
names = [image_id if image_id not in taken else f"pool-{image_id}" for image_id in picked["image"]]
names = [train.attrs["image_ids"][match[i]] if match[i] >= 0 else name for i, name in zip(index, names)]
picked.insert(picked.columns.get_loc("file") + 1, "name", names)  # the image's name once labelled (paper layout)
colours = palette(len(classes))[: len(classes)].tolist()
masks = list(guesses)
with folder_written_atomically(snakemake.output.batch) as out:
    for folder in ("images", "masks", "overlays", *(["asked"] if unit == "region" else [])):
        (out / folder).mkdir()
    for k, (image_id, name, file, (_, row)) in enumerate(zip(picked["image"], names, files, picked.iterrows())):
        photo = read_rgb(file)
        if unit == "image":
            labelling_overlay(photo, masks[k], uncertainty[k], classes, ignore,
                              f"rank {row['rank']}: {image_id} (JS top 10% {row['js_top10']:.3f} nats, "
                              f"margin {row['margin_mean']:.2f})", out / "overlays" / f"{image_id}.png")
        else:
            i = index[k]
            asked = asked_regions(regions[i], map(int, row["regions"].split(";")), *photo.shape[:2],
                                  pool.attrs["non_square"])
            earlier = train["original_labels"][str(match[i])][:] if match[i] >= 0 else None
            region_overlay(photo, masks[k], asked, classes, ignore,
                           f"{image_id}: regions {row['regions']} (best rank {row['rank']}, mean JS "
                           f"{row['js_mean']:.3f} nats)", out / "overlays" / f"{image_id}.png")
            masks[k] = pre_annotation(masks[k], asked >= 0, earlier, ignore)
            Image.fromarray(np.where(asked >= 0, 255, 0).astype(np.uint8), mode="L").save(out / "asked" / f"{image_id}.png")
        write_upright(file, out / "images" / f"{image_id}{file.suffix}")
        save_palette_png(masks[k], out / "masks" / f"{image_id}.png", len(classes))
        if fmt == "paper":  # the paper's layout, ready to copy into the dataset's real/train/
            (out / "real" / "train").mkdir(parents=True, exist_ok=True)
            write_upright(file, out / "real" / "train" / f"{name}{file.suffix}")
            np.save(out / "real" / "train" / f"{name}.npy", masks[k])
    picked.to_csv(out / "batch.csv", index=False)
    if unit == "region":
        ranked[ranked["picked"]].to_csv(out / "regions.csv", index=False)
    (out / MANIFEST).write_text(json.dumps(
        {"dataset": snakemake.wildcards.dataset, "method": settings["method"], "seed": settings["seed"],
         "strategy": settings["strategy"], "unit": unit, "classes": classes, "colours": colours,
         "ignore_label": ignore}, indent=1))
    if fmt == "label_studio":  # images served from the batch folder as Label Studio's local files
        (out / fmt).mkdir()
        (out / fmt / "tasks.json").write_text(json.dumps(local_file_tasks(out)))
        (out / fmt / "label_config.xml").write_text(label_config(classes, colours))
    elif fmt not in ("paper", "palette"):
        export_masks(out / fmt, fmt, list(picked["image"]), files, masks, classes, colours)
ranked.to_csv(snakemake.output.ranking, index=False)
log.info("ranked %d %ss by %s; picked %d of %s", len(ranked), unit, settings["strategy"], int(ranked["picked"].sum()),
         ", ".join(picked["image"]))
