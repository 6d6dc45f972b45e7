"""Writes one seed's trained ensemble as a self-describing segmenter bundle (ddpmseg.segmenter)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import zarr

from ddpmseg.methods import MethodPlan
from ddpmseg.runtime import start_rule
from ddpmseg.segmenter import Segmenter

log = start_rule(snakemake)
params = snakemake.params
data = zarr.open_group(snakemake.input.data, mode="r")
with open(snakemake.input.features) as f:
    trained_on = json.load(f)
segmenter = Segmenter.for_ensemble(
    snakemake.input.model, plan=MethodPlan(**params.plan), cells=trained_on["cells"], checkpoint=snakemake.input.get("checkpoint"),
    model_seed=params.model_seed, noise_seed=params.noise_seed, noise_device=params.extraction["noise_device"],
    batch_images=params.extraction["batch_images"],
    precision={"extraction": params.extraction["precision"], "ensemble": params.ensemble_precision},
    threads={"extraction": params.extraction_threads, "prediction": params.prediction_threads},
    classes=data.attrs["classes"], ignore_label=data.attrs["ignore_label"], image_size=data.attrs["image_size"],
    non_square=data.attrs["non_square"], resize=data.attrs["resize"], vote=params.vote,
    provenance={"dataset": snakemake.wildcards.dataset, "method": snakemake.wildcards.method,
                "trained_on": snakemake.wildcards.get("name", "real"), "seed": int(snakemake.wildcards.seed),
                "ensemble": snakemake.input.model})
segmenter.save(snakemake.output[0])
log.info("wrote %s (%s, %d cells)", snakemake.output[0], params.plan["name"], len(trained_on["cells"]))
