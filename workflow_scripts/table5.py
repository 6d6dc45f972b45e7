"""table5.csv: mIoU under the three noise variants of the feature extraction (rows
method x variant, one column per dataset), with the paper's DDPM rows where configured."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)


from ddpmseg.experiments.noise import table5
from ddpmseg.runtime import start_rule
from ddpmseg.tables import collect_runs

log = start_rule(snakemake)
long = collect_runs(snakemake.params.runs, snakemake.input.metrics, snakemake.params.names, lambda dataset, variant: {
    "variant": variant, "noise_draws": snakemake.params.draws[dataset] if variant == "fresh" else 1})
long.to_csv(snakemake.output.long, index=False)
table = table5(long, snakemake.params.reported)
table.to_csv(snakemake.output.table)
log.info("\n%s", table.to_string())
