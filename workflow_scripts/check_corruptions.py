"""Which corruptions of `imagecorruptions` work with the installed libraries, tried on the first
test image at the dataset's size and every configured severity; the others are left out with
their error as the reason."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json
from importlib.metadata import version

import zarr

from ddpmseg.experiments.robustness import check_corruptions, corruption_names
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
image = zarr.open_group(snakemake.input.data, mode="r")["images"][0]
asked = snakemake.params.corruptions or corruption_names()  # names checked by the config schema
result = check_corruptions(image, asked, snakemake.params.severities)
for name, reason in result["left_out"].items():
    log.warning("corruption %s left out: %s", name, reason)
result["versions"] = {package: version(package) for package in ("imagecorruptions", "numpy", "scikit-image", "scipy", "opencv-python")}
with open(snakemake.output[0], "w") as f:
    json.dump(result, f, indent=1)
log.info("%d of %d corruptions usable", len(result["usable"]), len(asked))
