# Config validation, helpers and wildcard constraints shared by the stage files.
import csv
import json
import re
import sys
import urllib.parse
from pathlib import Path, PurePosixPath

import yaml
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from ddpmseg import backbones  # noqa: E402  (light: no torch in the Snakemake process)
from ddpmseg.config import schema_problem, value_problems  # noqa: E402
from ddpmseg.datasets import folder_digest, manifest_digest  # noqa: E402
from ddpmseg.experiments.noise import VARIANTS, folder_noise, variant_folders  # noqa: E402
from ddpmseg.methods import ConfigProblem, definitions as method_definitions, plans  # noqa: E402
from ddpmseg.sweep import choose_cells, kmeans_blocks, kmeans_steps, nearest_in_grid, timestep_grid  # noqa: E402
from ddpmseg.tables import method_of as base_method  # noqa: E402  ('ddpm_m2' -> 'ddpm')


def workflow_script(name):
    """A script's absolute path: Snakemake resolves a relative one from the file that reuses
    its rule (rules/experiments/ reuse the stage rules with `use`)."""
    return str(Path(workflow.basedir) / "workflow_scripts" / name)


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

# A dataset mapped to null (e.g. `creatures7: null` in a --configfile) is switched off.
config["datasets"] = {name: settings for name, settings in config["datasets"].items() if settings is not None}
if not config["datasets"]:
    config_error("config: every dataset is switched off (mapped to null); configure at least one under `datasets:`")
DATASETS = list(config["datasets"])
try:
    _USES_ADM = any(d["source"] == "adm" for d in method_definitions(config).values())
except ConfigProblem as _exc:
    config_error(str(_exc))
for _name, _settings in config["datasets"].items():
    # A checkpoint's flags may leave image_size to the dataset (shapes cannot show it). Without an
    # ADM method the flags do not matter: a source's input size may differ from its feature
    # resolution (a latent model's), so only the dataset's image_size counts.
    _flags = _settings["diffusion"]["flags"]
    if not _USES_ADM and _settings["image_size"]:
        _flags["image_size"] = _settings["image_size"]
    _flags.setdefault("image_size", _settings["image_size"] or 64)
    _model_size = _flags["image_size"]
    _settings["image_size"] = _settings["image_size"] or _model_size
    if _settings["image_size"] != _model_size:
        config_error(
            f"config: dataset {_name!r} has image_size {_settings['image_size']} but its diffusion "
            f"model flags have image_size {_model_size}; set both to the model's resolution."
        )
for _problem in value_problems(config):
    config_error(_problem)
try:
    PLANS = plans(config)  # {dataset: {method key: plan}}: source, settings, layers, timesteps, ... (ddpmseg.methods)
except ConfigProblem as _exc:
    config_error(str(_exc))
METHODS = list(PLANS[DATASETS[0]])
SEEDS = config["seeds"]
for _name, _settings in config["datasets"].items():
    if _settings["diffusion"]["checkpoint"] and len(_settings["diffusion"]["seeds"]) > 1:
        config_error(f"config: datasets.{_name}.diffusion.seeds lists {len(_settings['diffusion']['seeds'])} "
                     "seeds, but a given checkpoint is one model; list one seed")


def plan_of(dataset, key):
    """The plan of a method (`ddpmseg.methods.plan`) from one of its result folders ('ddpm_m2' too)."""
    return PLANS[dataset][base_method(key)]


def takes_timesteps(dataset, key):
    return backbones.source(plan_of(dataset, key)["source"]).TAKES_TIMESTEPS


