# Config validation, helpers and wildcard constraints shared by the stage files.
import csv
import re
import sys
import urllib.parse
from pathlib import Path, PurePosixPath

import yaml
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from ddpmseg.config import schema_problem, value_problems  # noqa: E402
from ddpmseg.datasets import manifest_digest  # noqa: E402
from ddpmseg.sweep import (  # noqa: E402  (light: no torch in the Snakemake process)
    choose_cells,
    decoder_block_count,
    describe_cells,
    kmeans_blocks,
    kmeans_steps,
    nearest_in_grid,
    timestep_grid,
)
from ddpmseg.tables import method_of as base_method  # noqa: E402  ('ddpm_m2' -> 'ddpm')


def config_error(message):
    """Stops the workflow at parse time with `message` (one line naming the key) and nothing else."""
    print(message, file=sys.stderr)
    raise SystemExit(1)


with open(Path(workflow.basedir) / "schemas" / "config.schema.yaml") as _f:
    _problem = schema_problem(config, yaml.safe_load(_f))
if _problem:
    config_error(_problem)
validate(config, "../schemas/config.schema.yaml", set_default=True)

# A dataset mapped to null (e.g. `creatures7: null` in a --configfile) is switched off.
config["datasets"] = {name: settings for name, settings in config["datasets"].items() if settings is not None}
if not config["datasets"]:
    config_error("config: every dataset is switched off (mapped to null); configure at least one under `datasets:`")
DATASETS = list(config["datasets"])
for _name, _settings in config["datasets"].items():
    # A checkpoint's flags may leave image_size to the dataset (shapes cannot show it).
    _flags = _settings["diffusion"]["flags"]
    _flags.setdefault("image_size", _settings["image_size"] or 64)
    _model_size = _flags["image_size"]
    _settings["image_size"] = _settings["image_size"] or _model_size
    if _settings["image_size"] != _model_size:
        config_error(
            f"config: dataset {_name!r} has image_size {_settings['image_size']} but its diffusion "
            f"model flags have image_size {_model_size}; set both to the model's resolution."
        )
for _name, _settings in config["datasets"].items():
    if (_settings["features"]["blocks"] == "auto") != (_settings["features"]["timesteps"] == "auto"):
        config_error(f"config: dataset {_name!r}: features.blocks and features.timesteps must both be "
                     "'auto' (the sweep picks (block, timestep) cells) or both be lists")
for _problem in value_problems(config):
    config_error(_problem)


def _sweep_grid(name, settings):
    """{blocks, timesteps, kmeans cells} of a dataset's probe sweep, or {problem: why there is none}."""
    probes, flags = settings["probes"], settings["diffusion"]["flags"]
    steps = probes["timesteps"] or timestep_grid(flags.get("diffusion_steps", 1000))
    blocks = probes["blocks"]
    if blocks is None:
        if settings["diffusion"]["checkpoint"] and "num_res_blocks" not in flags:
            return {"problem": f"dataset {name!r}: the number of decoder blocks of its checkpoint is not known "
                               "before it is read; give num_res_blocks (and channel_mult) in its diffusion flags, "
                               "or list probes.blocks"}
        blocks = range(decoder_block_count({"num_res_blocks": 2, "channel_mult": "", **flags}))
    blocks, steps = sorted(set(blocks)), sorted(set(steps))
    kmeans = probes["kmeans"]
    k_blocks = nearest_in_grid(kmeans["blocks"] or kmeans_blocks(max(blocks) + 1), blocks)
    k_steps = (nearest_in_grid(kmeans["timesteps"], steps) if kmeans["timesteps"]
               else kmeans_steps(flags.get("diffusion_steps", 1000), steps))
    return {"blocks": blocks, "timesteps": steps, "kmeans": [(b, t) for b in k_blocks for t in k_steps]}


SWEEPS = {name: _sweep_grid(name, settings) for name, settings in config["datasets"].items()}
for _name in DATASETS:
    if config["datasets"][_name]["features"]["blocks"] == "auto" and "problem" in SWEEPS[_name]:
        config_error(f"config: features 'auto' needs the probe sweep, but {SWEEPS[_name]['problem']}")
