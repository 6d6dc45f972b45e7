"""<dataset>/per_class_iou.csv (classes x methods, mean ± std over runs), its long
format and its bar chart."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)

from ddpmseg.experiments.per_class import collect_per_class, per_class_figure, per_class_table
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
long = collect_per_class(dict(zip(map(tuple, snakemake.params.runs), snakemake.input.per_class)), snakemake.params.names)
long.to_csv(snakemake.output.long, index=False)
table = per_class_table(long)
table.to_csv(snakemake.output.table)
per_class_figure(long, f"{snakemake.wildcards.dataset}: per-class IoU on the test split", snakemake.output.figure)
log.info("\n%s", table.to_string())