def _sweep_grid(name, plan):
    """{layers, timesteps ([None] for a source without), kmeans cells} of one method's probe
    sweep, or {problem: why there is none}."""
    settings = config["datasets"][name]
    probes, flags = settings["probes"], settings["diffusion"]["flags"]
    source = backbones.source(plan["source"])
    if plan["source"] != "adm":
        layers = list(plan["table"])
        k_layers = [layers[i] for i in kmeans_blocks(len(layers))]
        if not source.TAKES_TIMESTEPS:
            return {"layers": layers, "timesteps": [None], "kmeans": [(layer, None) for layer in k_layers]}
        diffusion_steps = source.schedule_length(plan["settings"])
        steps = sorted(set(probes["timesteps"] or timestep_grid(diffusion_steps)))
        k_steps = (nearest_in_grid(probes["kmeans"]["timesteps"], steps) if probes["kmeans"]["timesteps"]
                   else kmeans_steps(diffusion_steps, steps))
        return {"layers": layers, "timesteps": steps, "kmeans": [(layer, t) for layer in k_layers for t in k_steps]}
    if settings["diffusion"]["checkpoint"] and probes["blocks"] is None and "num_res_blocks" not in flags:
        return {"problem": f"dataset {name!r}: the number of decoder blocks of its checkpoint is not known "
                           "before it is read; give num_res_blocks (and channel_mult) in its diffusion flags, "
                           "or list probes.blocks"}
    diffusion_steps = source.schedule_length(plan["settings"])
    steps = sorted(set(probes["timesteps"] or timestep_grid(diffusion_steps)))
    blocks = sorted(set(probes["blocks"])) if probes["blocks"] is not None else list(range(len(plan["table"])))
    k_blocks = nearest_in_grid(probes["kmeans"]["blocks"] or kmeans_blocks(max(blocks) + 1), blocks)
    k_steps = (nearest_in_grid(probes["kmeans"]["timesteps"], steps) if probes["kmeans"]["timesteps"]
               else kmeans_steps(diffusion_steps, steps))
    return {"layers": [f"b{b}" for b in blocks], "timesteps": steps,
            "kmeans": [(f"b{b}", t) for b in k_blocks for t in k_steps]}


SWEEPS = {name: {key: _sweep_grid(name, plan) for key, plan in PLANS[name].items()} for name in DATASETS}
for _name in DATASETS:
    for _key, _plan in PLANS[_name].items():
        if _plan["layers"] == "auto" and "problem" in SWEEPS[_name][_key]:
            config_error(f"config: method {_key} 'auto' needs the probe sweep, but {SWEEPS[_name][_key]['problem']}")


def several_layers(plan):
    """Whether a method's source has more than one layer (an ADM checkpoint whose table is known
    only once read has many)."""
    return plan["table"] is None or len(plan["table"]) > 1


def probe_methods(dataset):
    """The methods whose sweep the target `figures` draws: probes.methods, or the first method
    with more than one layer."""
    chosen = config["datasets"][dataset]["probes"]["methods"]
    if chosen is not None:
        return [m for m in chosen if m in PLANS[dataset]]
    return [key for key, plan in PLANS[dataset].items() if several_layers(plan)][:1]


def _key_pattern(keys, adm_keys):
    """A regex of result folders: the method keys, with `_m<d>` (an extra model seed) for ADM ones."""
    return "|".join([f"{k}(_m\\d+)?" for k in adm_keys] + [k for k in keys if k not in adm_keys])


_ADM_KEYS = [k for k in METHODS if PLANS[DATASETS[0]][k]["source"] == "adm"]
_METHOD_KEY = _key_pattern(METHODS, _ADM_KEYS)


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    split="train|test|unlabeled|annotated-[a-z0-9_]+",
    model=_METHOD_KEY,
    method=_METHOD_KEY,
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
    """The result folders of a method: one, or for an ADM method one per model seed ('ddpm' for
    the first, 'ddpm_m<d>' for seed d of the others)."""
    if PLANS[dataset][method]["source"] != "adm":
        return [method]
    return [method] + [f"{method}_m{d}" for d in model_seeds(dataset)[1:]]


def model_seed(dataset, key):
    """The model seed of a method's or diffusion model's folder: d of 'ddpm_m<d>' or
    'diffusion_m<d>', else its first model seed."""
    match = re.search(r"_m(\d+)$", key)
    if match:
        return int(match.group(1))
    return model_seeds(dataset)[0] if key == "diffusion" else plan_of(dataset, key)["model_seeds"][0]


def model_seed_param(dataset):
    """Param function of the extraction rules of one dataset, giving the model seed of their {model} folder."""

    def param(wildcards):
        return model_seed(dataset, wildcards.model)

    return param


def diffusion_dir(dataset, key):
    """Where the diffusion model of a model method's folder is trained: diffusion[_m<d>]."""
    suffix = re.search(r"_m\d+$", key)
    return "diffusion" + (suffix.group(0) if suffix else "")


RUNS = [(d, key, s) for d in DATASETS for m in METHODS for key in method_keys(d, m) for s in SEEDS]


