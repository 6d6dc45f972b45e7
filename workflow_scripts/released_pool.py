"""Writes a released synthetic dataset of the paper (an npz of images, labels and per-image
uncertainties, read row by row) as a labelled pool in the paper's dataset layout: NAME.png +
NAME.npy per image and uncertainty.csv (js_top10 = the file's score; js_mean is not in it)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import numpy as np
import pandas as pd
import zarr
from PIL import Image

from ddpmseg.atomic import folder_written_atomically
from ddpmseg.distill import released_arrays, released_file
from ddpmseg.errors import UserError
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
path = released_file(snakemake.params.path)
with released_arrays(path) as arrays, folder_written_atomically(snakemake.output[0]) as out:
    split = zarr.open_group(snakemake.input.split, mode="r")
    size, classes, ignore = split.attrs["image_size"], split.attrs["classes"], split.attrs["ignore_label"]
    n, stored = arrays["images"].shape[0], arrays["images"].shape[1]
    if stored != size:
        raise UserError(f"{path}: its images are {stored}x{stored}, the dataset's image_size is {size}; give the "
                        "released set of this dataset's resolution (the paper's are 256x256)")
    scores = arrays["uncertainty"].read_all().astype(float)
    counts = np.zeros(256, dtype=np.int64)
    names = [f"{i:05d}" for i in range(n)]
    for name, image, label in zip(names, arrays["images"].rows(), arrays["labels"].rows()):
        Image.fromarray(image).save(out / f"{name}.png")
        np.save(out / f"{name}.npy", label)
        counts += np.bincount(label.ravel(), minlength=256)
    bad = [v for v in np.flatnonzero(counts) if v >= len(classes) and v != ignore]
    if bad:
        raise UserError(f"{path}: labels hold values {bad} outside the dataset's {len(classes)} classes (ignore "
                        f"{ignore}); give the released set of this dataset")
    pd.DataFrame({"image": names, "js_mean": np.nan, "js_top10": scores}).to_csv(out / "uncertainty.csv", index=False)
    (out / "labelling.json").write_text(json.dumps({"bundle": None, "released": str(path), "images": n, "seconds": 0.0,
                                                    "sampling_seconds": 0.0}, indent=1))
log.info("wrote %d released images of %s", n, path)