METHODS = config["methods"]
SEEDS = config["seeds"]
MODEL_METHODS = ["ddpm", "unet_untrained"]  # methods whose features come from a UNet
CONTROL_METHODS = ["pixels", "patch"]  # hand-made features
for _name, _settings in config["datasets"].items():
    if _settings["diffusion"]["checkpoint"] and len(_settings["diffusion"]["seeds"]) > 1:
        config_error(f"config: datasets.{_name}.diffusion.seeds lists {len(_settings['diffusion']['seeds'])} "
                     "seeds, but a given checkpoint is one model; list one seed")
_MODEL_KEY = "(" + "|".join(MODEL_METHODS) + r")(_m\d+)?"  # a model method, `_m<d>` for an extra model seed d


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    split="train|test|unlabeled",
    model=_MODEL_KEY,
    control="|".join(CONTROL_METHODS),
    method="|".join([_MODEL_KEY] + CONTROL_METHODS),
    diffusion_dir=r"diffusion(_m\d+)?",
    noise=r"\d+",
    seed=r"\d+",
    block=r"\d+",
    timestep=r"\d+",


def ds(wildcards):
    """The validated settings of the wildcard's dataset."""
    return config["datasets"][wildcards.dataset]


def ensemble_gpu(wildcards):
    """1 when the dataset's ensembles, predictions and probes run on a GPU (`ensemble.gpu`), else 0."""
    return int(ds(wildcards)["ensemble"]["gpu"])


def ensemble_mem_mb(wildcards):
    """Memory of a job that streams ensemble buffers: a buffer, the prefetched next and the cache
    of native maps, plus 2 GB."""
    settings = ds(wildcards)["ensemble"]
    return int(2 * settings["buffer_mb"] + settings["cache_mb"]) + 2000


def model_seeds(dataset):
    """The dataset's model seeds (`diffusion.seeds`), the first one's results on the plain paths."""
    return config["datasets"][dataset]["diffusion"]["seeds"]


def method_keys(dataset, method):
    """The result folders of a method: a control is one; a model method has one per model seed
    ('ddpm' for the first, 'ddpm_m<d>' for seed d of the others)."""
    if method not in MODEL_METHODS:
        return [method]
    return [method] + [f"{method}_m{d}" for d in model_seeds(dataset)[1:]]


def model_seed(dataset, key):
    """The model seed of a model method's folder: d of 'ddpm_m<d>', else the first seed."""
    match = re.search(r"_m(\d+)$", key)
    return int(match.group(1)) if match else model_seeds(dataset)[0]


def model_seed_param(dataset):
    """Param function of one dataset's extraction rule: the model seed of its {model} folder."""

    def param(wildcards):
        return model_seed(dataset, wildcards.model)

    return param


def diffusion_dir(dataset, key):
    """Where the diffusion model of a model method's folder is trained: diffusion[_m<d>]."""
    suffix = re.search(r"_m\d+$", key)
    return "diffusion" + (suffix.group(0) if suffix else "")


RUNS = [(d, key, s) for d in DATASETS for m in METHODS for key in method_keys(d, m) for s in SEEDS]


def training_outcomes():
    """The training.json of every diffusion model the workflow trains (Table 2's notes)."""
    if "ddpm" not in METHODS:
        return []
    return [f"results/{d}/{diffusion_dir(d, key)}/training.json" for d in DATASETS if trains_diffusion(d)
            for key in method_keys(d, "ddpm")]


def per_seed(path):
    """`path` (its other wildcards escaped as {{dataset}}) for every configured seed."""
    return expand(path, seed=SEEDS)


def trains_diffusion(dataset):
    return config["datasets"][dataset]["diffusion"]["checkpoint"] is None


def download_path(name):
    """Where download `name` lands: resources/downloads/<file name of its URL>."""
    url_path = urllib.parse.urlparse(config["downloads"][name]["url"]).path
    return f"resources/downloads/{PurePosixPath(url_path).name}"


def dataset_source(wildcards):
    """The dataset folder: the user's path, the generated embedded dataset, or, for a path
    inside an unpacked download (resources/<name>/...), that download's folder."""
    path = ds(wildcards)["path"]
    if path is None:
        return f"resources/{wildcards.dataset}/source"
    for name, download in config["downloads"].items():
        folder = f"resources/{name}"
        if download["unpack"] and PurePosixPath(path).is_relative_to(folder):
            return folder
    return path