def training_outcomes():
    """The training.json of every model the workflow trains (Table 2's notes): diffusion models
    of the ADM methods with trained weights, and the pretrained sources."""
    paths = []
    for d in DATASETS:
        trained_adm = [k for k in METHODS if PLANS[d][k]["source"] == "adm" and PLANS[d][k]["settings"]["weights"] == "trained"]
        if trained_adm and trains_diffusion(d):
            paths += [f"results/{d}/{diffusion_dir(d, key)}/training.json" for key in method_keys(d, trained_adm[0])]
        paths += [f"results/{d}/pretrained/{k}/training.json" for k in METHODS if PLANS[d][k]["pretrain"]]
    return paths


def per_seed(path):
    """`path` (its other wildcards escaped as {{dataset}}) for every configured seed."""
    return expand(path, seed=SEEDS)


def trains_diffusion(dataset):
    return config["datasets"][dataset]["diffusion"]["checkpoint"] is None


def download_path(name):
    """Where download `name` lands: resources/downloads/<its `file`, or the file name of its URL>."""
    download = config["downloads"][name]
    return f"resources/downloads/{download['file'] or PurePosixPath(urllib.parse.urlparse(download['url']).path).name}"


def written_folder(dataset, path):
    """The folder the workflow writes that holds `path`: the generated embedded dataset
    (resources/<dataset>/source) or an unpacked download (resources/<name>/); None for a user's file."""
    generated = f"resources/{dataset}/source"
    if config["datasets"][dataset]["path"] is None and PurePosixPath(path).is_relative_to(generated):
        return generated
    for name, download in config["downloads"].items():
        folder = f"resources/{name}"
        if download["unpack"] and PurePosixPath(path).is_relative_to(folder):
            return folder
    return None


def dataset_source(wildcards):
    """The dataset folder: the user's path, the generated embedded dataset, or, for a path
    inside an unpacked download (resources/<name>/...), that download's folder."""
    root = dataset_root_of(wildcards.dataset)
    return written_folder(wildcards.dataset, root) or root


def dataset_manifest(wildcards):
    """Fingerprint of every file of a user's dataset folder (names, sizes, mtimes): a param of
    the preparation, so that a file added, removed or rewritten reruns it and all after it.
    "" for folders the workflow writes itself (generated, unpacked), which Snakemake tracks."""
    path = ds(wildcards)["path"]
    return manifest_digest(path) if path is not None and dataset_source(wildcards) == path else ""


def dataset_root_of(dataset):
    """The folder holding a dataset's meta.json / real/: its path, or the generated one."""
    return config["datasets"][dataset]["path"] or f"resources/{dataset}/source"


def dataset_root(wildcards):
    """The folder holding the dataset's meta.json / real/ (params of prepare_dataset)."""
    return dataset_root_of(wildcards.dataset)


def per_run_noise(dataset, key):
    """Whether every MLP seed's run of a method has features of its own noise (`features.noise_seed:
    per_run`, for a source that takes timesteps)."""
    return config["datasets"][dataset]["features"]["noise_seed"] == "per_run" and takes_timesteps(dataset, key)


def store_path(dataset, key, split, layer, timestep, noise=None, method=None):
    """A store of a method's folder `key`; with per-run noise in noise<seed>/ (`noise`: the seed,
    default the first run's, whose stores the probe sweep uses). `method`: the folder's method
    where `key` is a wildcard pattern such as "{model}"."""
    per_run = per_run_noise(dataset, method or key)
    noise_folder = f"noise{SEEDS[0] if noise is None else noise}" if per_run else ""
    return str(PurePosixPath("results", dataset, "features", key, split, noise_folder,
                             backbones.store_name(layer, timestep)))


def cell_id(layer, timestep):
    """'b5_t50' or 'block3': a cell's name in the sweep's paths (its store's name, less features_ and .zarr)."""
    return backbones.store_name(layer, timestep).removeprefix("features_").removesuffix(".zarr")


def is_auto(dataset, method):
    """Whether a method's cells are chosen by the probe sweep (`auto`)."""
    return PLANS[dataset][method]["layers"] == "auto"


def fixed_cells(dataset, method):
    """The configured (layer, timestep) cells of a method, timestep-major and layer-minor (the
    paper's order; timestep None for a source without); none when the sweep chooses them."""
    plan = PLANS[dataset][method]
    if plan["layers"] == "auto":
        return []
    return [(layer, t) for t in (plan["timesteps"] or [None]) for layer in plan["layers"]]


