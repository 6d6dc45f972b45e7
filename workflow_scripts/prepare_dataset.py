"""Validates a dataset's labelled images as a whole, then writes its train and test splits
resized to the model's size (the unlabeled pool is rule prepare_pool's)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

from ddpmseg.datasets import prepare_split, validate_dataset
from ddpmseg.formats.prepare import prepare_formatted
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
settings = snakemake.params.settings
root = snakemake.params.root  # inside snakemake.input[0] when that is an unpacked download
if settings["format"] is not None:
    outputs = {split: snakemake.output[split] for split in ("train", "test")}
    summary = prepare_formatted(root, settings, outputs, False, snakemake.params.where)
    log.info("read %s (%s): %s", root, settings["format"], summary["counts"])
else:
    limits = {"train": settings["max_train"], "test": settings["max_test"]}
    classes = dict(classes=settings["classes"], ignore_label=settings["ignore_label"])
    summary = validate_dataset(root, splits=("train", "test"), non_square=settings["non_square"], max_images=limits,
                               **classes)
    log.info("validated %s: %s", root, summary["counts"])
    common = dict(image_size=settings["image_size"], non_square=settings["non_square"], resize=settings["resize"],
                  **classes)
    for split in ("train", "test"):
        prepare_split(root, split, snakemake.output[split], max_images=limits[split], **common)
with open(snakemake.output.summary, "w") as f:
    json.dump({**summary, "manifest_sha256": snakemake.params.manifest}, f, indent=2)
