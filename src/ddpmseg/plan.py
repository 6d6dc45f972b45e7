"""The workflow's plan: the validated config turned into everything the rules need, computed
once when the Snakefile is parsed and testable without Snakemake.

`Plan(config)` takes the config after Snakemake's schema validation (defaults set), normalises
it (datasets mapped to null dropped, each dataset's image size settled with its diffusion
flags), runs the checks that the schema cannot make, plans every method on every dataset
(`ddpmseg.methods`) and its probe sweep, and answers the rules' questions: which result folders
a method has, where a store lives, which runs make Table 2 and the experiments, which
extraction rules exist. Every problem is a `ConfigProblem`: one line naming the key and the fix.

Vocabulary: a *method* is a row of Table 2 (`methods:`); a method *folder* (key) is a method's
result folder, one per model seed for a source that has them (`ddpm`, `ddpm_m2`); a *cell* is
a (layer, timestep) pair, timestep None for a source without; a *run* is one (dataset, method
folder, seed).
"""

import re
import urllib.parse
from dataclasses import dataclass
from pathlib import PurePosixPath

from ddpmseg import backbones
from ddpmseg.backbones.defaults import SweepProblem
from ddpmseg.config import value_problems
from ddpmseg.experiments.noise import VARIANTS, folder_noise, variant_folders
from ddpmseg.formats.export import EXPORT_FORMATS
from ddpmseg.methods import ConfigProblem, definitions, plans
from ddpmseg.sweep import kmeans_steps, nearest_in_grid, timestep_grid
from ddpmseg.tables import method_of as base_method  # 'ddpm_m2' -> 'ddpm'

POOL_NAMES = {"ddpm": "DatasetDDPM", "unlabeled": "DDPM -> DeepLab (unlabeled)",  # Table 2 rows
              "released_ddpm": "DatasetDDPM (released)", "released_gan": "DatasetGAN (released)"}


def cell_id(layer: str, timestep: int | None) -> str:
    """'b5_t50' or 'block3': a cell's name in the sweep's paths (its store's name, less features_ and .zarr)."""
    return backbones.store_name(layer, timestep).removeprefix("features_").removesuffix(".zarr")


def diffusion_dir(key: str) -> str:
    """Where the diffusion model of a method folder is trained: diffusion[_m<d>]."""
    suffix = re.search(r"_m\d+$", key)
    return "diffusion" + (suffix.group(0) if suffix else "")


def trained_on(key: str, train: str) -> str:
    """The result folder of a method folder's ensembles trained on `train`: the key itself for
    'real' (Table 2's), else '<key>/trained_on_<annotated set>'."""
    return key if train == "real" else f"{key}/trained_on_{train}"


@dataclass(frozen=True)
class Extraction:
    """One extraction rule (rules/features.smk): the stores of one method on one dataset, for
    one kind of run. `outputs`: store paths with wildcards ({model}, {split}, and {noise},
    {folder} or {step}); `kind`: "table2" (the method's cells), "sweep" (the probe sweep's other
    layers at one timestep), "noise" (Table 5's variants) or "budget" (a diffusion snapshot)."""

    name: str
    kind: str
    dataset: str
    method: str
    layers: list
    timesteps: list | None
    outputs: list
    log: str
    constraints: dict


def settled_formats(config: dict) -> dict:
    """Every dataset's `format: auto` replaced by the format its folder is in (`formats.detect`;
    the paper's layout: null). Returns {dataset: (format name or 'paper', why)} of those settled;
    ConfigProblem naming the dataset when its folder fits no format or several."""
    from ddpmseg.datasets import DatasetError
    from ddpmseg.formats.detect import PAPER, detect

    settled = {}
    for name, settings in config["datasets"].items():
        if settings is None or settings["format"] != "auto":
            continue
        if settings["path"] is None:
            raise ConfigProblem(f"config: datasets.{name}.format: auto needs the dataset's `path`")
        try:
            fmt, why = detect(settings["path"])
        except DatasetError as exc:
            raise ConfigProblem(f"config: datasets.{name}.format: auto: {exc}") from exc
        settings["format"] = None if fmt == PAPER else fmt
        settled[name] = (fmt, why)
    return settled


def normalised(config: dict) -> dict:
    """The config with datasets mapped to null dropped and every dataset's image_size settled:
    a dataset's diffusion flags give it where the dataset does not, and where a method uses the
    dataset's diffusion model the two must agree (a source whose model is not the dataset's may
    take another input size than its features' resolution). Changes `config` in place."""
    config["datasets"] = {name: settings for name, settings in config["datasets"].items() if settings is not None}
    if not config["datasets"]:
        raise ConfigProblem("config: every dataset is switched off (mapped to null); configure at least one under "
                            "`datasets:`")
    uses_diffusion = any(backbones.source(d["source"]).DIFFUSION_STAGE for d in definitions(config).values())
    for name, settings in config["datasets"].items():
        flags = settings["diffusion"]["flags"]
        if not uses_diffusion and settings["image_size"]:
            flags["image_size"] = settings["image_size"]
        flags.setdefault("image_size", settings["image_size"] or 64)
        settings["image_size"] = settings["image_size"] or flags["image_size"]
        if settings["image_size"] != flags["image_size"]:
            raise ConfigProblem(f"config: dataset {name!r} has image_size {settings['image_size']} but its diffusion "
                                f"model flags have image_size {flags['image_size']}; set both to the model's "
                                "resolution.")
    for problem in value_problems(config):
        raise ConfigProblem(problem)
    return config


