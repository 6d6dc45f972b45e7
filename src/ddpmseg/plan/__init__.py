"""The workflow's plan: the validated config turned into everything the rules need, computed
once when the Snakefile is parsed and testable without Snakemake.

`Plan(config)` takes the config after Snakemake's schema validation (defaults set), settles it
(`settle`: `format: auto`, datasets mapped to null dropped, each dataset's image size settled
with its diffusion flags), plans every method on every dataset (`ddpmseg.methods`) and builds
the parts below, each of which settles and checks its own settings when built: every problem
is a `ConfigProblem` (one line naming the key and the fix) raised here, and the queries the
rules make afterwards never raise one.

- `Plan` itself: datasets, methods, their result folders, model seeds and checkpoints, cells;
- `files` (`files.Files`): downloads and the datasets' folders;
- `stores` (`stores.Stores`): the extraction jobs and where every store lives;
- `probes` (`probes.Probes`): the probe sweep (Figures 2-4);
- `labels`, `noise`, `budget`, `resplits`, `robustness`, `active_labelling`: each experiment's
  runs (`labels`, `noise`, `budget`, `experiments`);
- `distill`, `segment`, `label_next`: distillation and Table 3, `segment:` folders, `label_next`.
Every path is built by `layout`, the results layout.

Vocabulary: a *method* is a row of Table 2 (`methods:`); a method *folder* (key) is a method's
result folder, one per model seed for a source that has them (`ddpm`, `ddpm_m2`); a *cell* is
a (layer, timestep) pair, timestep None for a source without; a *run* is one (dataset, method
folder, seed).
"""

import re

from ddpmseg import backbones
from ddpmseg.methods import plans
from ddpmseg.plan import layout
from ddpmseg.plan.budget import Budget
from ddpmseg.plan.distill import Distill
from ddpmseg.plan.experiments import ActiveLabelling, Resplits, Robustness
from ddpmseg.plan.files import Files
from ddpmseg.plan.label_next import LabelNext
from ddpmseg.plan.labels import Labels
from ddpmseg.plan.noise import Noise
from ddpmseg.plan.probes import Probes
from ddpmseg.plan.segment import Segment
from ddpmseg.plan.settle import normalised, settled_formats
from ddpmseg.plan.stores import Stores
from ddpmseg.tables import method_of as base_method  # 'ddpm_m2' -> 'ddpm'


