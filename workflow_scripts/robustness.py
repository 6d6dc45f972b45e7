"""One method folder's mIoU on one corruption of the test split at every configured severity:
the corrupted images' features are extracted with the clean run's recipe (cells, noise) into a
temporary folder and segmented by the clean ensembles of every seed; only the scores are kept."""
import _repository_src  # noqa: F401  (puts the repository's src/ on sys.path)
import json
import tempfile

import pandas as pd
import zarr

from ddpmseg.features import build_method_model, extract_cells
from ddpmseg.methods import MethodPlan
from ddpmseg.metrics import mean_iou
from ddpmseg.mlp import load_ensemble
from ddpmseg.predict import predict_images
from ddpmseg.runtime import pick_device, start_rule
from ddpmseg.stores import open_stores

log = start_rule(snakemake)
plan, features, params = MethodPlan(**snakemake.params.plan), snakemake.params.extraction, snakemake.params
with open(snakemake.input.features) as f:
    cells = [tuple(cell) for cell in json.load(f)["cells"]]  # the clean ensembles' (layer, timestep), in their order
device = pick_device()
models = [load_ensemble(path, params.precision, device) for path in snakemake.input.models]
size = zarr.open_group(params.data[0], mode="r").attrs["image_size"]
model, table, identity = build_method_model(plan, size, snakemake.input.get("checkpoint"), device, params.model_seed)
# one extraction serves all seeds, or with per-run noise each seed's ensemble gets features of its noise
runs = [(params.seeds, params.noise_seeds[0])] if not params.runs_own_stores else [
    ([seed], noise) for seed, noise in zip(params.seeds, params.noise_seeds)]
rows = []
for severity, data_path in zip(params.severities, params.data):
    data = zarr.open_group(data_path, mode="r")
    images, ids, labels = data["images"][:], data.attrs["image_ids"], data["labels"][:]
    for run_seeds, noise_seed in runs:
        with tempfile.TemporaryDirectory(dir=snakemake.resources.tmpdir, prefix="robustness-") as scratch:
            stores = open_stores(extract_cells(
                plan.source, model, images, ids, cells, table, scratch, {**identity, "split": data.attrs["split"]},
                noise_seed=noise_seed, noise_device=features["noise_device"], batch_images=features["batch_images"],
                device=device, precision=features["precision"]))
            run_models = [models[params.seeds.index(seed)] for seed in run_seeds]
            outputs = predict_images(run_models, stores, len(ids), size, device)
        for seed, (majority, soft, _) in zip(run_seeds, outputs):
            scoring = dict(num_classes=len(data.attrs["classes"]), ignore_label=data.attrs["ignore_label"],
                           convention=params.evaluation["miou_convention"])
            miou = {"majority": mean_iou(majority, labels, **scoring), "soft": mean_iou(soft, labels, **scoring)}
            rows.append(dict(dataset=params.dataset, method=plan.name, method_key=snakemake.wildcards.method,
                             seed=seed, corruption=snakemake.wildcards.corruption, severity=severity,
                             miou=miou[params.evaluation["vote"]], miou_majority=miou["majority"], miou_soft=miou["soft"]))
            log.info("severity %d, seed %d: mIoU %.4f", severity, seed, rows[-1]["miou"])
pd.DataFrame(rows).to_csv(snakemake.output[0], index=False)