def deeplab_auto_input_size(image_size: int) -> int:
    """`distill.deeplab.input_size: auto`: the image size, at least 128 pixels (FASSEG's 64x64
    heads: 17.9 -> 28.7 mIoU with recalibrate_batchnorm, docs/results.md)."""
    return max(image_size, 128)


class Plan:
    """Everything the rules need of a config (see the module's docstring)."""

    def __init__(self, config: dict):
        self.detected_formats = settled_formats(config)  # {dataset: (format, why)} of `format: auto`
        self.config = normalised(config)
        self.datasets = list(config["datasets"])
        self.plans = plans(config)  # {dataset: {method: ddpmseg.methods.plan}}
        self.methods = list(self.plans[self.datasets[0]])
        self.seeds = config["seeds"]
        for name in self.datasets:
            seeds = self.settings(name)["diffusion"]["seeds"]
            if self.settings(name)["diffusion"]["checkpoint"] and len(seeds) > 1:
                raise ConfigProblem(f"config: datasets.{name}.diffusion.seeds lists {len(seeds)} seeds, but a given "
                                    "checkpoint is one model; list one seed")
        self.sweeps = {name: {key: self._sweep_grid(name, plan) for key, plan in self.plans[name].items()}
                       for name in self.datasets}
        for name in self.datasets:
            for key, plan in self.plans[name].items():
                if plan["layers"] == "auto" and "problem" in self.sweeps[name][key]:
                    raise ConfigProblem(f"config: method {key} 'auto' needs the probe sweep, but "
                                        f"{self.sweeps[name][key]['problem']}")
        for name in self.unpacked_downloads():
            if not self.download_path(name).endswith((".tar.gz", ".tgz", ".tar", ".zip")):
                raise ConfigProblem(f"config: download {name!r} has unpack: true but {self.download_path(name)} is not a "
                                    ".tar.gz, .tgz, .tar or .zip archive")
        files = self.download_files()
        if len(set(files)) < len(files):
            raise ConfigProblem(f"config: downloads: two entries land at resources/downloads/"
                                f"{next(f for f in files if files.count(f) > 1)}; give one of them another `file`")
        self.runs = [(d, key, s) for d in self.datasets for m in self.methods for key in self.method_keys(d, m)
                     for s in self.seeds]
        self.segment = {d: self._segment_folders(d) for d in self.datasets}
        self.distill_runs = [(d, f"distill_{pool}", s) for d in self.datasets for pool in self.distill(d)["pools"]
                             for s in self.distill_seeds(d)]
        self.table3_datasets = [d for d in self.datasets if self.settings(d)["annotated"]
                                or set(self.distill(d)["pools"]) - {"unlabeled"}]
        for d in self.datasets:
            if self.distill(d)["pools"] or d in self.table3_datasets:  # checked now: they raise ConfigProblem
                self.distill_method(d)
                self.labelling_set(d)
            for pool in self.distill(d)["pools"]:
                if pool.startswith("released_"):
                    self.released_path(d, pool)
            self.label_next(d)  # checked now: they raise ConfigProblem
            self.active_labelling(d)

    # --- datasets and methods

    def settings(self, dataset: str) -> dict:
        """The validated settings of a dataset (`datasets.<name>`)."""
        return self.config["datasets"][dataset]

    def plan_of(self, dataset: str, key: str) -> dict:
        """The plan of a method from one of its result folders ('ddpm_m2' too)."""
        return self.plans[dataset][base_method(key)]

    def source_of(self, dataset: str, key: str):
        """The source module (`backbones.contract.FeatureSource`) of a method folder."""
        return backbones.source(self.plan_of(dataset, key)["source"])

    def takes_timesteps(self, dataset: str, key: str) -> bool:
        return self.source_of(dataset, key).TAKES_TIMESTEPS

    def model_seeds(self, dataset: str) -> list:
        """The dataset's model seeds (`diffusion.seeds`), the first one's results on the plain paths."""
        return self.settings(dataset)["diffusion"]["seeds"]

    def method_keys(self, dataset: str, method: str) -> list:
        """The result folders of a method: one, or for a source with model seeds one per seed
        ('ddpm' for the first, 'ddpm_m<d>' for seed d of the others)."""
        if not backbones.source(self.plans[dataset][method]["source"]).HAS_MODEL_SEEDS:
            return [method]
        return [method] + [f"{method}_m{d}" for d in self.model_seeds(dataset)[1:]]

    def model_seed(self, dataset: str, key: str) -> int:
        """The model seed of a method's or diffusion model's folder: d of 'ddpm_m<d>' or
        'diffusion_m<d>', else its first model seed."""
        match = re.search(r"_m(\d+)$", key)
        if match:
            return int(match.group(1))
        return self.model_seeds(dataset)[0] if key == "diffusion" else self.plan_of(dataset, key)["model_seeds"][0]

    def run_model_seed(self, dataset: str, key: str) -> int | None:
        """The model seed a table names for a method folder's runs: None for a source without model seeds."""
        return self.model_seed(dataset, key) if self.source_of(dataset, key).HAS_MODEL_SEEDS else None

    def method_key_pattern(self) -> str:
        """A regex of method folders: the method keys, with `_m<d>` for sources with model seeds."""
        first = self.datasets[0]
        return "|".join(f"{m}(_m\\d+)?" if backbones.source(self.plans[first][m]["source"]).HAS_MODEL_SEEDS else m
                        for m in self.methods)

    def names(self) -> dict:
        """{method: its row name in the tables}."""
        return {m: self.plans[self.datasets[0]][m]["name"] for m in self.methods}

    def trains_diffusion(self, dataset: str) -> bool:
        """Whether the workflow trains the dataset's diffusion model (no checkpoint given)."""
        return self.settings(dataset)["diffusion"]["checkpoint"] is None

    def needs_unlabeled(self, dataset: str) -> bool:
        """Whether a dataset's unlabeled images are read: the workflow trains its diffusion model,
        pretrains a method's source on them, distils the ensembles' labels of them into DeepLab,
        or ranks them for labelling (`label_next`)."""
        return (self.trains_diffusion(dataset) or any(p["pretrain"] for p in self.plans[dataset].values())
                or "unlabeled" in self.distill(dataset)["pools"] or self.label_next(dataset) is not None)

    def label_next(self, dataset: str) -> dict | None:
        """A dataset's `label_next` settings with method, seed and format settled (None: off).
        format: 'paper' (the paper's layout: NAME + NAME.npy), 'palette' or an export format."""
        given = self.settings(dataset)["label_next"]
        if not given["count"]:
            return None
        where = f"config: datasets.{dataset}.label_next"
        method = given["method"] or self.methods[0]
        if method not in self.plans[dataset]:
            raise ConfigProblem(f"{where}.method is {method!r}, not a method; give one of {', '.join(self.plans[dataset])}")
        seed = self.seeds[0] if given["seed"] is None else given["seed"]
        if seed not in self.seeds:
            raise ConfigProblem(f"{where}.seed is {seed}, not one of the seeds {self.seeds}; give one of them")
        own = self.settings(dataset)["format"]
        fmt = given["format"] or ("paper" if own is None else own if own in EXPORT_FORMATS else "palette")
        return {**given, "method": method, "seed": seed, "format": fmt}

    def label_next_targets(self) -> list:
        """The rankings the main target makes: one per dataset whose `label_next` is set."""
        return [f"results/{d}/label_next/ranking.csv" for d in self.datasets if self.label_next(d) is not None]

    def stage_trained_methods(self, dataset: str) -> list:
        """The methods whose model the diffusion stage trains (rules/diffusion.smk) on this dataset."""
        return [m for m in self.methods if self.plans[dataset][m]["stage_trained"]]

    def training_outcomes(self) -> list:
        """(dataset, training.json) of every model the workflow trains (Table 2's notes): the
        diffusion models of the stage-trained methods and the pretrained sources."""
        outcomes = []
        for d in self.datasets:
            trained = self.stage_trained_methods(d)
            if trained and self.trains_diffusion(d):
                outcomes += [(d, f"results/{d}/{diffusion_dir(key)}/training.json") for key in self.method_keys(d, trained[0])]
            outcomes += [(d, f"results/{d}/pretrained/{m}/training.json") for m in self.methods if self.plans[d][m]["pretrain"]]
        return outcomes

    def model_checkpoint(self, dataset: str, key: str) -> str | None:
        """The checkpoint a method folder's model is built from, or None (a source without a
        model, random weights built from the settings)."""
        plan = self.plan_of(dataset, key)
        if plan["stage_trained"]:
            return plan["checkpoint"] or f"results/{dataset}/{diffusion_dir(key)}/model.pt"
        if plan["pretrain"]:
            return f"results/{dataset}/pretrained/{plan['key']}/model.pt"
        return plan["checkpoint"]

    def diffusion_trainings(self) -> list:
        """The diffusion training rules (rules/diffusion.smk): {name, folder, snapshot steps,
        wildcard constraints, log, figure label}: one for every model seed folder
        (diffusion[_m<d>]), and per budget dataset one run to its last snapshot step that keeps
        the EMA weights at each snapshot step."""
        return [{"name": "train_diffusion", "folder": "results/{dataset}/{diffusion_dir}", "steps": [],
                 "constraints": {}, "log": "train_diffusion/{dataset}_{diffusion_dir}", "label": "{diffusion_dir}"}] + [
            {"name": f"train_diffusion_budget_{d}", "folder": "results/{dataset}/budget/diffusion",
             "steps": self.budget_steps(d), "constraints": {"dataset": d}, "log": "train_diffusion_budget/{dataset}",
             "label": "budget curve"} for d in self.budget_datasets()]

    def diffusion_train(self, dataset: str, snapshot_steps: list) -> dict:
        """The training settings of a diffusion run (`diffusion.train` less threads); a budget run
        trains to its last snapshot step."""
        train = {k: v for k, v in self.settings(dataset)["diffusion"]["train"].items() if k != "threads"}
        return {**train, "max_steps": snapshot_steps[-1]} if snapshot_steps else train

    # --- the dataset's files

    def download_path(self, name: str) -> str:
        """Where download `name` lands: resources/downloads/<its `file`, or the file name of its URL>."""
        download = self.config["downloads"][name]
        return f"resources/downloads/{download['file'] or PurePosixPath(urllib.parse.urlparse(download['url']).path).name}"

    def download_of(self, file: str) -> dict:
        """The `downloads` entry that lands at resources/downloads/<file>."""
        return next(d for name, d in self.config["downloads"].items() if self.download_path(name).endswith(f"/{file}"))

    def download_files(self) -> list:
        """The file names under resources/downloads/ of every configured download."""
        return [PurePosixPath(self.download_path(name)).name for name in self.config["downloads"]]

    def unpacked_downloads(self) -> list:
        """The downloads extracted to resources/<name>/ (`unpack: true`)."""
        return [name for name, download in self.config["downloads"].items() if download["unpack"]]

    def dataset_root(self, dataset: str) -> str:
        """The folder holding a dataset's meta.json / real/: its path, or the generated one."""
        return self.settings(dataset)["path"] or f"resources/{dataset}/source"

    def written_folder(self, dataset: str, path: str) -> str | None:
        """The folder the workflow writes that holds `path`: the generated embedded dataset
        (resources/<dataset>/source) or an unpacked download (resources/<name>/); None for a user's file."""
        generated = f"resources/{dataset}/source"
        if self.settings(dataset)["path"] is None and PurePosixPath(path).is_relative_to(generated):
            return generated
        for name, download in self.config["downloads"].items():
            if download["unpack"] and PurePosixPath(path).is_relative_to(f"resources/{name}"):
                return f"resources/{name}"
        return None

    def annotated_folder(self, dataset: str, name: str) -> str:
        """The folder of a dataset's annotated set `name`: below the dataset's path, or absolute."""
        folder = PurePosixPath(self.settings(dataset)["annotated"][name])
        return str(folder if folder.is_absolute() else PurePosixPath(self.dataset_root(dataset)) / folder)

    # --- cells and stores

    def is_auto(self, dataset: str, method: str) -> bool:
        """Whether a method's cells are chosen by the probe sweep (`auto`)."""
        return self.plans[dataset][method]["layers"] == "auto"

    def fixed_cells(self, dataset: str, method: str) -> list:
        """The configured (layer, timestep) cells of a method, timestep-major and layer-minor (the
        paper's order; timestep None for a source without); none when the sweep chooses them."""
        plan = self.plans[dataset][method]
        if plan["layers"] == "auto":
            return []
        return [(layer, t) for t in (plan["timesteps"] or [None]) for layer in plan["layers"]]

    def per_run_noise(self, dataset: str, key: str) -> bool:
        """Whether every MLP seed's run of a method has features of its own noise (`features.noise_seed:
        per_run`, for a source that takes timesteps)."""
        return self.settings(dataset)["features"]["noise_seed"] == "per_run" and self.takes_timesteps(dataset, key)

    def store_path(self, dataset: str, key: str, split: str, layer: str, timestep, noise=None, method=None) -> str:
        """A store of a method folder `key`; with per-run noise in noise<seed>/ (`noise`: the seed,
        default the first run's, whose stores the probe sweep uses). `method`: the folder's method
        where `key` is a wildcard pattern such as "{model}"."""
        noise_folder = f"noise{self.seeds[0] if noise is None else noise}" if self.per_run_noise(dataset, method or key) \
            else ""
        return str(PurePosixPath("results", dataset, "features", key, split, noise_folder,
                                 backbones.store_name(layer, timestep)))

    @staticmethod
    def variant_store(dataset: str, key: str, split: str, folder: str, layer: str, timestep) -> str:
        """A store of a Table 5 noise variant: in the split's variant folder (`variant_folders`)."""
        return f"results/{dataset}/features/{key}/{split}/{folder}/{backbones.store_name(layer, timestep)}"

    @staticmethod
    def budget_store(dataset: str, step, split: str, layer: str, timestep) -> str:
        """A store of the budget curve: the followed method's features from the snapshot at `step`."""
        return f"results/{dataset}/budget/features/step{step}/{split}/{backbones.store_name(layer, timestep)}"

    def cell_stores(self, dataset: str, key: str, split: str, cells) -> list:
        """Store paths of a method folder's `cells`; with per-run noise every run's, run-major."""
        if self.per_run_noise(dataset, key):
            return [self.store_path(dataset, key, split, layer, t, noise=s) for s in self.seeds for layer, t in cells]
        return [self.store_path(dataset, key, split, layer, t) for layer, t in cells]

    def extraction_settings(self, dataset: str) -> dict:
        """The feature settings that change extracted values (params of the extraction rules, so
        that editing e.g. the ensemble's settings never re-extracts features)."""
        features = self.settings(dataset)["features"]
        return {key: features[key] for key in ("noise_device", "batch_images", "precision")}

    def noise_base_seed(self, dataset: str) -> int:
        """The seed Table 5's variants and the budget curve derive theirs from: features.noise_seed
        (0 under per_run)."""
        seed = self.settings(dataset)["features"]["noise_seed"]
        return seed if isinstance(seed, int) else 0

    # --- the probe sweep

    def _sweep_grid(self, dataset: str, plan: dict) -> dict:
        """{layers, timesteps ([None] for a source without), kmeans cells} of one method's probe
        sweep, or {problem: why there is none}."""
        probes, source = self.settings(dataset)["probes"], backbones.source(plan["source"])
        try:
            layers, k_layers = source.sweep_layers(plan["settings"], plan["table"], probes)
        except SweepProblem as exc:
            return {"problem": f"dataset {dataset!r}: {exc}"}
        if not source.TAKES_TIMESTEPS:
            return {"layers": layers, "timesteps": [None], "kmeans": [(layer, None) for layer in k_layers]}
        diffusion_steps = source.schedule_length(plan["settings"])
        steps = sorted(set(probes["timesteps"] or timestep_grid(diffusion_steps)))
        k_steps = (nearest_in_grid(probes["kmeans"]["timesteps"], steps) if probes["kmeans"]["timesteps"]
                   else kmeans_steps(diffusion_steps, steps))
        return {"layers": layers, "timesteps": steps, "kmeans": [(layer, t) for layer in k_layers for t in k_steps]}

    def sweep(self, dataset: str, method: str) -> dict:
        """The sweep grid of a dataset's method; ConfigProblem where it cannot be planned."""
        grid = self.sweeps[dataset][method]
        if "problem" in grid:
            raise ConfigProblem(f"config: no probe sweep for {grid['problem']}")
        return grid

    def sweep_cell(self, dataset: str, method: str, cell: str) -> dict:
        """{layer, timestep, depth} of the sweep cell `cell` ('b5_t50', 'block3') of a method; depth
        is the layer's index in the sweep's layers, which are in forward order."""
        grid = self.sweep(dataset, method)
        for depth, layer in enumerate(grid["layers"]):
            for t in grid["timesteps"]:
                if cell_id(layer, t) == cell:
                    return {"layer": layer, "timestep": t, "depth": depth}
        raise ValueError(f"{cell!r} is not a cell of the sweep of {method} on {dataset}")

    def swept_method(self, dataset: str, method: str) -> str:
        """The method whose probe sweep chooses an `auto` method's cells: its own, except a
        random-weights control, which takes the cells of the first trained method of its source
        (the same architecture: the paper compares them on the same cells)."""
        plan = self.plans[dataset][method]
        if plan["settings"].get("weights") == "random":
            trained = [k for k, p in self.plans[dataset].items()
                       if p["source"] == plan["source"] and p["settings"].get("weights") == "trained"]
            return trained[0] if trained else method
        return method

    def several_layers(self, dataset: str, method: str) -> bool:
        """Whether a method's source has more than one layer (a table known only once the
        checkpoint is read has many)."""
        table = self.plans[dataset][method]["table"]
        return table is None or len(table) > 1

    def probe_methods(self, dataset: str) -> list:
        """The methods whose sweep the target `figures` draws: probes.methods, or the first
        method with more than one layer."""
        chosen = self.settings(dataset)["probes"]["methods"]
        if chosen is not None:
            return [m for m in chosen if m in self.plans[dataset]]
        return [m for m in self.methods if self.several_layers(dataset, m)][:1]

    def described_methods(self, dataset: str) -> list:
        """The methods whose layers Table 2 names: those of a source with more than one layer."""
        return [m for m in self.methods if self.several_layers(dataset, m)]

    def cell_weight_figures(self) -> list:
        """results/<dataset>/figures/<method>/cell_weights.png of every method folder whose ensembles
        learn to mix several cells (`ensemble.aggregation: learned`), in Table 2's run order."""
        return [f"results/{d}/figures/{key}/cell_weights.png" for d in self.datasets
                if self.settings(d)["ensemble"]["aggregation"] == "learned"
                for m in self.methods if self.is_auto(d, m) or len(self.fixed_cells(d, m)) > 1
                for key in self.method_keys(d, m)]

    # --- the extraction rules

    def extractions(self) -> list:
        """Every extraction rule: per dataset and method its cells (Table 2), its probe sweep's
        other layers per timestep, Table 5's noise variants; per budget dataset its snapshots."""
        jobs = []
        for d in self.datasets:
            for m, plan in self.plans[d].items():
                model = m + (r"(_m\d+)?" if backbones.source(plan["source"]).HAS_MODEL_SEEDS else "")
                cells = self.fixed_cells(d, m)
                if cells:
                    noise = "_noise{noise}" if self.per_run_noise(d, m) else ""
                    jobs.append(Extraction(
                        f"extract_features_{d}_{m}", "table2", d, m, plan["layers"], plan["timesteps"],
                        [self.store_path(d, "{model}", "{split}", layer, t, noise="{noise}", method=m) for layer, t in cells],
                        f"extract_features/{d}_{{model}}_{{split}}{noise}", {"model": model}))
                jobs += self._sweep_extractions(d, m)
                if m in self.noise_methods(d):
                    jobs.append(Extraction(
                        f"extract_noise_{d}_{m}", "noise", d, m, plan["layers"], plan["timesteps"],
                        [self.variant_store(d, "{model}", "{split}", "{folder}", layer, t) for layer, t in cells],
                        f"extract_noise/{d}_{{model}}_{{split}}_{{folder}}", {"model": model, "split": "train|test"}))
        for d in self.budget_datasets():
            m = self.budget_method(d)
            jobs.append(Extraction(
                f"extract_budget_{d}", "budget", d, m, self.plans[d][m]["layers"], self.plans[d][m]["timesteps"],
                [self.budget_store("{dataset}", "{step}", "{split}", layer, t) for layer, t in self.fixed_cells(d, m)],
                "extract_budget/{dataset}_{step}_{split}", {"dataset": d, "split": "train|test"}))
        return jobs

    def _sweep_extractions(self, dataset: str, method: str) -> list:
        """The probe sweep's extraction rules of a method: per timestep, the sweep's layers that
        its Table 2 extraction does not write (the first run's noise)."""
        grid = self.sweeps[dataset][method]
        if "problem" in grid:
            return []
        jobs = []
        for t in grid["timesteps"]:
            layers = [layer for layer in grid["layers"] if (layer, t) not in self.fixed_cells(dataset, method)]
            if layers:
                jobs.append(Extraction(
                    f"extract_sweep_{dataset}_{method}" + ("" if t is None else f"_t{t}"), "sweep", dataset, method,
                    layers, None if t is None else [t],
                    [self.store_path(dataset, "{model}", "{split}", layer, t, method=method) for layer in layers],
                    f"extract_sweep/{dataset}_{cell_id('all', t)}_{{model}}_{{split}}", {"model": method}))
        return jobs

    def extraction_noise(self, job: Extraction, wildcards) -> tuple:
        """(noise mode, noise seed) of an extraction job: Table 2's shared noise (per-run: the
        {noise} folder's seed), the sweep's first run's, a Table 5 variant's, the budget's base seed."""
        if job.kind == "noise":
            return folder_noise(wildcards["folder"], self.noise_base_seed(job.dataset))
        if job.kind == "budget":
            return "shared", self.noise_base_seed(job.dataset)
        return "shared", self.noise_seed(job.dataset, job.method, int(wildcards.get("noise", self.seeds[0])))

    def noise_seed(self, dataset: str, key: str, run_seed: int) -> int:
        """The seed of the shared noise of a method folder's features for the run of `run_seed`:
        that seed under per-run noise, else `features.noise_seed`."""
        return run_seed if self.per_run_noise(dataset, key) else self.settings(dataset)["features"]["noise_seed"]

    def extraction_model_seed(self, job: Extraction, wildcards) -> int:
        """The model seed of an extraction job: its {model} folder's, the first for the budget curve."""
        if job.kind == "budget":
            return self.model_seeds(job.dataset)[0]
        return self.model_seed(job.dataset, wildcards["model"])

    # --- the experiments

    def experiment_methods(self, dataset: str) -> list:
        """The methods a dataset's experiments run for (`experiments.methods`, default all)."""
        chosen = self.settings(dataset)["experiments"]["methods"]
        return [m for m in self.methods if chosen is None or m in chosen]

    def experiment_runs(self, dataset: str) -> list:
        """(method folder, seed) of every run of the dataset's experiment methods."""
        return [(key, s) for m in self.experiment_methods(dataset) for key in self.method_keys(dataset, m)
                for s in self.seeds]

    def label_counts(self, dataset: str) -> list:
        """Table 4's labelled-image counts below the whole train split, falling."""
        return sorted(self.settings(dataset)["experiments"]["labels"], reverse=True)

    def active_labelling(self, dataset: str) -> dict | None:
        """A dataset's simulated labelling loop (`experiments.active_labelling`) with its method
        settled, or None where it has no `labels`."""
        given = self.settings(dataset)["experiments"]["active_labelling"]
        if not given["labels"]:
            return None
        where = f"config: datasets.{dataset}.experiments.active_labelling"
        if any(b <= a for a, b in zip(given["labels"], given["labels"][1:])):
            raise ConfigProblem(f"{where}.labels {given['labels']} must rise from round to round, e.g. [5, 10, 15, 20]")
        method = given["method"] or self.experiment_methods(dataset)[0]
        if method not in self.plans[dataset]:
            raise ConfigProblem(f"{where}.method is {method!r}, not a method; give one of {', '.join(self.plans[dataset])}")
        return {**given, "method": method}

    def active_labelling_datasets(self) -> list:
        return [d for d in self.datasets if self.active_labelling(d) is not None]

    def active_labelling_runs(self, dataset: str) -> list:
        """The (strategy, seed) runs of a dataset's loop, strategy-major."""
        settings = self.active_labelling(dataset)
        return [(strategy, seed) for strategy in settings["strategies"] for seed in settings["seeds"]]

    def table4_datasets(self) -> list:
        return [d for d in self.datasets if self.label_counts(d)]

    def table4_runs(self) -> list:
        """(dataset, method folder, labels (None: the whole split, Table 2's run), seed) of Table 4."""
        return [(d, key, n, s) for d in self.table4_datasets() for n in [None, *self.label_counts(d)]
                for key, s in self.experiment_runs(d)]

    def table4_metrics(self) -> list:
        """The metrics.json of Table 4's runs: Table 2's for the whole split."""
        return [f"results/{d}/{key}/" + ("" if n is None else f"labels{n}/") + f"seed{s}/metrics.json"
                for d, key, n, s in self.table4_runs()]

    def resplit_runs(self) -> list:
        """(dataset, method folder, re-split r) of every dataset with `evaluation.resplits` (Table 2's
        methods, model seed folders included)."""
        return [(d, key, r) for d in self.datasets for m in self.methods for key in self.method_keys(d, m)
                for r in range(self.settings(d)["evaluation"]["resplits"])]

    def severities(self, dataset: str) -> list:
        """Figure 6's corruption severities of a dataset (`experiments.severities`)."""
        return self.settings(dataset)["experiments"]["severities"]

    def noise_methods(self, dataset: str) -> list:
        """Table 5's methods: the experiment methods of a source that takes timesteps, with
        configured cells (an `auto` method's are known only after its sweep)."""
        return [m for m in self.experiment_methods(dataset) if self.takes_timesteps(dataset, m)
                and not self.is_auto(dataset, m)]

    def variant_stores(self, dataset: str, key: str, split: str, variant: str) -> list:
        """The stores of a method folder's features of one split under a Table 5 noise variant:
        its cells in Table 2's order, for fresh train features every draw's, draw-major."""
        draws = self.settings(dataset)["experiments"]["noise_draws"]
        return [self.variant_store(dataset, key, split, folder, layer, t)
                for folder in variant_folders(variant, split, draws)
                for layer, t in self.fixed_cells(dataset, base_method(key))]

    def table5_runs(self) -> list:
        """(dataset, method folder, variant, seed) of Table 5; the shared variant is Table 2's run."""
        return [(d, key, v, s) for d in self.datasets for m in self.noise_methods(d) for key in self.method_keys(d, m)
                for v in VARIANTS for s in self.seeds]

    def table5_metrics(self) -> list:
        """The metrics.json of Table 5's runs: Table 2's for the shared noise."""
        return [f"results/{d}/{key}/" + ("" if v == "shared" else f"noise_{v}/") + f"seed{s}/metrics.json"
                for d, key, v, s in self.table5_runs()]

    def budget_steps(self, dataset: str) -> list:
        """The budget curve's snapshot steps of a dataset (`experiments.budget_steps`), rising."""
        return sorted(self.settings(dataset)["experiments"]["budget_steps"])

    def budget_method(self, dataset: str) -> str | None:
        """The method the budget curve follows: the first experiment method trained by the
        workflow's diffusion stage, with configured cells; None where there is none."""
        for m in self.experiment_methods(dataset):
            if self.plans[dataset][m]["stage_trained"] and self.trains_diffusion(dataset) and not self.is_auto(dataset, m):
                return m
        return None

    def budget_datasets(self) -> list:
        return [d for d in self.datasets if self.budget_steps(d) and self.budget_method(d)]

    def budget_stores(self, dataset: str, split: str, step) -> list:
        return [self.budget_store(dataset, step, split, layer, t)
                for layer, t in self.fixed_cells(dataset, self.budget_method(dataset))]

    def budget_runs(self, dataset: str) -> list:
        """(method folder, step (None: Table 2's run of a control), seed) of a dataset's budget
        curve: the followed method at every snapshot, every other experiment method from Table 2."""
        followed = self.budget_method(dataset)
        controls = [(key, None, s) for key, s in self.experiment_runs(dataset) if base_method(key) != followed]
        return [(followed, n, s) for n in self.budget_steps(dataset) for s in self.seeds] + controls

    # --- segmenting folders, distillation, Table 3

    def _segment_folders(self, dataset: str) -> dict:
        """{name: {path, model, method, seed, format}} of a dataset's `segment` folders, defaults filled in
        (a bare folder: the first method's ensemble of the first seed)."""
        folders = {}
        keys = [k for m in self.plans[dataset] for k in self.method_keys(dataset, m)]
        for name, given in self.settings(dataset)["segment"].items():
            spec = {"path": given} if isinstance(given, str) else dict(given)
            spec = {"model": "ensemble", "format": "palette", **spec, "method": spec.get("method") or self.methods[0],
                    "seed": self.seeds[0] if spec.get("seed") is None else spec["seed"]}
            where = f"config: datasets.{dataset}.segment.{name}"
            if spec["method"] not in keys:
                raise ConfigProblem(f"{where}.method is {spec['method']!r}, not a method of this dataset; give one of "
                                    f"{', '.join(keys)}")
            if spec["seed"] not in self.seeds:
                raise ConfigProblem(f"{where}.seed is {spec['seed']}, not one of the seeds {self.seeds}; give one of them")
            if spec["model"] == "deeplab" and not self.distill(dataset)["pools"]:
                raise ConfigProblem(f"{where} asks for model deeplab, but datasets.{dataset}.distill.pools is empty; "
                                    "list ddpm or unlabeled there")
            folders[name] = spec
        return folders

    def segment_targets(self) -> list:
        return [f"results/{d}/segment/{name}" for d in self.datasets for name in self.segment[d]]

    def segment_bundle(self, dataset: str, name: str) -> str:
        """The bundle that segments folder `name`: the chosen ensemble's, or the first pool's DeepLab."""
        spec = self.segment[dataset][name]
        if spec["model"] == "deeplab":
            return f"results/{dataset}/distill_{self.distill(dataset)['pools'][0]}/seed{spec['seed']}/segmenter"
        return f"results/{dataset}/{spec['method']}/seed{spec['seed']}/segmenter"

    def distill(self, dataset: str) -> dict:
        """The dataset's `distill` settings."""
        return self.settings(dataset)["distill"]

    def deeplab_settings(self, dataset: str) -> dict:
        """The dataset's `distill.deeplab` settings with `auto` settled: input_size the image size,
        at least 128 px; recalibrate_batchnorm on where the backbone starts from random weights."""
        settings = dict(self.distill(dataset)["deeplab"])
        if settings["input_size"] == "auto":
            settings["input_size"] = deeplab_auto_input_size(self.settings(dataset)["image_size"])
        if settings["recalibrate_batchnorm"] == "auto":
            settings["recalibrate_batchnorm"] = settings["backbone_weights"] is None
        return settings

    def distill_method(self, dataset: str) -> str:
        """The method whose ensembles label a dataset's pools (`distill.method`, default the first)."""
        method = self.distill(dataset)["method"] or self.methods[0]
        if method not in self.plans[dataset]:
            raise ConfigProblem(f"config: datasets.{dataset}.distill.method is {method!r}, not a method; give one of "
                                f"{', '.join(self.plans[dataset])}")
        return method

    def distill_seeds(self, dataset: str) -> list:
        seeds = self.distill(dataset)["seeds"] or self.seeds
        if not set(seeds) <= set(self.seeds):
            raise ConfigProblem(f"config: datasets.{dataset}.distill.seeds {seeds} are not all among the seeds "
                                f"{self.seeds}; list some of those")
        return seeds

    def sample_batches(self, dataset: str) -> int:
        """The number of sampling (and labelling) jobs of a dataset's ddpm pool."""
        settings = self.distill(dataset)
        return -(-settings["n_samples"] // settings["sample_batch"])

    def pool_batches(self, dataset: str, pool: str) -> list:
        """Batch indices of a pool's labelling jobs: one per sample batch; the unlabeled pool is one job."""
        return list(range(self.sample_batches(dataset))) if pool == "ddpm" else [0]

    def labelling_set(self, dataset: str) -> str:
        """The annotated images the labelling ensembles are trained on (`distill.labelled_by`):
        'real' (the train split) or the name of one of the dataset's `annotated` sets."""
        chosen = self.distill(dataset)["labelled_by"]
        annotated = self.settings(dataset)["annotated"]
        if chosen != "real" and chosen not in annotated:
            raise ConfigProblem(f"config: datasets.{dataset}.distill.labelled_by is {chosen!r}, not real nor a name of "
                                f"its annotated sets ({', '.join(annotated) or 'none'}); give one")
        return chosen

    def released_path(self, dataset: str, pool: str) -> str:
        """The released synthetic dataset of pool released_<kind> (`distill.released.<kind>`)."""
        kind = pool.removeprefix("released_")
        path = self.distill(dataset)["released"].get(kind)
        if path is None:
            raise ConfigProblem(f"config: datasets.{dataset}.distill.pools lists {pool}, but distill.released.{kind} "
                                "is not set; give the released .npz (or its unpacked folder)")
        return path

    def table3_runs(self, dataset: str) -> list:
        """(row, training data, metrics.json) of every run of a dataset's Table 3: the distill
        method's ensembles trained on the real train split and on each annotated set; DatasetDDPM
        under the training data of its labelling ensembles; the released pools under ddpm / gan."""
        method = self.distill_method(dataset)
        runs = [(self.plans[dataset][method]["name"], train, f"results/{dataset}/{trained_on(key, train)}/seed{s}/metrics.json")
                for train in ["real", *self.settings(dataset)["annotated"]] for key in self.method_keys(dataset, method)
                for s in self.seeds]
        for pool, train in (("ddpm", None), ("released_ddpm", "ddpm"), ("released_gan", "gan")):
            if pool in self.distill(dataset)["pools"]:
                runs += [(POOL_NAMES[pool], train or self.labelling_set(dataset),
                          f"results/{dataset}/distill_{pool}/seed{s}/metrics.json") for s in self.distill_seeds(dataset)]
        return runs
