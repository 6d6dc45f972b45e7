# Config validation, the plan (ddpmseg.plan: everything computed from the config), wildcard
# constraints, and the input functions of the stage files (get_*).
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
from ddpmseg.datasets import folder_digest, manifest_digest  # noqa: E402
from ddpmseg.methods import ConfigProblem  # noqa: E402
from ddpmseg.plan import POOL_NAMES, Plan, cell_id, diffusion_dir, trained_on  # noqa: E402
from ddpmseg.sweep import choose_cells  # noqa: E402
from ddpmseg.tables import method_of as base_method  # noqa: E402  ('ddpm_m2' -> 'ddpm')


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

for _name, (_format, _why) in PLAN.detected_formats.items():
    print(f"datasets.{_name}: format auto chose {_format} ({_why})", file=sys.stderr)
DATASETS, METHODS, SEEDS = PLAN.datasets, PLAN.methods, PLAN.seeds
RUNS, DISTILL_RUNS = PLAN.runs, PLAN.distill_runs  # (dataset, method folder, seed) of Table 2's rows
TABLE3_DATASETS, TABLE4_DATASETS, BUDGET_DATASETS = PLAN.table3_datasets, PLAN.table4_datasets(), PLAN.budget_datasets()
SEGMENT_TARGETS = PLAN.segment_targets()


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    split="train|test|unlabeled|annotated-[a-z0-9_]+",
    model=PLAN.method_key_pattern(),
    method=PLAN.method_key_pattern(),
    diffusion_dir=r"diffusion(_m\d+)?",
    noise=r"\d+",
    seed=r"\d+",
    cell=r"[A-Za-z0-9_.]+",
    labels=r"\d+",
    corruption="[a-z_]+",
    variant="per_timestep|fresh",
    folder=r"noise_per_timestep|noise_fresh\d+|noise_fresh_test",
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
    """`path` (its other wildcards escaped as {{dataset}}) for every configured seed."""
    return expand(path, seed=SEEDS)


def runs_own_stores(wildcards):
    """Param of the ensemble and prediction rules: whether each seed's run has stores of its own
    (per-run noise), given run-major by `feature_stores`."""
    return PLAN.per_run_noise(wildcards.dataset, wildcards.method)


def dataset_manifest(wildcards, part="labelled"):
    """Fingerprint of the files of a user's dataset folder (names, sizes, mtimes) that one of its
    preparations reads: a param, so that a file added, removed or rewritten reruns it and all
    after it. part "labelled": the train and test images (the paper's layout: real/), "pool": the
    unlabeled images (unlabeled/); an annotation format's folder is read whole by both (its
    images without annotation are the pool). "" for folders the workflow writes itself
    (generated, unpacked), which Snakemake tracks."""
    settings = dataset_settings(wildcards)
    path = settings["path"]
    if path is None or get_dataset_source(wildcards) != path:
        return ""
    if settings["format"] is None:
        return manifest_digest(path, ("real",) if part == "labelled" else ("unlabeled",))
    folder = Path(path) if Path(path).is_dir() else Path(path).parent  # a COCO JSON: the folder around it
    extra = folder / settings["unlabeled"] if settings["unlabeled"] else None  # an absolute one stays
    return folder_digest(folder) + (folder_digest(extra) if extra else "")


def pool_manifest(wildcards):
    """`dataset_manifest` of the unlabeled pool."""
    return dataset_manifest(wildcards, "pool")


def annotated_manifest(wildcards):
    """Fingerprint of a user's annotated folder (a param: a changed file reruns its preparation)."""
    folder = PLAN.annotated_folder(wildcards.dataset, wildcards.name)
    return folder_digest(folder) if get_annotated_source(wildcards) == folder else ""


def segmenter_noise_seed(wildcards):
    """The shared-noise seed of a run's features: the run's seed under per-run noise."""
    return PLAN.noise_seed(wildcards.dataset, wildcards.method, int(wildcards.seed))


def pool_title(wildcards):
    """The title of a labelled pool's figure (param of select_pool)."""
    d = wildcards.dataset
    if wildcards.pool.startswith("released_"):
        return f"{d}: {POOL_NAMES[wildcards.pool]}, the paper's images and labels"
    labeller = f"{PLAN.distill_method(d)} seed {wildcards.seed}"
    if PLAN.labelling_set(d) != "real":
        labeller += f" trained on {PLAN.labelling_set(d)}"
    return f"{d}: {POOL_NAMES[wildcards.pool]} pool labelled by {labeller}"


# Stores chosen by checkpoints (known once the probe sweep or the corruption check has run).


def auto_cells(dataset, method):
    """The cells `auto` picks from the sweep table of `swept_method`."""
    table = checkpoints.probe_table.get(dataset=dataset, method=PLAN.swept_method(dataset, method)).output.csv
    with open(table) as f:
        return choose_cells(list(csv.DictReader(f)), PLAN.settings(dataset)["features"]["auto_cells"])