class Plan:
    """Everything the rules need of a config (see the module's docstring)."""

    def __init__(self, config: dict):
        self.detected_formats = settled_formats(config)  # {dataset: (format, why)} of `format: auto`
        self.config = normalised(config)
        self.datasets = list(config["datasets"])
        self.plans = plans(config)  # {dataset: {method: ddpmseg.methods.plan}}
        self.methods = list(self.plans[self.datasets[0]])
        self.seeds = config["seeds"]
        self.runs = [(d, key, s) for d in self.datasets for m in self.methods for key in self.method_keys(d, m)
                     for s in self.seeds]
        self.files = Files(config)
        self.probes = Probes(self)
        self.stores = Stores(self)
        self.labels, self.noise, self.budget = Labels(self), Noise(self), Budget(self)
        self.resplits, self.robustness = Resplits(self), Robustness(self)
        self.active_labelling = ActiveLabelling(self)
        self.distill = Distill(self)
        self.segment = Segment(self)
        self.label_next = LabelNext(self)

    # --- datasets and methods

    def settings(self, dataset: str) -> dict:
        """The validated settings of a dataset (`datasets.<name>`)."""
        return self.config["datasets"][dataset]

    def plan_of(self, dataset: str, key: str) -> dict:
        """The plan of a method from one of its result folders ('ddpm_m2' too)."""
        return self.plans[dataset][base_method(key)]

    def source_of(self, dataset: str, key: str):
        """The source module (`backbones.contract.FeatureSource`) of a method folder."""
        return backbones.source(self.plan_of(dataset, key).source)

    def takes_timesteps(self, dataset: str, key: str) -> bool:
        return self.source_of(dataset, key).TAKES_TIMESTEPS

    def model_seeds(self, dataset: str) -> list:
        """The dataset's model seeds (`diffusion.seeds`), the first one's results on the plain paths."""
        return self.settings(dataset)["diffusion"]["seeds"]

    def method_keys(self, dataset: str, method: str) -> list:
        """The result folders of a method: one, or for a source with model seeds one per seed
        ('ddpm' for the first, 'ddpm_m<d>' for seed d of the others)."""
        if not backbones.source(self.plans[dataset][method].source).HAS_MODEL_SEEDS:
            return [method]
        return [method] + [f"{method}_m{d}" for d in self.model_seeds(dataset)[1:]]

    def model_seed(self, dataset: str, key: str) -> int:
        """The model seed of a method's or diffusion model's folder: d of 'ddpm_m<d>' or
        'diffusion_m<d>', else its first model seed."""
        match = re.search(r"_m(\d+)$", key)
        if match:
            return int(match.group(1))
        return self.model_seeds(dataset)[0] if key == "diffusion" else self.plan_of(dataset, key).model_seeds[0]

    def run_model_seed(self, dataset: str, key: str) -> int | None:
        """The model seed a table names for a method folder's runs: None for a source without model seeds."""
        return self.model_seed(dataset, key) if self.source_of(dataset, key).HAS_MODEL_SEEDS else None

    def method_key_pattern(self) -> str:
        """A regex of method folders: the method keys, with `_m<d>` for sources with model seeds."""
        first = self.datasets[0]
        return "|".join(f"{m}(_m\\d+)?" if backbones.source(self.plans[first][m].source).HAS_MODEL_SEEDS else m
                        for m in self.methods)

    def names(self) -> dict:
        """{method: its row name in the tables}."""
        return {m: self.plans[self.datasets[0]][m].name for m in self.methods}

    def experiment_methods(self, dataset: str) -> list:
        """The methods a dataset's experiments run for (`experiments.methods`, default all)."""
        chosen = self.settings(dataset)["experiments"]["methods"]
        return [m for m in self.methods if chosen is None or m in chosen]

    def experiment_runs(self, dataset: str) -> list:
        """(method folder, seed) of every run of the dataset's experiment methods."""
        return [(key, s) for m in self.experiment_methods(dataset) for key in self.method_keys(dataset, m)
                for s in self.seeds]

    # --- the models

    def trains_diffusion(self, dataset: str) -> bool:
        """Whether the workflow trains the dataset's diffusion model (no checkpoint given)."""
        return self.settings(dataset)["diffusion"]["checkpoint"] is None

    def needs_unlabeled(self, dataset: str) -> bool:
        """Whether a dataset's unlabeled images are read: the workflow trains its diffusion model,
        pretrains a method's source on them, distils the ensembles' labels of them into DeepLab,
        or ranks them for labelling (`label_next`)."""
        return (self.trains_diffusion(dataset) or any(p.pretrain for p in self.plans[dataset].values())
                or "unlabeled" in self.distill.pools(dataset) or self.label_next.settings(dataset) is not None)

    def stage_trained_methods(self, dataset: str) -> list:
        """The methods whose model the diffusion stage trains (rules/diffusion.smk) on this dataset."""
        return [m for m in self.methods if self.plans[dataset][m].stage_trained]

    def training_outcomes(self) -> list:
        """(dataset, training.json) of every model the workflow trains (Table 2's notes): the
        diffusion models of the stage-trained methods and the pretrained sources."""
        outcomes = []
        for d in self.datasets:
            trained = self.stage_trained_methods(d)
            if trained and self.trains_diffusion(d):
                outcomes += [(d, layout.diffusion(d, layout.diffusion_dir(key), "training.json"))
                             for key in self.method_keys(d, trained[0])]
            outcomes += [(d, layout.pretrained(d, m, "training.json")) for m in self.methods if self.plans[d][m].pretrain]
        return outcomes

    def model_checkpoint(self, dataset: str, key: str) -> str | None:
        """The checkpoint a method folder's model is built from, or None (a source without a
        model, random weights built from the settings)."""
        plan = self.plan_of(dataset, key)
        if plan.stage_trained:
            return plan.checkpoint or layout.diffusion(dataset, layout.diffusion_dir(key), "model.pt")
        if plan.pretrain:
            return layout.pretrained(dataset, plan.key, "model.pt")
        return plan.checkpoint

    def diffusion_train(self, dataset: str, budget: bool = False) -> dict:
        """The training settings of a diffusion run (`diffusion.train` less threads); the budget
        curve's run trains to its last snapshot step."""
        train = {k: v for k, v in self.settings(dataset)["diffusion"]["train"].items() if k != "threads"}
        return {**train, "max_steps": self.budget.steps(dataset)[-1]} if budget else train

    # --- cells

    def is_auto(self, dataset: str, key: str) -> bool:
        """Whether a method's cells are chosen by the probe sweep (`auto`); `key` a method or one of its folders."""
        return self.plan_of(dataset, key).layers == "auto"

    def fixed_cells(self, dataset: str, method: str) -> list:
        """The configured (layer, timestep) cells of a method, timestep-major and layer-minor (the
        paper's order; timestep None for a source without); none when the sweep chooses them."""
        plan = self.plans[dataset][method]
        if plan.layers == "auto":
            return []
        return [(layer, t) for t in (plan.timesteps or [None]) for layer in plan.layers]

    def per_run_noise(self, dataset: str, key: str) -> bool:
        """Whether every MLP seed's run of a method has features of its own noise (`features.noise_seed:
        per_run`, for a source that takes timesteps)."""
        return self.settings(dataset)["features"]["noise_seed"] == "per_run" and self.takes_timesteps(dataset, key)
