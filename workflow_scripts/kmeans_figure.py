"""Figure 4: k-means clusters of the pixel features of a few test images per (layer, timestep)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import zarr

from ddpmseg.stores import open_store
from ddpmseg.plots import kmeans_figure
from ddpmseg.probes import kmeans_maps
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
kmeans, cells = snakemake.params.kmeans, [tuple(c) for c in snakemake.params.cells]
test = zarr.open_group(snakemake.input.test, mode="r")
n = min(kmeans["n_images"], len(test.attrs["image_ids"]))
clusters, shapes = {}, {}
for (layer, step), path in zip(cells, snakemake.params.stores):
    store = open_store(path)
    clusters[layer, step] = kmeans_maps(store, n, kmeans["k"], snakemake.params.seed)
    shapes[layer] = (store.shape[1], store.shape[2])
kmeans_figure(test["images"][:n], clusters, shapes, test.attrs["image_ids"][:n],
              f"{snakemake.wildcards.dataset}, {snakemake.params.name}: k-means (k={kmeans['k']}) of the pixel "
              "features, per image",
              snakemake.output[0])
log.info("wrote %s", snakemake.output[0])
