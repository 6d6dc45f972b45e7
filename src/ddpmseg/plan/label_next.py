"""The plan of `label_next`: which pool images to label next, ranked by one seed's ensemble."""

from ddpmseg.formats.export import EXPORT_FORMATS
from ddpmseg.formats.paper import PAPER
from ddpmseg.methods import ConfigProblem
from ddpmseg.plan import layout
from ddpmseg.plan.settle import chosen_method, chosen_seed

BATCH_FORMATS = (PAPER, "label_studio", *EXPORT_FORMATS)  # the forms a batch's pre-annotations are written in
# each unit's strategies, its default first (ddpmseg.label_next.STRATEGIES, ddpmseg.label_regions.REGION_STRATEGIES:
# the plan stays free of torch)
UNIT_STRATEGIES = {"image": ("uncertainty+diversity", "uncertainty", "diversity", "random"),
                   "region": ("uncertainty", "balanced", "random")}


class LabelNext:
    """Every dataset's `label_next` settings, settled and checked when built."""

    def __init__(self, plan):
        self.plan = plan
        self.settled = {d: self._settled(d) for d in plan.datasets}

    def _settled(self, dataset: str) -> dict | None:
        given = self.plan.settings(dataset)["label_next"]
        if not given["count"]:
            return None
        where = f"config: datasets.{dataset}.label_next"
        method = chosen_method(given["method"], self.plan.plans[dataset], f"{where}.method")
        seed = chosen_seed(given["seed"], self.plan.seeds, f"{where}.seed")
        own = self.plan.settings(dataset)["format"]
        fmt = given["format"] or (own if own in BATCH_FORMATS else "palette")
        strategies = UNIT_STRATEGIES[given["unit"]]
        strategy = given["strategy"] or strategies[0]
        if strategy not in strategies:
            raise ConfigProblem(f"{where}.strategy: {strategy!r} ranks {'regions' if given['unit'] == 'image' else 'images'}"
                                f", not {given['unit']}s; with unit: {given['unit']} use one of {', '.join(strategies)}")
        return {**given, "method": method, "seed": seed, "format": fmt, "strategy": strategy}

    def settings(self, dataset: str) -> dict | None:
        """A dataset's `label_next` settings with method, seed, strategy (the unit's default where
        none is given) and format settled (None: off). format: 'paper' (the paper's layout: NAME + NAME.npy), 'palette', 'label_studio' (tasks)
        or an export format."""
        return self.settled[dataset]

    def folder(self, dataset: str) -> str:
        """A dataset's label_next folder: label_next (images), or label_next/regions."""
        return "label_next" if self.settled[dataset]["unit"] == "image" else "label_next/regions"

    def targets(self) -> list:
        """The rankings the main target makes: one per dataset whose `label_next` is set."""
        return [layout.experiment(d, f"{self.folder(d)}/ranking.csv") for d in self.plan.datasets if self.settled[d]]

    def stores(self, dataset: str) -> dict:
        """{pool_stores, train_stores}: the ranking run's stores of the pool and the train split."""
        settings, stores = self.settled[dataset], self.plan.stores
        return {f"{name}_stores": stores.run_stores(dataset, settings["method"], split, settings["seed"])
                for name, split in (("pool", "unlabeled"), ("train", "train"))}