def swept_method(dataset, method):
    """The method whose probe sweep chooses an `auto` method's cells: its own, except the random-
    weight ADM control, which takes the cells of the first trained ADM method (the same
    architecture: the paper compares them on the same cells)."""
    plan = PLANS[dataset][method]
    if plan["source"] == "adm" and plan["settings"]["weights"] == "random":
        trained = [k for k, p in PLANS[dataset].items() if p["source"] == "adm" and p["settings"]["weights"] == "trained"]
        return trained[0] if trained else method
    return method


def auto_cells(dataset, method):
    """The cells `auto` picks from the sweep table of `swept_method` (a checkpoint: known once it is written)."""
    table = checkpoints.probe_table.get(dataset=dataset, method=swept_method(dataset, method)).output.csv
    with open(table) as f:
        return choose_cells(list(csv.DictReader(f)), config["datasets"][dataset]["features"]["auto_cells"])


def feature_stores(dataset, key, split):
    """Store paths of one method folder's features, timestep-major and layer-minor (paper's order);
    with per-run noise every run's stores, run-major."""
    method = base_method(key)
    cells = auto_cells(dataset, method) if is_auto(dataset, method) else fixed_cells(dataset, method)
    if per_run_noise(dataset, key):
        return [store_path(dataset, key, split, layer, t, noise=s) for s in SEEDS for layer, t in cells]
    return [store_path(dataset, key, split, layer, t) for layer, t in cells]


def runs_own_stores(wildcards):
    """Param of the ensemble and prediction rules: whether each seed's run has stores of its own
    (per-run noise), given run-major by `feature_stores`."""
    return per_run_noise(wildcards.dataset, wildcards.method)


def extraction_settings(dataset):
    """The feature settings that change extracted values (params of the extraction rules, so
    that editing e.g. the ensemble's settings never re-extracts features)."""
    features = config["datasets"][dataset]["features"]
    return {key: features[key] for key in ("noise_device", "batch_images", "precision")}


def noise_seed_param(dataset, key):
    """Param function of an extraction rule: the seed of its shared noise (with per-run noise, the
    run's seed: the {noise} of its stores' folder)."""

    def param(wildcards):
        return int(wildcards.noise) if per_run_noise(dataset, key) else config["datasets"][dataset]["features"]["noise_seed"]

    return param


def extraction_inputs(dataset, method):
    """Input function of a method's extraction rule: the prepared split and the model's checkpoint
    (none for a source without a model, or for random ADM weights built from the flags)."""

    def inputs(wildcards):
        weights = model_checkpoint(dataset, wildcards.model)
        return {"data": f"results/{dataset}/data/{wildcards.split}.zarr", **({"checkpoint": weights} if weights else {})}

    return inputs


def model_checkpoint(dataset, key):
    """The checkpoint a method folder's model is built from, or None (a source without a model,
    random ADM weights built from the flags)."""
    plan = plan_of(dataset, key)
    if plan["source"] == "adm":
        given = config["datasets"][dataset]["diffusion"]["checkpoint"]
        if plan["settings"]["weights"] == "trained":
            return given or f"results/{dataset}/{diffusion_dir(dataset, key)}/model.pt"
        return given  # the untrained control takes a given checkpoint's architecture
    if plan["pretrain"]:
        return f"results/{dataset}/pretrained/{plan['key']}/model.pt"
    return plan["checkpoint"]


def sweep(wildcards):
    """The sweep grid of a dataset's method; a clear error where it cannot be planned."""
    grid = SWEEPS[wildcards.dataset][wildcards.method]
    if "problem" in grid:
        raise ValueError(f"config: no probe sweep for {grid['problem']}")
    return grid


def sweep_cell(wildcards):
    """{layer, timestep, depth} of the sweep cell {cell} ('b5_t50', 'block3') of a method; depth
    is the layer's index in the sweep's layers, which are in forward order (params of the probe)."""
    grid = sweep(wildcards)
    for depth, layer in enumerate(grid["layers"]):
        for t in grid["timesteps"]:
            if cell_id(layer, t) == wildcards.cell:
                return {"layer": layer, "timestep": t, "depth": depth}
    raise ValueError(f"{wildcards.cell!r} is not a cell of the sweep of {wildcards.method} on {wildcards.dataset}")