def dataset_manifest(wildcards):
    """Fingerprint of every file of a user's dataset folder (names, sizes, mtimes): a param of
    the preparation, so that a file added, removed or rewritten reruns it and all after it.
    "" for folders the workflow writes itself (generated, unpacked), which Snakemake tracks."""
    path = ds(wildcards)["path"]
    return manifest_digest(path) if path is not None and dataset_source(wildcards) == path else ""


def dataset_root(wildcards):
    """The folder holding the dataset's meta.json / real/ (params of prepare_dataset)."""
    return ds(wildcards)["path"] or dataset_source(wildcards)


def per_run_noise(dataset):
    """Whether every MLP seed's run has features of its own noise (`features.noise_seed: per_run`)."""
    return config["datasets"][dataset]["features"]["noise_seed"] == "per_run"


def store_path(dataset, method, split, block, timestep, noise=None):
    """A model method's store; with per-run noise in noise<seed>/ (`noise`: the seed, default the
    first run's, whose stores the probe sweep uses)."""
    noise_folder = f"noise{SEEDS[0] if noise is None else noise}" if per_run_noise(dataset) else ""
    return str(PurePosixPath("results", dataset, "features", method, split, noise_folder,
                             f"features_b{block}_t{timestep}.zarr"))


def is_auto(dataset):
    """Whether the dataset's ensemble takes its (block, timestep) cells from the probe sweep."""
    return config["datasets"][dataset]["features"]["blocks"] == "auto"


def fixed_cells(dataset):
    """The configured (block, timestep) cells, timestep-major and block-minor (the paper's
    order); none when they are chosen by the sweep (`auto`)."""
    if is_auto(dataset):
        return []
    settings = config["datasets"][dataset]["features"]
    return [(b, t) for t in sorted(set(settings["timesteps"])) for b in sorted(set(settings["blocks"]))]


def auto_cells(dataset):
    """The cells `auto` picks from the sweep's table (a checkpoint: known once it is written)."""
    table = checkpoints.probe_table.get(dataset=dataset).output.csv
    with open(table) as f:
        return choose_cells(list(csv.DictReader(f)), config["datasets"][dataset]["features"]["auto_cells"])


def feature_stores(dataset, method, split):
    """Store paths of one method's features, timestep-major and block-minor (paper's order)."""
    if method in CONTROL_METHODS:
        return [f"results/{dataset}/features/{method}/{split}/features_{method}.zarr"]
    cells = auto_cells(dataset) if is_auto(dataset) else fixed_cells(dataset)
    if per_run_noise(dataset):  # every run's stores, run-major
        return [store_path(dataset, method, split, b, t, noise=s) for s in SEEDS for b, t in cells]
    return [store_path(dataset, method, split, b, t) for b, t in cells]


def runs_own_stores(wildcards):
    """Param of the ensemble and prediction rules: whether each seed's run has stores of its own
    (per-run noise of a model method), given run-major by `feature_stores`."""
    return per_run_noise(wildcards.dataset) and base_method(wildcards.method) in MODEL_METHODS


def extraction_settings(dataset):
    """The feature settings that change extracted values (params of the extraction rules, so
    that editing e.g. the ensemble's settings never re-extracts features)."""
    features = config["datasets"][dataset]["features"]
    return {key: features[key] for key in ("noise_device", "batch_images")}


def noise_seed_param(dataset):
    """Param function of one dataset's extraction rule: the seed of its shared noise (with
    per-run noise, the run's seed: the {noise} of its stores' folder)."""

    def param(wildcards):
        return int(wildcards.noise) if per_run_noise(dataset) else config["datasets"][dataset]["features"]["noise_seed"]

    return param


def extraction_inputs(dataset):
    """Input function of one dataset's extraction rule: its prepared split and checkpoint."""

    def inputs(wildcards):
        paths = {"data": f"results/{dataset}/data/{wildcards.split}.zarr"}
        given = config["datasets"][dataset]["diffusion"]["checkpoint"]
        if base_method(wildcards.model) == "ddpm":
            paths["checkpoint"] = given or f"results/{dataset}/{diffusion_dir(dataset, wildcards.model)}/model.pt"
        elif given:  # the untrained control takes the given checkpoint's architecture
            paths["checkpoint"] = given
        return paths

    return inputs


def sweep(wildcards):
    """The dataset's sweep grid; a clear error where it cannot be planned."""
    grid = SWEEPS[wildcards.dataset]
    if "problem" in grid:
        raise ValueError(f"config: no probe sweep for {grid['problem']}")
    return grid