def feature_stores(dataset, key, split):
    """Store paths of one method folder's features, timestep-major and layer-minor (paper's order);
    with per-run noise every run's stores, run-major."""
    method = base_method(key)
    cells = auto_cells(dataset, method) if PLAN.is_auto(dataset, method) else PLAN.fixed_cells(dataset, method)
    return PLAN.cell_stores(dataset, key, split, cells)


def usable_corruptions(dataset):
    """The configured corruptions that work here."""
    with open(checkpoints.corruption_check.get(dataset=dataset).output[0]) as f:
        return json.load(f)["usable"]


# Input functions.


def get_dataset_source(wildcards):
    """The dataset folder: the user's path, the generated embedded dataset, or, for a path
    inside an unpacked download (resources/<name>/...), that download's folder."""
    root = PLAN.dataset_root(wildcards.dataset)
    return PLAN.written_folder(wildcards.dataset, root) or root


def get_reliability_metrics(wildcards):
    """The metrics.json of a dataset's Table 2 runs, in the order of RUNS."""
    return [f"results/{d}/{key}/seed{s}/metrics.json" for d, key, s in RUNS if d == wildcards.dataset]


def run_stores(dataset, key, split, seed):
    """`feature_stores` of one run: under per-run noise the stores of the run of `seed` (the first
    run's for a seed that is not among SEEDS), else all of them."""
    stores = feature_stores(dataset, key, split)
    if not PLAN.per_run_noise(dataset, key):
        return stores
    per_run = len(stores) // len(SEEDS)
    k = SEEDS.index(seed) if seed in SEEDS else 0
    return stores[k * per_run : (k + 1) * per_run]


def get_label_next_inputs(wildcards):
    """The ranking ensemble (label_next's method and seed), the pool and the train split, and the
    stores of both (that seed's run's)."""
    d, settings = wildcards.dataset, PLAN.label_next(wildcards.dataset)
    key, seed = settings["method"], settings["seed"]
    return {"model": f"results/{d}/{key}/seed{seed}/ensemble.pt",
            "pool": f"results/{d}/data/unlabeled.zarr", "train": f"results/{d}/data/train.zarr",
            "pool_stores": run_stores(d, key, "unlabeled", seed), "train_stores": run_stores(d, key, "train", seed)}


def get_active_labelling_inputs(wildcards):
    """One run of the simulated labelling loop: both labelled splits and the method's stores."""
    d, key = wildcards.dataset, PLAN.active_labelling(wildcards.dataset)["method"]
    return {"train": f"results/{d}/data/train.zarr", "test": f"results/{d}/data/test.zarr",
            "train_stores": run_stores(d, key, "train", int(wildcards.seed)),
            "test_stores": run_stores(d, key, "test", int(wildcards.seed))}


def get_resplit_inputs(wildcards):
    """One method's re-split run: the split, both labelled splits and the method's stores of each."""
    d, key = wildcards.dataset, wildcards.method
    return {"split": f"results/{d}/resplits/split{wildcards.resplit}.json", "train": f"results/{d}/data/train.zarr",
            "test": f"results/{d}/data/test.zarr", "train_stores": feature_stores(d, key, "train"),
            "test_stores": feature_stores(d, key, "test")}


def get_active_labelling_runs(wildcards):
    """The curves of every (strategy, seed) run of a dataset's loop."""
    return [f"results/{wildcards.dataset}/active_labelling/{strategy}/seed{seed}.csv"
            for strategy, seed in PLAN.active_labelling_runs(wildcards.dataset)]


def get_extraction_inputs(job):
    """The input function of one extraction (`job`, a `ddpmseg.plan.Extraction`), giving the prepared
    split and the model's checkpoint (none for a source without a model or random weights
    built from settings; a diffusion snapshot for the budget curve)."""

    def inputs(wildcards):
        data = f"results/{job.dataset}/data/{wildcards.split}.zarr"
        if job.kind == "budget":
            return {"data": data, "checkpoint": f"results/{job.dataset}/budget/diffusion/step{wildcards.step}.pt"}
        weights = PLAN.model_checkpoint(job.dataset, wildcards.model)
        return {"data": data, **({"checkpoint": weights} if weights else {})}

    return inputs


def get_probe_stores(wildcards):
    """The train and test stores of a probe's sweep cell."""
    cell = PLAN.sweep_cell(wildcards.dataset, wildcards.method, wildcards.cell)
    return {f"{split}_store": PLAN.store_path(wildcards.dataset, wildcards.method, split, cell["layer"], cell["timestep"])
            for split in ("train", "test")}


