"""Validates and writes a dataset's unlabeled pool resized to the model's size (empty where no
rule reads it): a job of its own, so that labelling more images does not touch it, nor the
diffusion model trained on it."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)

from ddpmseg.formats.prepare import prepare_dataset
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
settings = snakemake.params.settings
root = snakemake.params.root  # inside snakemake.input[0] when that is an unpacked download
needed, out = snakemake.params.needs_unlabeled, snakemake.output.unlabeled
summary = prepare_dataset(root, settings, {"unlabeled": out}, needed, snakemake.params.where)
log.info("read %s (%s): %s%s", root, settings["format"], summary["counts"],
         "" if needed else "; no rule reads the unlabeled pool: written empty")
