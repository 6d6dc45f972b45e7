"""Every re-split run's scores in one long table (dataset, method, method_key, resplit, seed,
miou, miou_majority, miou_soft, train_images, test_images); Table 2 adds their mean ± std."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)

import pandas as pd

from ddpmseg.runtime import start_rule
from ddpmseg.tables import method_of

log = start_rule(snakemake)
names = snakemake.params.names
parts = [pd.read_csv(path).assign(dataset=dataset, method=names[method_of(key)], method_key=key, resplit=r)
         for (dataset, key, r), path in zip(map(tuple, snakemake.params.runs), snakemake.input.scores)]
long = pd.concat(parts, ignore_index=True)
first = ["dataset", "method", "method_key", "resplit", "seed"]
long[first + [c for c in long.columns if c not in first]].to_csv(snakemake.output[0], index=False)
log.info("%d runs", len(long))
