"""Trains one of the dataset's ADM UNets (one per model seed) on its unlabeled images; writes EMA
weights, flags, loss curve and the outcome (steps done, what stopped it, threads); for the
budget curve also the EMA weights at chosen steps and their wall times."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json
from pathlib import Path

import pandas as pd
import zarr

from ddpmseg.diffusion import save_model, train_diffusion
from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.plots import loss_curve_figure

log = start_rule(snakemake)
images = zarr.open_group(snakemake.input[0], mode="r")["images"][:]
flags = snakemake.params.flags
snapshots = {step: Path(snakemake.output.snapshots) / f"step{step}.pt" for step in snakemake.params.snapshot_steps}
snapshot_seconds = {}  # the budget curve: the EMA weights at chosen steps of this one run, and when


def save_snapshot(step, seconds, ema):
    snapshots[step].parent.mkdir(parents=True, exist_ok=True)
    save_model(ema, flags, snapshots[step], snakemake.output.flags)
    snapshot_seconds[step] = seconds


model, loss_rows, outcome = train_diffusion(images, flags, device=pick_device(), seed=snakemake.params.seed,
                                            snapshot_steps=list(snapshots), on_snapshot=save_snapshot,
                                            **snakemake.params.train)
if snapshots:
    outcome["snapshot_seconds"] = snapshot_seconds
save_model(model, flags, snakemake.output.checkpoint, snakemake.output.flags)
losses = pd.DataFrame(loss_rows)
losses.to_csv(snakemake.output.loss_csv, index=False)
with open(snakemake.output.outcome, "w") as f:
    json.dump(outcome, f, indent=1)
stopped = "" if outcome["stopped_by"] == "max_steps" else f" (STOPPED by max_minutes at {outcome['steps']} of {outcome['max_steps']} steps)"
loss_curve_figure(losses, f"{snakemake.wildcards.dataset}: diffusion training loss, model seed {outcome['seed']}{stopped}",
                  snakemake.output.loss_png)
log.info("trained %d steps in %.1f s, final loss %.4f", losses.step.iloc[-1], losses.seconds.iloc[-1], losses.loss.iloc[-1])
