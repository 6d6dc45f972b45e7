"""Validates a folder of images (to segment, or an annotated set with its labels), then writes
them resized as the dataset's splits."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import zarr

from ddpmseg.datasets import prepare_folder
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
settings, folder = snakemake.params.settings, snakemake.params.folder  # input.folder may be the folder holding it
split = zarr.open_group(snakemake.input.split, mode="r")
prepare_folder(folder, snakemake.output[0], settings["image_size"], snakemake.wildcards.name, split.attrs["classes"],
               split.attrs["ignore_label"], settings["non_square"], settings["resize"], kind=snakemake.params.kind)
log.info("prepared %d images of %s", len(zarr.open_group(snakemake.output[0], mode="r").attrs["image_ids"]), folder)
