"""Decoder activations of the trained (ddpm[_m<d>]) or random (unet_untrained[_m<d>]) UNet, one
store per (block, timestep)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
from pathlib import Path

import zarr

from ddpmseg.diffusion import build_model_and_diffusion, load_model, randomize_weights
from ddpmseg.download import sha256_of
from ddpmseg.features import extract_decoder_features, pick_device
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
flags, features, seed = snakemake.params.flags, snakemake.params.extraction, snakemake.params.model_seed
device = pick_device()
checkpoint = snakemake.input.get("checkpoint")
if snakemake.wildcards.model.startswith("ddpm"):
    model, diffusion, flags = load_model(checkpoint, flags, device)
    identity = {"model": "ddpm", "model_seed": seed, "checkpoint": str(checkpoint),
                "checkpoint_sha256": sha256_of(checkpoint)}
else:
    if checkpoint is not None:  # a given checkpoint: its architecture (checked), random weights
        model, diffusion, flags = load_model(checkpoint, flags, device)
    else:
        model, diffusion = build_model_and_diffusion(flags, device)
    randomize_weights(model, seed)
    identity = {"model": "unet_untrained", "model_seed": seed, "weights_seed": seed}
log.info("model flags: %s", flags)
data = zarr.open_group(snakemake.input.data, mode="r")
paths = extract_decoder_features(
    model, diffusion, data["images"][:], data.attrs["image_ids"],
    blocks=snakemake.params.blocks, timesteps=snakemake.params.timesteps, noise_seed=snakemake.params.noise_seed,
    out_dir=Path(snakemake.output[0]).parent,
    attrs={**identity, "dataset": snakemake.params.dataset, "split": snakemake.wildcards.split, "model_flags": flags,
           "torch_threads": snakemake.params.torch_threads},
    batch_images=features["batch_images"], noise_device=features["noise_device"],
)
log.info("wrote %d stores for %d images", len(paths), len(data.attrs["image_ids"]))
