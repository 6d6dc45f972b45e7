"""Validates a dataset folder as a whole, then writes its splits resized to the model's size."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

from ddpmseg.datasets import prepare_split, validate_dataset, write_empty_split
from ddpmseg.formats.prepare import prepare_formatted
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
settings = snakemake.params.settings
root = snakemake.params.root  # inside snakemake.input[0] when that is an unpacked download
if settings["format"] is not None:
    outputs = {split: snakemake.output[split] for split in ("train", "test", "unlabeled")}
    summary = prepare_formatted(root, settings, outputs, snakemake.params.needs_unlabeled, snakemake.params.where)
    log.info("read %s (%s): %s", root, settings["format"], summary["counts"])
else:
    limits = {"train": settings["max_train"], "test": settings["max_test"]}
    splits = ("train", "test", "unlabeled") if snakemake.params.needs_unlabeled else ("train", "test")
    classes = dict(classes=settings["classes"], ignore_label=settings["ignore_label"])
    summary = validate_dataset(root, splits=splits, non_square=settings["non_square"], max_images=limits, **classes)
    log.info("validated %s: %s", root, summary["counts"])
    common = dict(image_size=settings["image_size"], non_square=settings["non_square"], resize=settings["resize"],
                  **classes)
    for split in ("train", "test"):
        prepare_split(root, split, snakemake.output[split], max_images=limits[split], **common)
    if snakemake.params.needs_unlabeled:
        prepare_split(root, "unlabeled", snakemake.output.unlabeled, **common)
    else:
        write_empty_split(snakemake.output.unlabeled, settings["image_size"])
with open(snakemake.output.summary, "w") as f:
    json.dump({**summary, "manifest_sha256": snakemake.params.manifest}, f, indent=2)
