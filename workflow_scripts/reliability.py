"""Per dataset, the reliability diagram of every method's soft vote (its seeds' test pixels
pooled): <dataset>/reliability.csv and .png."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)

from ddpmseg.plots import reliability_figure
from ddpmseg.runtime import start_rule
from ddpmseg.tables import reliability_table

log = start_rule(snakemake)
files = {}
for method, path in zip(snakemake.params.methods, snakemake.input.metrics):
    files.setdefault(method, []).append(path)
table = reliability_table(files)
table.to_csv(snakemake.output.table, index=False)
reliability_figure(table, snakemake.params.title, snakemake.output.figure)
log.info("ECE per method: %s", table.groupby("method", sort=False)["ece"].first().round(4).to_dict())
