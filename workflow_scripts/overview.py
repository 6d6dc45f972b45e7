"""image | prediction | ground truth | uncertainty for the first few test images."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import numpy as np
import zarr

from ddpmseg.plots import overview_figure
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
data = zarr.open_group(snakemake.input.data, mode="r")
predictions = zarr.open_group(snakemake.input.predictions, mode="r")
n = min(snakemake.params.n_images, len(data.attrs["image_ids"]))
overview_figure(
    data["images"][:n], predictions[snakemake.params.vote][:n], data["labels"][:n],
    predictions["uncertainty"][:n].astype(np.float32), data.attrs["image_ids"][:n],
    data.attrs["classes"], data.attrs["ignore_label"], snakemake.params.title, snakemake.output[0],
)
