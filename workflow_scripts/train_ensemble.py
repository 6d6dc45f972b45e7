"""Trains one seed's pixel classifier ensemble on streamed features; saves its state_dict."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import pandas as pd
import torch
import zarr

from ddpmseg.ensemble import train_ensemble
from ddpmseg.features import open_stores
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
data = zarr.open_group(snakemake.input.data, mode="r")
model, history = train_ensemble(
    open_stores(snakemake.input.stores), data["labels"][:], len(data.attrs["classes"]), data.attrs["ignore_label"],
    seed=int(snakemake.wildcards.seed), **snakemake.params.settings,
)
torch.save(model.state_dict(), snakemake.output.model)
pd.DataFrame(history).to_csv(snakemake.output.history, index=False)
