"""Validates a dataset's labelled images as a whole, then writes its train and test splits
resized to the model's size (the unlabeled pool is rule prepare_pool's)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

from ddpmseg.formats.prepare import prepare_dataset
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
settings = snakemake.params.settings
root = snakemake.params.root  # inside snakemake.input[0] when that is an unpacked download
outputs = {split: snakemake.output[split] for split in ("train", "test")}
summary = prepare_dataset(root, settings, outputs, False, snakemake.params.where)
log.info("read %s (%s): %s", root, settings["format"], summary["counts"])
with open(snakemake.output.summary, "w") as f:
    json.dump({**summary, "manifest_sha256": snakemake.params.manifest}, f, indent=2)
