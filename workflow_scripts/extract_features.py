"""One method folder's features of one split, one store per (layer, timestep) of its source:
decoder activations of the trained (ddpm[_m<d>]) or random (unet_untrained[_m<d>]) UNet, MAE or
SwAV activations, or the hand-made controls."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from pathlib import Path

import zarr

from ddpmseg import backbones
from ddpmseg.download import sha256_of
from ddpmseg.features import extract_features, pick_device
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
plan, features, seed = snakemake.params.plan, snakemake.params.extraction, snakemake.params.model_seed
source = backbones.source(plan["source"])
data = zarr.open_group(snakemake.input.data, mode="r")
size = data.attrs["image_size"]
device = pick_device()
checkpoint = snakemake.input.get("checkpoint")
settings = plan["settings"]
model = source.build(settings, size, checkpoint, device, seed)
identity = {"method": plan["key"], "method_name": plan["name"], "model_seed": seed,
            "settings": {k: v for k, v in settings.items() if k not in ("blocks", "flags")}}
if checkpoint is not None:
    identity.update(checkpoint=str(checkpoint), checkpoint_sha256=sha256_of(checkpoint))
if plan["source"] == "adm":  # a checkpoint's architecture is known once it is read: its full flags
    settings = {**settings, "flags": model.flags}
    identity["model_flags"] = model.flags
    log.info("model flags: %s", model.flags)
paths = extract_features(
    plan["source"], model, data["images"][:], data.attrs["image_ids"], snakemake.params.layers,
    snakemake.params.timesteps, source.layer_table(settings, size), Path(snakemake.output[0]).parent,
    {**identity, "dataset": snakemake.params.dataset, "split": snakemake.wildcards.split,
     "torch_threads": snakemake.params.torch_threads},
    noise_seed=snakemake.params.noise_seed, noise_device=features["noise_device"],
    batch_images=features["batch_images"], device=device,
)
log.info("wrote %d stores for %d images", len(paths), len(data.attrs["image_ids"]))
