"""The plans of the smaller experiments: re-splits, robustness to corruptions (Figure 6) and the
simulated labelling loop."""

from ddpmseg.methods import ConfigProblem
from ddpmseg.plan import layout
from ddpmseg.plan.settle import chosen_method


class Resplits:
    """Table 2's methods re-scored on `evaluation.resplits` random re-splits of the labelled images."""

    def __init__(self, plan):
        self.plan = plan

    def runs(self) -> list:
        """(dataset, method folder, re-split r) of every dataset with `evaluation.resplits`
        (Table 2's methods, model seed folders included)."""
        plan = self.plan
        return [(d, key, r) for d in plan.datasets for m in plan.methods for key in plan.method_keys(d, m)
                for r in range(plan.settings(d)["evaluation"]["resplits"])]

    def stores(self, dataset: str, key: str) -> dict:
        """{train_stores, test_stores}: a method folder's Table 2 stores of both fixed splits."""
        return {f"{split}_stores": self.plan.stores.method_stores(dataset, key, split) for split in ("train", "test")}


class Robustness:
    """Figure 6: Table 2's ensembles scored on the corrupted test split."""

    def __init__(self, plan):
        self.plan = plan

    def severities(self, dataset: str) -> list:
        """The corruption severities of a dataset (`experiments.severities`)."""
        return self.plan.settings(dataset)["experiments"]["severities"]

    def corrupted_tests(self, dataset: str, corruption: str) -> list:
        """The test split under `corruption`, one prepared split per severity."""
        return [layout.corrupted_test(dataset, corruption, s) for s in self.severities(dataset)]


class ActiveLabelling:
    """The simulated labelling loop (`experiments.active_labelling`), settled and checked when
    built: an image arm (`labels`) and a region arm (`regions.shares`), each on where given."""

    def __init__(self, plan):
        self.plan = plan
        self.settled = {d: self._settled(d) for d in plan.datasets}

    def _settled(self, dataset: str) -> dict | None:
        given = self.plan.settings(dataset)["experiments"]["active_labelling"]
        if not given["labels"] and not given["regions"]["shares"]:
            return None
        where = f"config: datasets.{dataset}.experiments.active_labelling"
        if any(b <= a for a, b in zip(given["labels"], given["labels"][1:])):
            raise ConfigProblem(f"{where}.labels {given['labels']} must rise from round to round, e.g. [5, 10, 15, 20]")
        shares = given["regions"]["shares"]
        if any(b <= a for a, b in zip(shares, shares[1:])):
            raise ConfigProblem(f"{where}.regions.shares {shares} must rise from round to round, e.g. [0.01, 0.05, 0.2]")
        first = self.plan.experiment_methods(dataset)[0]
        method = chosen_method(given["method"] or first, self.plan.plans[dataset], f"{where}.method")
        return {**given, "method": method}

    def settings(self, dataset: str) -> dict | None:
        """A dataset's loop settings with its method settled, or None where both arms are off."""
        return self.settled[dataset]

    def datasets(self) -> list:
        return [d for d in self.plan.datasets if self.settled[d] is not None]

    def runs(self, dataset: str) -> list:
        """The (unit, strategy, seed) runs of a dataset's loop: the image arm's, then the region
        arm's, strategy-major."""
        settings = self.settled[dataset]
        image = [("image", s, seed) for s in settings["strategies"] for seed in settings["seeds"]] if settings["labels"] else []
        regions = settings["regions"]
        region = [("region", s, seed) for s in regions["strategies"] for seed in settings["seeds"]] if regions["shares"] else []
        return image + region

    def stores(self, dataset: str, seed: int) -> dict:
        """{train_stores, test_stores}: the stores of one seed's run of the loop."""
        key = self.settled[dataset]["method"]
        return {f"{split}_stores": self.plan.stores.run_stores(dataset, key, split, seed) for split in ("train", "test")}

    def curves(self, dataset: str) -> list:
        """The curve of every run of a dataset's loop."""
        return [layout.experiment(dataset, f"active_labelling/{unit}/{strategy}/seed{seed}.csv")
                for unit, strategy, seed in self.runs(dataset)]
