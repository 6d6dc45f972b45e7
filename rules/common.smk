# Config validation, the plan (ddpmseg.plan: everything computed from the config, every path
# from its results layout), wildcard constraints, and the input functions of the stage files
# (get_*) with the few helpers that need Snakemake's checkpoints.
import csv
import json
import os
import re
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from ddpmseg.config import schema_problem  # noqa: E402
from ddpmseg.methods import ConfigProblem  # noqa: E402
from ddpmseg.plan import Plan, layout  # noqa: E402
from ddpmseg.plan.stores import EXTRACTION_NAMES  # noqa: E402
from ddpmseg.sweep import choose_cells  # noqa: E402


def workflow_script(name):
    """A script's absolute path: Snakemake resolves a relative one from the file that reuses
    its rule (rules/experiments/ reuse the stage rules with `use`)."""
    return str(Path(workflow.basedir) / "workflow_scripts" / name)


# Jobs side by side on few cores: OpenMP threads that wait at a barrier sleep instead of spinning
# on a core another job's threads need (two 2-thread torch jobs on 2 cores are 4-7x slower each
# otherwise). It changes timing, never numbers. Every job Snakemake starts inherits it (SLURM
# jobs too: sbatch exports the submitting environment by default); a value already set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

CONDA_ENV = str(Path(workflow.basedir) / "envs" / "ddpmseg.yaml")  # absolute for the same reason


def config_error(message):
    """Stops the workflow at parse time with `message` (one line naming the key) and nothing else."""
    print(message, file=sys.stderr)
    raise SystemExit(1)


with open(Path(workflow.basedir) / "schemas" / "config.schema.yaml") as _f:
    _problem = schema_problem(config, yaml.safe_load(_f))
if _problem:
    config_error(_problem)
validate(config, "../schemas/config.schema.yaml", set_default=True)
try:
    PLAN = Plan(config)
except ConfigProblem as _exc:
    config_error(str(_exc))

if PLAN.detected_formats:
    print("\n".join(f"datasets.{name}: format auto chose {fmt} ({why})" for name, (fmt, why) in PLAN.detected_formats.items()),
          file=sys.stderr)
DATASETS, METHODS, SEEDS = PLAN.datasets, PLAN.methods, PLAN.seeds
RUNS = PLAN.runs  # (dataset, method folder, seed) of Table 2's rows


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    split="train|test|unlabeled|annotated-[a-z0-9_]+",
    model=PLAN.method_key_pattern(),
    method=PLAN.method_key_pattern(),
    extraction=EXTRACTION_NAMES,
    diffusion_dir=r"diffusion(_m\d+)?",
    seed=r"\d+",
    cell=r"[A-Za-z0-9_.]+",
    labels=r"\d+",
    corruption="[a-z_]+",
    variant="per_timestep|fresh",
    step=r"\d+",
    name="[A-Za-z0-9_]+",
    pool="ddpm|unlabeled|released_ddpm|released_gan",
    batch=r"\d+",
    resplit=r"\d+",


# Params and resources.


def one_of(names):
    """A wildcard constraint matching exactly `names` (none: nothing)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


def dataset_settings(wildcards):
    """The validated settings of the wildcard's dataset."""
    return PLAN.settings(wildcards.dataset)


def ensemble_gpu(wildcards):
    """1 when the dataset's ensembles, predictions and probes run on a GPU (`ensemble.gpu`), else 0."""
    return int(dataset_settings(wildcards)["ensemble"]["gpu"])


def ensemble_mem_mb(wildcards):
    """Memory of a job that streams ensemble buffers: a buffer, the prefetched next and the cache
    of native maps, plus 2 GB."""
    settings = dataset_settings(wildcards)["ensemble"]
    return int(2 * settings["buffer_mb"] + settings["cache_mb"]) + 2000


def per_seed(path):
    """`path` for every configured seed: its {seed} filled in, its other wildcards kept."""
    return expand(path, seed=SEEDS, allow_missing=True)


def runs_own_stores(wildcards):
    """Param of the ensemble and prediction rules: whether each seed's run has stores of its own
    (per-run noise), given run-major by `Stores.method_stores`."""
    return PLAN.per_run_noise(wildcards.dataset, wildcards.method)


# Stores. A rule that reads stores takes their extraction folders as input (`folders`) and their
# paths as a param. An `auto` method's cells are known once its probe sweep (a checkpoint) has run.
folders = layout.store_folders


def sweep_cells(dataset, method):
    """The cells `auto` picks from the sweep table of `method` (`Stores.sweep_cells`)."""
    with open(checkpoints.probe_table.get(dataset=dataset, method=method).output.csv) as f:
        return choose_cells(list(csv.DictReader(f)), PLAN.settings(dataset)["features"]["auto_cells"])


PLAN.stores.sweep_cells = sweep_cells


def usable_corruptions(dataset):
    """The configured corruptions that work here (a checkpoint tries each)."""
    with open(checkpoints.corruption_check.get(dataset=dataset).output[0]) as f:
        return json.load(f)["usable"]


# Input functions.