def probe_stores(wildcards):
    """Input function of a probe: the train and test stores of its sweep cell."""
    cell = sweep_cell(wildcards)
    return {f"{split}_store": store_path(wildcards.dataset, wildcards.method, split, cell["layer"], cell["timestep"])
            for split in ("train", "test")}


def described_methods(dataset):
    """The methods whose layers Table 2 names: those of a source with more than one layer."""
    return [m for m in METHODS if several_layers(PLANS[dataset][m])]


# The experiments beyond Table 2 (rules/experiments/).


def experiment_methods(dataset):
    """The methods a dataset's experiments run for (`experiments.methods`, default all)."""
    chosen = config["datasets"][dataset]["experiments"]["methods"]
    return [m for m in METHODS if chosen is None or m in chosen]


def experiment_runs(dataset):
    """(method folder, seed) of every run of the dataset's experiment methods."""
    return [(key, s) for m in experiment_methods(dataset) for key in method_keys(dataset, m) for s in SEEDS]


def label_counts(dataset):
    """Table 4's labelled-image counts below the whole train split, falling."""
    return sorted(config["datasets"][dataset]["experiments"]["labels"], reverse=True)


TABLE4_DATASETS = [d for d in DATASETS if label_counts(d)]


def table4_runs():
    """(dataset, method folder, labels (None: the whole split, Table 2's run), seed) of Table 4,
    for the datasets that list `experiments.labels`."""
    return [(d, key, n, s) for d in TABLE4_DATASETS for n in [None, *label_counts(d)] for key, s in experiment_runs(d)]


def table4_metrics(runs):
    """The metrics.json of Table 4's runs: Table 2's for the whole split."""
    return [f"results/{d}/{key}/" + ("" if n is None else f"labels{n}/") + f"seed{s}/metrics.json" for d, key, n, s in runs]


def severities(dataset):
    """Figure 6's corruption severities of a dataset (`experiments.severities`)."""
    return config["datasets"][dataset]["experiments"]["severities"]


def corrupted_split(dataset, corruption, severity):
    return f"results/{dataset}/data/test-{corruption}-{severity}.zarr"


def usable_corruptions(dataset):
    """The configured corruptions that work here (a checkpoint: known once it has run)."""
    with open(checkpoints.corruption_check.get(dataset=dataset).output[0]) as f:
        return json.load(f)["usable"]


def robustness_inputs(wildcards):
    """Input function of one method folder's scores on one corruption: its clean ensembles and
    their cells, the corrupted splits of every severity, and its model's checkpoint."""
    d, key = wildcards.dataset, wildcards.method
    weights = model_checkpoint(d, key)
    return {"models": [f"results/{d}/{key}/seed{s}/ensemble.pt" for s in SEEDS],
            "features": f"results/{d}/{key}/features.json",
            "data": [corrupted_split(d, wildcards.corruption, s) for s in severities(d)],
            **({"checkpoint": weights} if weights else {})}


def robustness_scores(wildcards):
    """Input function of a dataset's robustness.csv: every experiment method folder's scores on
    every usable corruption."""
    keys = dict.fromkeys(key for key, _ in experiment_runs(wildcards.dataset))
    return [f"results/{wildcards.dataset}/{key}/robustness/{c}.csv" for key in keys for c in usable_corruptions(wildcards.dataset)]


def noise_methods(dataset):
    """Table 5's methods: the experiment methods of a source that takes timesteps, with configured
    cells (an `auto` method's cells are known only after its sweep: it has no Table 5 rows)."""
    return [m for m in experiment_methods(dataset) if takes_timesteps(dataset, m) and not is_auto(dataset, m)]


def noise_base_seed(dataset):
    """The seed Table 5's variants derive theirs from: features.noise_seed (0 under per_run)."""
    seed = config["datasets"][dataset]["features"]["noise_seed"]
    return seed if isinstance(seed, int) else 0


def variant_stores(dataset, key, split, variant):
    """The stores of a method folder's features of one split under a Table 5 noise variant:
    its cells in Table 2's order, for fresh train features every draw's, draw-major."""
    draws = config["datasets"][dataset]["experiments"]["noise_draws"]
    return [f"results/{dataset}/features/{key}/{split}/{folder}/{backbones.store_name(layer, t)}"
            for folder in variant_folders(variant, split, draws) for layer, t in fixed_cells(dataset, base_method(key))]


