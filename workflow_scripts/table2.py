"""results/table2.csv (methods x datasets, mean ± std over seeds) and the long format."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from ddpmseg.runtime import start_rule
from ddpmseg.tables import collect_metrics, summary_table

log = start_rule(snakemake)
long = collect_metrics(dict(zip(map(tuple, snakemake.params.runs), snakemake.input.metrics)))
long.to_csv(snakemake.output.long, index=False)
table = summary_table(long)
table.to_csv(snakemake.output.table)
log.info("\n%s", table.to_string())
