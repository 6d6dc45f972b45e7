"""Extracts a downloaded archive into its folder under resources/."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from ddpmseg.download import unpack
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
unpack(snakemake.input[0], snakemake.output[0])
log.info("unpacked %s into %s", snakemake.input[0], snakemake.output[0])
