"""table3.csv: the method's ensembles trained on real and on synthetic annotated images,
with DatasetDDPM and the released synthetic datasets' DeepLabs (rows x (dataset, training data)),
the paper's numbers where configured, and its long format."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import pandas as pd

from ddpmseg.experiments.annotated import table3
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
rows = []
for (dataset, method, train), path in zip(map(tuple, snakemake.params.runs), snakemake.input.metrics):
    with open(path) as f:
        rows.append(dict(dataset=dataset, method=method, train=train, run=path, miou=json.load(f)["miou"]))
long = pd.DataFrame(rows)
long.to_csv(snakemake.output.long, index=False)
table = table3(long, snakemake.params.reported)
table.to_csv(snakemake.output.table)
log.info("\n%s", table.to_string())
