"""Trains the dataset's ADM UNet on its unlabeled images; writes EMA weights, flags, loss curve."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import pandas as pd
import zarr

from ddpmseg.diffusion import save_model, train_diffusion
from ddpmseg.features import pick_device
from ddpmseg.plots import loss_curve_figure
from ddpmseg.runtime import start_rule

log = start_rule(snakemake)
images = zarr.open_group(snakemake.input[0], mode="r")["images"][:]
flags = snakemake.params.flags
model, loss_rows = train_diffusion(images, flags, device=pick_device(), **snakemake.params.train)
save_model(model, flags, snakemake.output.checkpoint, snakemake.output.flags)
losses = pd.DataFrame(loss_rows)
losses.to_csv(snakemake.output.loss_csv, index=False)
loss_curve_figure(losses, f"{snakemake.wildcards.dataset}: diffusion training loss", snakemake.output.loss_png)
log.info("trained %d steps in %.1f s, final loss %.4f", losses.step.iloc[-1], losses.seconds.iloc[-1], losses.loss.iloc[-1])
