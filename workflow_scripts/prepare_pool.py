"""Validates and writes a dataset's unlabeled pool resized to the model's size (empty where no
rule reads it): a job of its own, so that labelling more images does not touch it, nor the
diffusion model trained on it."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)

from ddpmseg.datasets import prepare_split, write_empty_split
from ddpmseg.formats.prepare import prepare_formatted
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
settings = snakemake.params.settings
root = snakemake.params.root  # inside snakemake.input[0] when that is an unpacked download
needed, out = snakemake.params.needs_unlabeled, snakemake.output.unlabeled
if settings["format"] is not None:
    summary = prepare_formatted(root, settings, {"unlabeled": out}, needed, snakemake.params.where)
    log.info("read %s (%s): %s", root, settings["format"], summary["counts"])
elif needed:
    prepare_split(root, "unlabeled", out, image_size=settings["image_size"], non_square=settings["non_square"],
                  resize=settings["resize"], classes=settings["classes"], ignore_label=settings["ignore_label"])
    log.info("wrote the unlabeled pool of %s", root)
else:
    write_empty_split(out, settings["image_size"])
    log.info("no rule reads the unlabeled pool of %s: written empty", root)