def table5_runs():
    """(dataset, method folder, variant, seed) of Table 5; the shared variant is Table 2's run."""
    return [(d, key, v, s) for d in DATASETS for m in noise_methods(d) for key in method_keys(d, m)
            for v in VARIANTS for s in SEEDS]


def table5_metrics(runs):
    return [f"results/{d}/{key}/" + ("" if v == "shared" else f"noise_{v}/") + f"seed{s}/metrics.json" for d, key, v, s in runs]


def budget_steps(dataset):
    """The budget curve's snapshot steps of a dataset (`experiments.budget_steps`), rising."""
    return sorted(config["datasets"][dataset]["experiments"]["budget_steps"])


def budget_method(dataset):
    """The method the budget curve follows: the first experiment method of trained ADM weights
    from the workflow's own training with configured cells; None where there is none."""
    for m in experiment_methods(dataset):
        plan = PLANS[dataset][m]
        if plan["source"] == "adm" and plan["settings"]["weights"] == "trained" and trains_diffusion(dataset) and not is_auto(dataset, m):
            return m
    return None


BUDGET_DATASETS = [d for d in DATASETS if budget_steps(d) and budget_method(d)]


def budget_stores(dataset, split, step):
    return [f"results/{dataset}/budget/features/step{step}/{split}/{backbones.store_name(layer, t)}"
            for layer, t in fixed_cells(dataset, budget_method(dataset))]


def budget_runs(dataset):
    """(method folder, step (None: Table 2's run of a control), seed) of a dataset's budget curve:
    the followed method at every snapshot, every other experiment method from Table 2."""
    followed = budget_method(dataset)
    controls = [(key, None, s) for key, s in experiment_runs(dataset) if base_method(key) != followed]
    return [(followed, n, s) for n in budget_steps(dataset) for s in SEEDS] + controls


def budget_metrics(wildcards):
    return [f"results/{wildcards.dataset}/" + (f"{key}/" if n is None else f"budget/step{n}/{key}/") + f"seed{s}/metrics.json"
            for key, n, s in budget_runs(wildcards.dataset)]


def segment_folders(dataset):
    """{name: {path, model, method, seed}} of a dataset's `segment` folders, defaults filled in
    (a bare folder: the first method's ensemble of the first seed)."""
    folders = {}
    for name, given in config["datasets"][dataset]["segment"].items():
        spec = {"path": given} if isinstance(given, str) else dict(given)
        spec = {"model": "ensemble", **spec, "method": spec.get("method") or METHODS[0],
                "seed": SEEDS[0] if spec.get("seed") is None else spec["seed"]}
        where = f"config: datasets.{dataset}.segment.{name}"
        if base_method(spec["method"]) not in PLANS[dataset] or spec["method"] not in method_keys(dataset, base_method(spec["method"])):
            config_error(f"{where}.method is {spec['method']!r}, not a method of this dataset; give one of "
                         f"{', '.join(k for m in PLANS[dataset] for k in method_keys(dataset, m))}")
        if spec["seed"] not in SEEDS:
            config_error(f"{where}.seed is {spec['seed']}, not one of the seeds {SEEDS}; give one of them")
        folders[name] = spec
    return folders


SEGMENT_TARGETS = [f"results/{d}/segment/{name}" for d in DATASETS for name in segment_folders(d)]


def segmenter_inputs(wildcards):
    """Input function of a bundle: the seed's ensemble (trained on the annotated set {name}
    where the rule has that wildcard), the cells it was trained on, the split that names the
    classes, and the feature checkpoint (where the method has one)."""
    weights = model_checkpoint(wildcards.dataset, wildcards.method)
    run = f"results/{wildcards.dataset}/{trained_on(wildcards.method, wildcards.get('name', 'real'))}"
    return {"model": f"{run}/seed{wildcards.seed}/ensemble.pt", "features": f"{run}/features.json",
            "data": f"results/{wildcards.dataset}/data/test.zarr", **({"checkpoint": weights} if weights else {})}


def segmenter_noise_seed(wildcards):
    """The shared-noise seed of a run's features: the run's seed under per-run noise."""
    if per_run_noise(wildcards.dataset, wildcards.method):
        return int(wildcards.seed)
    return config["datasets"][wildcards.dataset]["features"]["noise_seed"]


