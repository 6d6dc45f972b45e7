"""Segments a prepared folder of images with a segmenter bundle: per image a palette PNG mask
and an uncertainty PNG, and one Zarr with every image's labels and uncertainty; the features
are kept in the output's features/ folder."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from pathlib import Path

import numpy as np
import zarr
from PIL import Image

from ddpmseg.evaluate import save_palette_png
from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.segmenter import Segmenter

log = start_rule(snakemake)
out = Path(snakemake.output[0])
data = zarr.open_group(snakemake.input.data, mode="r")
ids = data.attrs["image_ids"]
segmenter = Segmenter.load(snakemake.input.bundle)
device = pick_device()
labels, uncertainty = segmenter.predict(data["images"][:], features_dir=out / "features", device=device)
n_classes, most = len(segmenter.classes), segmenter.uncertainty_max
group = zarr.open_group(out / "segmentation.zarr", mode="w")
size = segmenter.image_size
group.create_array("labels", data=labels, chunks=(1, size, size), dimension_names=("image", "y", "x"))
group.create_array("uncertainty", data=uncertainty.astype(np.float16), chunks=(1, size, size),
                   dimension_names=("image", "y", "x"))
group.attrs.update(image_ids=ids, classes=segmenter.classes, source=data.attrs["source"],
                   bundle=str(snakemake.input.bundle), provenance=segmenter.description["provenance"],
                   vote=segmenter.description["vote"],
                   uncertainty=("entropy of the softmax, nats" if segmenter.description["kind"] == "deeplab"
                                else "Jensen-Shannon divergence of the members' softmax, nats"),
                   uncertainty_png=f"8-bit grey, 255 = {most:.4f} nats (the largest possible)")
for image_id, mask, js in zip(ids, labels, uncertainty):
    for folder, picture in (("masks", None), ("uncertainty", js)):
        path = out / folder / f"{image_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if picture is None:
            save_palette_png(mask, path, n_classes)
        else:
            Image.fromarray(np.clip(np.rint(picture / most * 255), 0, 255).astype(np.uint8), mode="L").save(path)
log.info("segmented %d images of %s with %s", len(ids), data.attrs["source"], snakemake.input.bundle)