def get_robustness_inputs(wildcards):
    """One method folder's clean ensembles and their cells, the corrupted splits of every
    severity, and its model's checkpoint."""
    d, key = wildcards.dataset, wildcards.method
    weights = PLAN.model_checkpoint(d, key)
    return {"models": [f"results/{d}/{key}/seed{s}/ensemble.pt" for s in SEEDS],
            "features": f"results/{d}/{key}/features.json",
            "data": [f"results/{d}/data/test-{wildcards.corruption}-{s}.zarr" for s in PLAN.severities(d)],
            **({"checkpoint": weights} if weights else {})}


def get_robustness_scores(wildcards):
    """Every experiment method folder's scores on every usable corruption."""
    keys = dict.fromkeys(key for key, _ in PLAN.experiment_runs(wildcards.dataset))
    return [f"results/{wildcards.dataset}/{key}/robustness/{c}.csv" for key in keys
            for c in usable_corruptions(wildcards.dataset)]


def get_budget_metrics(wildcards):
    return [f"results/{wildcards.dataset}/" + (f"{key}/" if n is None else f"budget/step{n}/{key}/") + f"seed{s}/metrics.json"
            for key, n, s in PLAN.budget_runs(wildcards.dataset)]


def get_segmenter_inputs(wildcards):
    """A bundle's seed's ensemble (trained on the annotated set {name} where the rule has that
    wildcard), the cells it was trained on, the split that names the classes, and the feature
    checkpoint (where the method has one)."""
    weights = PLAN.model_checkpoint(wildcards.dataset, wildcards.method)
    run = f"results/{wildcards.dataset}/{trained_on(wildcards.method, wildcards.get('name', 'real'))}"
    return {"model": f"{run}/seed{wildcards.seed}/ensemble.pt", "features": f"{run}/features.json",
            "data": f"results/{wildcards.dataset}/data/test.zarr", **({"checkpoint": weights} if weights else {})}


def get_segment_inputs(wildcards):
    """A folder's prepared images and the chosen bundle."""
    return {"data": f"results/{wildcards.dataset}/data/segment-{wildcards.name}.zarr",
            "bundle": PLAN.segment_bundle(wildcards.dataset, wildcards.name)}


def get_released_source(wildcards):
    """A released synthetic dataset's .npz or folder, or the unpacked download holding it."""
    path = PLAN.released_path(wildcards.dataset, wildcards.pool)
    return PLAN.written_folder(wildcards.dataset, path) or path


def get_sampling_checkpoint(wildcards):
    """The diffusion model the ddpm pool samples: the given checkpoint, or the workflow's first."""
    return PLAN.settings(wildcards.dataset)["diffusion"]["checkpoint"] or f"results/{wildcards.dataset}/diffusion/model.pt"


def get_pool_images(wildcards):
    """The images of one labelling job: a sample batch, or the whole unlabeled split."""
    if wildcards.pool == "ddpm":
        return f"results/{wildcards.dataset}/distill_ddpm/samples/batch{wildcards.batch}.zarr"
    return f"results/{wildcards.dataset}/data/unlabeled.zarr"


def get_labelled_pool(wildcards):
    """The labelled batches of one (pool, seed); a released pool is labelled once, for every seed."""
    if wildcards.pool.startswith("released_"):
        return [f"results/{wildcards.dataset}/distill_{wildcards.pool}/labelled/released"]
    return [f"results/{wildcards.dataset}/distill_{wildcards.pool}/labelled/seed{wildcards.seed}/batch{b}"
            for b in PLAN.pool_batches(wildcards.dataset, wildcards.pool)]


def get_labelling_bundle(wildcards):
    """The bundle of the seed's ensemble that labels a pool: trained on `distill.labelled_by`."""
    folder = trained_on(PLAN.distill_method(wildcards.dataset), PLAN.labelling_set(wildcards.dataset))
    return f"results/{wildcards.dataset}/{folder}/seed{wildcards.seed}/segmenter"


def get_annotated_source(wildcards):
    """An annotated set's folder, or the folder the workflow writes that holds it."""
    folder = PLAN.annotated_folder(wildcards.dataset, wildcards.name)
    return PLAN.written_folder(wildcards.dataset, folder) or folder


def get_deeplab_inputs(wildcards):
    """A DeepLab training's labelled pool, its selection, the real train split (the best epoch
    is chosen on it) and the backbone's weights where given."""
    weights = PLAN.distill(wildcards.dataset)["deeplab"]["backbone_weights"]
    return {"pool": get_labelled_pool(wildcards),
            "selection": f"results/{wildcards.dataset}/distill_{wildcards.pool}/labelled/seed{wildcards.seed}/selection.csv",
            "valid": f"results/{wildcards.dataset}/data/train.zarr", **({"backbone": weights} if weights else {})}
