"""One batch of samples of the dataset's diffusion model (DatasetDDPM's images), seeded by
(sample_seed, batch); written as an unlabeled split group."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import time

import zarr

from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.sampling import sample_batch

log = start_rule(snakemake)
params = snakemake.params
batch = int(snakemake.wildcards.batch)
first = batch * params.sample_batch
n = min(params.sample_batch, params.n_samples - first)
start = time.perf_counter()
images = sample_batch(snakemake.input[0], params.flags, n, params.seed, batch, params.respacing, pick_device())
seconds = time.perf_counter() - start
size = images.shape[1]
group = zarr.open_group(snakemake.output[0], mode="w")
group.create_array("images", data=images, chunks=(1, size, size, 3), dimension_names=("image", "y", "x", "rgb"))
group.attrs.update(split=f"samples-{batch}", image_ids=[f"{first + i:05d}" for i in range(n)], image_size=size,
                   source=str(snakemake.input[0]), sample_seed=params.seed, batch=batch,
                   timestep_respacing=params.respacing, seconds=seconds)
log.info("sampled %d images (%s) in %.1f s", n, params.respacing or "all steps", seconds)