def segment_spec(wildcards):
    return segment_folders(wildcards.dataset)[wildcards.name]


def segment_inputs(wildcards):
    """Input function of a folder's segmentation: its prepared images and the chosen bundle."""
    spec = segment_spec(wildcards)
    if spec["model"] == "deeplab":
        pools = config["datasets"][wildcards.dataset]["distill"]["pools"]
        if not pools:
            config_error(f"config: datasets.{wildcards.dataset}.segment.{wildcards.name} asks for model deeplab, but "
                         f"datasets.{wildcards.dataset}.distill.pools is empty; list ddpm or unlabeled there")
        bundle = f"results/{wildcards.dataset}/distill_{pools[0]}/seed{spec['seed']}/segmenter"
    else:
        bundle = f"results/{wildcards.dataset}/{spec['method']}/seed{spec['seed']}/segmenter"
    return {"data": f"results/{wildcards.dataset}/data/segment-{wildcards.name}.zarr", "bundle": bundle}


# Distillation into DeepLab: DatasetDDPM and the unlabeled pool (rules/distill.smk).

POOL_NAMES = {"ddpm": "DatasetDDPM", "unlabeled": "DDPM -> DeepLab (unlabeled)",  # Table 2 rows
              "released_ddpm": "DatasetDDPM (released)", "released_gan": "DatasetGAN (released)"}


def distill(dataset):
    return config["datasets"][dataset]["distill"]


def distill_method(dataset):
    """The method whose ensembles label a dataset's pools (`distill.method`, default the first)."""
    method = distill(dataset)["method"] or METHODS[0]
    if method not in PLANS[dataset]:
        config_error(f"config: datasets.{dataset}.distill.method is {method!r}, not a method; give one of "
                     f"{', '.join(PLANS[dataset])}")
    return method


def distill_seeds(dataset):
    seeds = distill(dataset)["seeds"] or SEEDS
    if not set(seeds) <= set(SEEDS):
        config_error(f"config: datasets.{dataset}.distill.seeds {seeds} are not all among the seeds {SEEDS}; "
                     "list some of those")
    return seeds


