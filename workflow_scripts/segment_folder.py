"""Segments a prepared folder of images with a segmenter bundle, each image at its own size: per
image a palette PNG mask and an uncertainty PNG, one Zarr with every image's labels and
uncertainty, and where the config asks, the masks in an annotation format (<format>/); the
features are kept in the output's features/ folder."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from pathlib import Path

import numpy as np
import zarr
from PIL import Image

from ddpmseg.formats.export import export_masks
from ddpmseg.palette import save_palette_png
from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.segmenter import Segmenter

log = start_rule(snakemake)
out = Path(snakemake.output[0])
data = zarr.open_group(snakemake.input.data, mode="r")
ids, sizes = data.attrs["image_ids"], data.attrs["original_sizes"]
segmenter = Segmenter.load(snakemake.input.bundle)
device = pick_device()
labels, uncertainty = segmenter.predict(data["images"][:], features_dir=out / "features", device=device,
                                        original_sizes=sizes)
n_classes, most = len(segmenter.classes), segmenter.uncertainty_max
group = zarr.open_group(out / "segmentation.zarr", mode="w")
for name, arrays, dtype in (("labels", labels, np.uint8), ("uncertainty", uncertainty, np.float16)):
    values = group.create_group(name)
    for i, array in enumerate(arrays):
        values.create_array(str(i), data=array.astype(dtype), chunks=array.shape, dimension_names=("y", "x"))
group.attrs.update(image_ids=ids, original_sizes=sizes, classes=segmenter.classes, source=data.attrs["source"],
                   layout="labels/<i> and uncertainty/<i>: image i of image_ids at its own (height, width)",
                   bundle=str(snakemake.input.bundle), provenance=segmenter.description["provenance"],
                   vote=segmenter.description["vote"],
                   uncertainty=segmenter.UNCERTAINTY_IN_FULL,
                   uncertainty_png=f"8-bit grey, 255 = {most:.4f} nats (the largest possible)")
for image_id, mask, js in zip(ids, labels, uncertainty):
    for folder, picture in (("masks", None), ("uncertainty", js)):
        path = out / folder / f"{image_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if picture is None:
            save_palette_png(mask, path, n_classes)
        else:
            Image.fromarray(np.clip(np.rint(picture / most * 255), 0, 255).astype(np.uint8), mode="L").save(path)
if snakemake.params.export != "palette":
    files = [Path(data.attrs["source"]) / name for name in data.attrs["files"]]
    export_masks(out / snakemake.params.export, snakemake.params.export, ids, files, labels, segmenter.classes,
                 segmenter.palette.tolist())
log.info("segmented %d images of %s with %s", len(ids), data.attrs["source"], snakemake.input.bundle)
