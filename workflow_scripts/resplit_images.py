"""Re-split r of a dataset's labelled images (`ddpmseg.experiments.resplits.resplit`), written as
the images of each part, named by their fixed split and id ("train/NAME", "test/NAME")."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import zarr

from ddpmseg.experiments.resplits import RESPLIT_SEED, resplit
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
every = [f"{split}/{image}" for split, path in (("train", snakemake.input.train), ("test", snakemake.input.test))
         for image in zarr.open_group(path, mode="r").attrs["image_ids"]]
n_train = len(zarr.open_group(snakemake.input.train, mode="r").attrs["image_ids"])
r = int(snakemake.wildcards.resplit)
train, test = resplit(n_train, len(every) - n_train, r)
with open(snakemake.output[0], "w") as f:
    json.dump({"resplit": r, "generator_seed": [RESPLIT_SEED, r], "train": [every[i] for i in train],
               "test": [every[i] for i in test]}, f, indent=1)
log.info("re-split %d: %d train, %d test images", r, len(train), len(test))
