"""Distillation's plan (Table 3 and the DeepLab rows of Table 2): the pools labelled by a
method's ensembles, the DeepLabs trained on them, and the runs of Table 3."""

from ddpmseg.methods import ConfigProblem
from ddpmseg.plan import layout
from ddpmseg.plan.settle import chosen_method

POOL_NAMES = {"ddpm": "DatasetDDPM", "unlabeled": "DDPM -> DeepLab (unlabeled)",  # Table 2 rows
              "released_ddpm": "DatasetDDPM (released)", "released_gan": "DatasetGAN (released)"}


def deeplab_auto_input_size(image_size: int) -> int:
    """`distill.deeplab.input_size: auto`: the image size, at least 128 pixels (FASSEG's 64x64
    heads gain from it with recalibrate_batchnorm, docs/results.md)."""
    return max(image_size, 128)


class Distill:
    """Every dataset's `distill` settings, settled and checked when built."""

    def __init__(self, plan):
        self.plan = plan
        self.table3_datasets = [d for d in plan.datasets if plan.settings(d)["annotated"]
                                or set(self.pools(d)) - {"unlabeled"}]
        self.methods, self.seeds_of = {}, {}
        for d in plan.datasets:  # checked where used: by a pool or Table 3
            where, settings = f"config: datasets.{d}.distill", self.settings(d)
            self.methods[d] = chosen_method(settings["method"], plan.plans[d], f"{where}.method") \
                if settings["pools"] or d in self.table3_datasets else None
            annotated, chosen = plan.settings(d)["annotated"], settings["labelled_by"]
            if (settings["pools"] or d in self.table3_datasets) and chosen != "real" and chosen not in annotated:
                raise ConfigProblem(f"{where}.labelled_by is {chosen!r}, not real nor a name of its annotated sets "
                                    f"({', '.join(annotated) or 'none'}); give one")
            self.seeds_of[d] = settings["seeds"] or plan.seeds
            if settings["pools"] and not set(self.seeds_of[d]) <= set(plan.seeds):
                raise ConfigProblem(f"{where}.seeds {self.seeds_of[d]} are not all among the seeds {plan.seeds}; "
                                    "list some of those")
            for pool in settings["pools"]:
                kind = pool.removeprefix("released_")
                if pool.startswith("released_") and settings["released"].get(kind) is None:
                    raise ConfigProblem(f"{where}.pools lists {pool}, but distill.released.{kind} is not set; give the "
                                        "released .npz (or its unpacked folder)")
        self.runs = [(d, f"distill_{pool}", s) for d in plan.datasets for pool in self.pools(d) for s in self.seeds(d)]

    def settings(self, dataset: str) -> dict:
        """The dataset's `distill` settings."""
        return self.plan.settings(dataset)["distill"]

    def pools(self, dataset: str) -> list:
        return self.settings(dataset)["pools"]

    def deeplab(self, dataset: str) -> dict:
        """The dataset's `distill.deeplab` settings with `auto` settled: input_size the image size,
        at least 128 px; recalibrate_batchnorm on where the backbone starts from random weights."""
        settings = dict(self.settings(dataset)["deeplab"])
        if settings["input_size"] == "auto":
            settings["input_size"] = deeplab_auto_input_size(self.plan.settings(dataset)["image_size"])
        if settings["recalibrate_batchnorm"] == "auto":
            settings["recalibrate_batchnorm"] = settings["backbone_weights"] is None
        return settings

    def method(self, dataset: str) -> str | None:
        """The method whose ensembles label a dataset's pools (`distill.method`, default the first);
        None where the dataset has neither pools nor Table 3."""
        return self.methods[dataset]

    def seeds(self, dataset: str) -> list:
        """The MLP seeds whose ensembles label the pools, one DeepLab each (`distill.seeds`, default all)."""
        return self.seeds_of[dataset]

    def labelling_set(self, dataset: str) -> str:
        """The annotated images the labelling ensembles are trained on (`distill.labelled_by`):
        'real' (the train split) or the name of one of the dataset's `annotated` sets."""
        return self.settings(dataset)["labelled_by"]

    def released_path(self, dataset: str, pool: str) -> str:
        """The released synthetic dataset of pool released_<kind> (`distill.released.<kind>`)."""
        return self.settings(dataset)["released"][pool.removeprefix("released_")]

    def released_source(self, dataset: str, pool: str) -> str:
        """A released synthetic dataset's .npz or folder, or the unpacked download holding it."""
        path = self.released_path(dataset, pool)
        return self.plan.files.written_folder(dataset, path) or path

    def sampled_checkpoint(self, dataset: str) -> str:
        """The diffusion model the ddpm pool samples: the given checkpoint, or the workflow's first."""
        return self.plan.settings(dataset)["diffusion"]["checkpoint"] or layout.diffusion(dataset, "diffusion", "model.pt")

    def sample_batches(self, dataset: str) -> int:
        """The number of sampling (and labelling) jobs of a dataset's ddpm pool."""
        settings = self.settings(dataset)
        return -(-settings["n_samples"] // settings["sample_batch"])

    def pool_batches(self, dataset: str, pool: str) -> list:
        """Batch indices of a pool's labelling jobs: one per sample batch; the unlabeled pool is one job."""
        return list(range(self.sample_batches(dataset))) if pool == "ddpm" else [0]

    def labelling_bundle(self, dataset: str, seed) -> str:
        """The bundle of the seed's ensemble that labels a pool: trained on `distill.labelled_by`."""
        return layout.run(dataset, layout.trained_on(self.method(dataset), self.labelling_set(dataset)), seed, "segmenter")

    @staticmethod
    def row_names() -> dict:
        """{distill_<pool>: its row name in the tables}."""
        return {f"distill_{pool}": name for pool, name in POOL_NAMES.items()}

    def pool_title(self, dataset: str, pool: str, seed) -> str:
        """The title of a labelled pool's figure."""
        if pool.startswith("released_"):
            return f"{dataset}: {POOL_NAMES[pool]}, the paper's images and labels"
        labelled_by = self.labelling_set(dataset)
        trained = "" if labelled_by == "real" else f" trained on {labelled_by}"
        return f"{dataset}: {POOL_NAMES[pool]} pool labelled by {self.method(dataset)} seed {seed}{trained}"

    def table3_runs(self, dataset: str) -> list:
        """(row, training data, metrics.json) of every run of a dataset's Table 3: the distill
        method's ensembles trained on the real train split and on each annotated set; DatasetDDPM
        under the training data of its labelling ensembles; the released pools under ddpm / gan."""
        plan, method = self.plan, self.method(dataset)
        runs = [(plan.plans[dataset][method].name, train, layout.run(dataset, layout.trained_on(key, train), s, "metrics.json"))
                for train in ["real", *plan.settings(dataset)["annotated"]] for key in plan.method_keys(dataset, method)
                for s in plan.seeds]
        for pool, train in (("ddpm", None), ("released_ddpm", "ddpm"), ("released_gan", "gan")):
            if pool in self.pools(dataset):
                runs += [(POOL_NAMES[pool], train or self.labelling_set(dataset),
                          layout.run(dataset, f"distill_{pool}", s, "metrics.json")) for s in self.seeds(dataset)]
        return runs
