"""Labels one batch of a pool with a seed's ensemble bundle (majority vote), in the paper's
dataset layout: NAME.png + NAME.npy (uint8 labels) per image, and uncertainty.csv with each
image's mean and top-10% mean Jensen-Shannon uncertainty (the paper's score)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from PIL import Image

from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.segmenter import Segmenter
from ddpmseg.votes import image_uncertainty_score

log = start_rule(snakemake)
pool = zarr.open_group(snakemake.input.images, mode="r")
images, ids = pool["images"][:], pool.attrs["image_ids"]
start = time.perf_counter()
labels, uncertainty = Segmenter.load(snakemake.input.bundle).predict(images, device=pick_device())
seconds = time.perf_counter() - start
out = Path(snakemake.output[0])
rows = []
for image_id, image, label, js in zip(ids, images, labels, uncertainty):
    (out / image_id).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(out / f"{image_id}.png")
    np.save(out / f"{image_id}.npy", label)
    rows.append(dict(image=image_id, js_mean=float(js.mean()), js_top10=image_uncertainty_score(js)))
pd.DataFrame(rows).to_csv(out / "uncertainty.csv", index=False)
(out / "labelling.json").write_text(json.dumps({"bundle": snakemake.input.bundle, "images": len(ids), "seconds": seconds,
                                                "sampling_seconds": pool.attrs.get("seconds", 0.0)}, indent=1))
log.info("labelled %d images in %.1f s", len(ids), seconds)