def get_extraction_inputs(wildcards):
    """An extraction job's prepared split and its model's checkpoint (none for a source without a
    model or random weights built from settings; for the budget curve the snapshots' folder)."""
    job = PLAN.stores.extraction(wildcards.dataset, wildcards.model, wildcards.split, wildcards.extraction)
    weights = str(Path(job.checkpoint).parent) if wildcards.extraction.startswith("budget_step") else job.checkpoint
    return {"data": layout.split(wildcards.dataset, wildcards.split), **({"checkpoint": weights} if weights else {})}


def get_reliability_metrics(wildcards):
    """The metrics.json of a dataset's Table 2 runs, in the order of RUNS."""
    return [layout.run(d, key, s, "metrics.json") for d, key, s in RUNS if d == wildcards.dataset]


def get_label_next_inputs(wildcards):
    """The ranking ensemble (label_next's method and seed), the pool and the train split, the
    folders of their stores (`label_next_stores`), and for a region batch the pool's regions."""
    d, settings = wildcards.dataset, PLAN.label_next.settings(wildcards.dataset)
    regions = {"regions": layout.regions(d, "unlabeled")} if settings["unit"] == "region" else {}
    return {"model": layout.run(d, settings["method"], settings["seed"], "ensemble.pt"),
            "pool": layout.split(d, "unlabeled"), "train": layout.split(d, "train"),
            **folders(PLAN.label_next.stores(d)), **regions}


def get_active_labelling_inputs(wildcards):
    """One run of the simulated labelling loop: both labelled splits and their stores' folders."""
    d = wildcards.dataset
    return {"train": layout.split(d, "train"), "test": layout.split(d, "test"),
            **folders(PLAN.active_labelling.stores(d, int(wildcards.seed)))}


def get_resplit_inputs(wildcards):
    """One method's re-split run: the split, both labelled splits and their stores' folders."""
    d = wildcards.dataset
    return {"split": layout.experiment(d, f"resplits/split{wildcards.resplit}.json"), "train": layout.split(d, "train"),
            "test": layout.split(d, "test"), **folders(PLAN.resplits.stores(d, wildcards.method))}


def get_probe_stores(wildcards):
    """The folders of a probe's train and test stores (`Probes.cell_stores`)."""
    return folders(PLAN.probes.cell_stores(wildcards.dataset, wildcards.method, wildcards.cell))


def get_robustness_inputs(wildcards):
    """One method folder's clean ensembles and their cells, the corrupted splits' folder, and its
    model's checkpoint."""
    d, key = wildcards.dataset, wildcards.method
    weights = PLAN.model_checkpoint(d, key)
    return {"models": [layout.run(d, key, s, "ensemble.pt") for s in SEEDS],
            "features": layout.run_file(d, key, "features.json"),
            "data": layout.corrupted_test(d, wildcards.corruption), **({"checkpoint": weights} if weights else {})}


def get_robustness_scores(wildcards):
    """Every experiment method folder's scores on every usable corruption."""
    d = wildcards.dataset
    keys = dict.fromkeys(key for key, _ in PLAN.experiment_runs(d))
    return [layout.run_file(d, key, f"robustness/{c}.csv") for key in keys for c in usable_corruptions(d)]


def get_segmenter_inputs(wildcards):
    """A bundle's seed's ensemble (trained on the annotated set {name} where the rule has that
    wildcard), the cells it was trained on, the split that names the classes, and the feature
    checkpoint (where the method has one)."""
    d, weights = wildcards.dataset, PLAN.model_checkpoint(wildcards.dataset, wildcards.method)
    folder = layout.trained_on(wildcards.method, wildcards.get("name", "real"))
    return {"model": layout.run(d, folder, wildcards.seed, "ensemble.pt"),
            "features": layout.run_file(d, folder, "features.json"), "data": layout.split(d, "test"),
            **({"checkpoint": weights} if weights else {})}


def get_segment_inputs(wildcards):
    """A folder's prepared images and the chosen bundle."""
    return {"data": layout.split(wildcards.dataset, f"segment-{wildcards.name}"),
            "bundle": PLAN.segment.bundle(wildcards.dataset, wildcards.name)}


def get_pool_images(wildcards):
    """The images of one labelling job: a sample batch, or the whole unlabeled split."""
    if wildcards.pool == "ddpm":
        return layout.distill(wildcards.dataset, "ddpm", f"samples/batch{wildcards.batch}.zarr")
    return layout.split(wildcards.dataset, "unlabeled")


def get_labelled_pool(wildcards):
    """The labelled batches of one (pool, seed); a released pool is labelled once, for every seed."""
    d, pool = wildcards.dataset, wildcards.pool
    if pool.startswith("released_"):
        return [layout.distill(d, pool, "labelled/released")]
    return [layout.distill(d, pool, f"labelled/seed{wildcards.seed}/batch{b}") for b in PLAN.distill.pool_batches(d, pool)]


def get_deeplab_inputs(wildcards):
    """A DeepLab training's labelled pool, its selection, the real train split (the best epoch
    is chosen on it) and the backbone's weights where given."""
    d, weights = wildcards.dataset, PLAN.distill.settings(wildcards.dataset)["deeplab"]["backbone_weights"]
    return {"pool": get_labelled_pool(wildcards),
            "selection": layout.distill(d, wildcards.pool, f"labelled/seed{wildcards.seed}/selection.csv"),
            "valid": layout.split(d, "train"), **({"backbone": weights} if weights else {})}
