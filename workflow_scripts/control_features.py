"""Hand-made control features (RGB+xy, or 5x5 RGB patch + xy) as one store."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import zarr

from ddpmseg.features import write_control_features
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
data = zarr.open_group(snakemake.input[0], mode="r")
write_control_features(
    data["images"][:], data.attrs["image_ids"], snakemake.wildcards.control, snakemake.output[0],
    {"dataset": snakemake.wildcards.dataset, "split": snakemake.wildcards.split},
)
