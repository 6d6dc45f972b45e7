"""Writes the embedded procedural dataset in the paper's layout."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from ddpmseg.runtime import start_rule
from ddpmseg.synthetic import generate_dataset

log = start_rule(snakemake)
generate_dataset(snakemake.output[0], **snakemake.params.settings)
log.info("wrote %s", snakemake.output[0])
