"""<dataset>/robustness.csv: the mIoU of every run on every usable corruption and
severity, with the clean test split (Table 2's run) as corruption "none", severity 0."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import pandas as pd

from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
clean = []
for (key, seed), path in zip(map(tuple, snakemake.params.runs), snakemake.input.clean):
    with open(path) as f:
        metrics = json.load(f)
    clean.append(dict(dataset=snakemake.wildcards.dataset, method=snakemake.params.names[key], method_key=key, seed=seed,
                      corruption="none", severity=0, miou=metrics["miou"], miou_majority=metrics["miou_majority"],
                      miou_soft=metrics["miou_soft"]))
long = pd.concat([pd.DataFrame(clean), *(pd.read_csv(path) for path in snakemake.input.corrupted)], ignore_index=True)
long.to_csv(snakemake.output[0], index=False)
log.info("\n%s", long.groupby(["method", "severity"], sort=False)["miou"].mean().unstack().round(4).to_string())
