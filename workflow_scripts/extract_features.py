"""One extraction job (`ddpmseg.plan.Extraction`): a method folder's features of one split, one
store per (layer, timestep) of its source in the job's folder: decoder activations of the
trained (ddpm[_m<d>]) or random (unet_untrained[_m<d>]) UNet, MAE or SwAV activations, or the
hand-made controls."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import zarr

from ddpmseg.features import build_method_model, extract_features
from ddpmseg.methods import MethodPlan
from ddpmseg.runtime import pick_device, start_rule

log = start_rule(snakemake)
plan, features, job = MethodPlan(**snakemake.params.plan), snakemake.params.extraction, snakemake.params.job
data = zarr.open_group(snakemake.input.data, mode="r")
device = pick_device()
model, table, identity = build_method_model(plan, data.attrs["image_size"], job["checkpoint"], device, job["model_seed"])
if "model_flags" in identity:
    log.info("model flags: %s", identity["model_flags"])
paths = extract_features(
    plan.source, model, data["images"][:], data.attrs["image_ids"], job["layers"], job["timesteps"],
    table, snakemake.output[0],
    {**identity, "dataset": snakemake.params.dataset, "split": snakemake.wildcards.split,
     "torch_threads": snakemake.params.torch_threads},
    noise_seed=job["noise_seed"], noise_device=features["noise_device"],
    noise_mode=job["noise_mode"], batch_images=features["batch_images"], device=device,
    precision=features["precision"],
)
log.info("wrote %d stores for %d images", len(paths), len(data.attrs["image_ids"]))
