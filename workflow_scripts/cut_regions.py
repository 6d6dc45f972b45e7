"""Cut every image of a prepared split into regions (the dataset's `regions` setting)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)

from ddpmseg.regions import write_regions
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
settings = snakemake.params.settings
write_regions(snakemake.input[0], snakemake.output[0], settings["method"], settings["size"])
log.info("%s: %s regions of size %d written to %s", snakemake.input[0], settings["method"], settings["size"],
         snakemake.output[0])
