"""One method folder's features of one split, one store per (layer, timestep) of its source:
decoder activations of the trained (ddpm[_m<d>]) or random (unet_untrained[_m<d>]) UNet, MAE or
SwAV activations, or the hand-made controls."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from pathlib import Path

import zarr

from ddpmseg.features import build_method_model, extract_features

from ddpmseg.runtime import pick_device, start_rule

log = start_rule(snakemake)
plan, features = snakemake.params.plan, snakemake.params.extraction
data = zarr.open_group(snakemake.input.data, mode="r")
device = pick_device()
model, table, identity = build_method_model(plan, data.attrs["image_size"], snakemake.input.get("checkpoint"), device,
                                            snakemake.params.model_seed)
if "model_flags" in identity:
    log.info("model flags: %s", identity["model_flags"])
paths = extract_features(
    plan["source"], model, data["images"][:], data.attrs["image_ids"], snakemake.params.layers,
    snakemake.params.timesteps, table, Path(snakemake.output[0]).parent,
    {**identity, "dataset": snakemake.params.dataset, "split": snakemake.wildcards.split,
     "torch_threads": snakemake.params.torch_threads},
    noise_seed=snakemake.params.noise_seed, noise_device=features["noise_device"],
    noise_mode=snakemake.params.noise_mode, batch_images=features["batch_images"], device=device,
    precision=features["precision"],
)
log.info("wrote %d stores for %d images", len(paths), len(data.attrs["image_ids"]))
