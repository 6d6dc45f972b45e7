"""Pretrains a method's feature source (MAE, SwAV) on the dataset's unlabeled images; writes the
checkpoint in the source's official layout, the loss curve and the outcome (steps, seconds, what
stopped it, threads)."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json

import pandas as pd
import torch
import zarr

from ddpmseg import backbones
from ddpmseg.methods import MethodPlan
from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.plots import loss_curve_figure

log = start_rule(snakemake)
plan = MethodPlan(**snakemake.params.plan)
images = zarr.open_group(snakemake.input[0], mode="r")["images"][:]
checkpoint, loss_rows, outcome = backbones.source(plan.source).pretrain(plan.settings, images, pick_device())
torch.save(checkpoint, snakemake.output.checkpoint)
losses = pd.DataFrame(loss_rows)
losses.to_csv(snakemake.output.loss_csv, index=False)
with open(snakemake.output.outcome, "w") as f:
    json.dump({**outcome, "method": plan.key, "source": plan.source}, f, indent=1)
stopped = "" if outcome["stopped_by"] == "max_steps" else f" (STOPPED by max_minutes at {outcome['steps']} of {outcome['max_steps']} steps)"
collapsed = outcome.get("uniform_assignment_loss")  # SwAV: a model predicting every prototype alike
loss_curve_figure(losses, f"{snakemake.wildcards.dataset}: {plan.name} pretraining loss{stopped}",
                  snakemake.output.loss_png, ylabel=f"{plan.name} training loss",
                  reference=None if collapsed is None else (collapsed, f"ln K = {collapsed:.2f}: collapsed (uniform)"))
log.info("pretrained %s for %d steps in %.1f s, final loss %.4f", plan.name, outcome["steps"], outcome["seconds"],
         losses.loss.iloc[-1])
