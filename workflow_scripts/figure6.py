"""figure6.png (mIoU at clean / weak / medium / strong corruptions per method, one panel
per dataset) and the numbers it draws, figure6.csv."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)

import pandas as pd

from ddpmseg.experiments.robustness import figure6, robustness_summary
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
summary = robustness_summary(pd.concat([pd.read_csv(path) for path in snakemake.input], ignore_index=True))
summary.to_csv(snakemake.output.table, index=False)
figure6(summary, snakemake.output.figure)
log.info("\n%s", summary.to_string())