def sample_batches(dataset):
    """The number of sampling (and labelling) jobs of a dataset's ddpm pool."""
    settings = distill(dataset)
    return -(-settings["n_samples"] // settings["sample_batch"])


def pool_batches(dataset, pool):
    """Batch indices of a pool's labelling jobs: one per sample batch; the unlabeled pool is one job."""
    return list(range(sample_batches(dataset))) if pool == "ddpm" else [0]


def labelling_set(dataset):
    """The annotated images the labelling ensembles are trained on (`distill.labelled_by`):
    'real' (the train split) or the name of one of the dataset's `annotated` sets."""
    chosen = distill(dataset)["labelled_by"]
    if chosen != "real" and chosen not in config["datasets"][dataset]["annotated"]:
        config_error(f"config: datasets.{dataset}.distill.labelled_by is {chosen!r}, not real nor a name of its "
                     f"annotated sets ({', '.join(config['datasets'][dataset]['annotated']) or 'none'}); give one")
    return chosen


def released_source(wildcards):
    """Input of a released synthetic dataset's conversion: its .npz or folder (`distill.released`),
    or the unpacked download holding it."""
    kind = wildcards.pool.removeprefix("released_")
    path = distill(wildcards.dataset)["released"].get(kind)
    if path is None:
        config_error(f"config: datasets.{wildcards.dataset}.distill.pools lists {wildcards.pool}, but "
                     f"distill.released.{kind} is not set; give the released .npz (or its unpacked folder)")
    return written_folder(wildcards.dataset, path) or path


DISTILL_RUNS = [(d, f"distill_{pool}", s) for d in DATASETS for pool in distill(d)["pools"] for s in distill_seeds(d)]


def sampling_checkpoint(wildcards):
    """The diffusion model the ddpm pool samples: the given checkpoint, or the workflow's first."""
    return config["datasets"][wildcards.dataset]["diffusion"]["checkpoint"] or f"results/{wildcards.dataset}/diffusion/model.pt"


def pool_images(wildcards):
    """The images of one labelling job: a sample batch, or the whole unlabeled split."""
    if wildcards.pool == "ddpm":
        return f"results/{wildcards.dataset}/distill_ddpm/samples/batch{wildcards.batch}.zarr"
    return f"results/{wildcards.dataset}/data/unlabeled.zarr"


def labelled_pool(wildcards):
    """The labelled batches of one (pool, seed); a released pool is labelled once, for every seed."""
    if wildcards.pool.startswith("released_"):
        return [f"results/{wildcards.dataset}/distill_{wildcards.pool}/labelled/released"]
    return [f"results/{wildcards.dataset}/distill_{wildcards.pool}/labelled/seed{wildcards.seed}/batch{b}"
            for b in pool_batches(wildcards.dataset, wildcards.pool)]


def pool_title(wildcards):
    """The title of a labelled pool's figure (param of select_pool)."""
    if wildcards.pool.startswith("released_"):
        return f"{wildcards.dataset}: {POOL_NAMES[wildcards.pool]}, the paper's images and labels"
    labeller = f"{distill_method(wildcards.dataset)} seed {wildcards.seed}"
    if labelling_set(wildcards.dataset) != "real":
        labeller += f" trained on {labelling_set(wildcards.dataset)}"
    return f"{wildcards.dataset}: {POOL_NAMES[wildcards.pool]} pool labelled by {labeller}"


def labelling_bundle(wildcards):
    """The bundle of the seed's ensemble that labels a pool: trained on `distill.labelled_by`."""
    folder = trained_on(distill_method(wildcards.dataset), labelling_set(wildcards.dataset))
    return f"results/{wildcards.dataset}/{folder}/seed{wildcards.seed}/segmenter"


# Extra annotated training sets and Table 3 (rules/experiments/annotated.smk).


def trained_on(key, train):
    """The result folder of a method folder's ensembles trained on `train`: the key itself for
    'real' (Table 2's), else '<key>/trained_on_<annotated set>'."""
    return key if train == "real" else f"{key}/trained_on_{train}"


def annotated_folder(dataset, name):
    """The folder of a dataset's annotated set `name`: below the dataset's path, or absolute."""
    folder = PurePosixPath(config["datasets"][dataset]["annotated"][name])
    return str(folder if folder.is_absolute() else PurePosixPath(dataset_root_of(dataset)) / folder)


def annotated_source(wildcards):
    """Input of an annotated set's preparation: its folder, or the folder the workflow writes that holds it."""
    folder = annotated_folder(wildcards.dataset, wildcards.name)
    return written_folder(wildcards.dataset, folder) or folder


def annotated_manifest(wildcards):
    """Fingerprint of a user's annotated folder (a param: a changed file reruns its preparation)."""
    folder = annotated_folder(wildcards.dataset, wildcards.name)
    return folder_digest(folder) if annotated_source(wildcards) == folder else ""


def table3_runs(dataset):
    """(row, training data, metrics.json) of every run of a dataset's Table 3: the distill
    method's ensembles trained on the real train split and on each annotated set; DatasetDDPM
    under the training data of its labelling ensembles; the released pools under ddpm / gan."""
    method = distill_method(dataset)
    runs = [(PLANS[dataset][method]["name"], train, f"results/{dataset}/{trained_on(key, train)}/seed{s}/metrics.json")
            for train in ["real", *config["datasets"][dataset]["annotated"]] for key in method_keys(dataset, method)
            for s in SEEDS]
    for pool, train in (("ddpm", None), ("released_ddpm", "ddpm"), ("released_gan", "gan")):
        if pool in distill(dataset)["pools"]:
            runs += [(POOL_NAMES[pool], train or labelling_set(dataset), f"results/{dataset}/distill_{pool}/seed{s}/metrics.json")
                     for s in distill_seeds(dataset)]
    return runs


TABLE3_DATASETS = [d for d in DATASETS if config["datasets"][d]["annotated"] or set(distill(d)["pools"]) - {"unlabeled"}]


def deeplab_inputs(wildcards):
    """Input function of a DeepLab training: the labelled pool, its selection, the real train
    split (the best epoch is chosen on it) and the backbone's weights where given."""
    weights = distill(wildcards.dataset)["deeplab"]["backbone_weights"]
    return {"pool": labelled_pool(wildcards),
            "selection": f"results/{wildcards.dataset}/distill_{wildcards.pool}/labelled/seed{wildcards.seed}/selection.csv",
            "valid": f"results/{wildcards.dataset}/data/train.zarr", **({"backbone": weights} if weights else {})}
