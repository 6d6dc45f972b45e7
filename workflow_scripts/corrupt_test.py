"""The test split under one corruption at every configured severity, one prepared split each
(labels and attrs of the clean one)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from pathlib import Path

import zarr

from ddpmseg.datasets import write_split_variant
from ddpmseg.experiments.robustness import corrupt_images
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
clean = zarr.open_group(snakemake.input.data, mode="r")
corruption = snakemake.wildcards.corruption
Path(snakemake.output[0]).mkdir(parents=True, exist_ok=True)
for severity in snakemake.params.severities:
    out_path = Path(snakemake.output[0]) / f"severity{severity}.zarr"
    images = corrupt_images(clean["images"][:], clean.attrs["image_ids"], corruption, severity)
    write_split_variant(snakemake.input.data, out_path, images,
                        {"split": f"test-{corruption}-{severity}", "corruption": corruption, "severity": severity})
    log.info("%s at severity %d: %d images", corruption, severity, len(images))
