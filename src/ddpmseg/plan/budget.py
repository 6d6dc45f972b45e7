"""The budget curve's plan: how much diffusion training the features need. One diffusion run
per dataset keeps its EMA weights at each of `experiments.budget_steps`; the followed method's
cells are extracted from every snapshot and its ensembles trained on them."""

from ddpmseg.plan import layout
from ddpmseg.tables import method_of as base_method  # 'ddpm_m2' -> 'ddpm'


class Budget:
    def __init__(self, plan):
        self.plan = plan

    def steps(self, dataset: str) -> list:
        """The snapshot steps of a dataset (`experiments.budget_steps`), rising."""
        return sorted(self.plan.settings(dataset)["experiments"]["budget_steps"])

    def method(self, dataset: str) -> str | None:
        """The method the curve follows: the first experiment method trained by the workflow's
        diffusion stage, with configured cells; None where there is none."""
        plan = self.plan
        for m in plan.experiment_methods(dataset):
            if plan.plans[dataset][m].stage_trained and plan.trains_diffusion(dataset) and not plan.is_auto(dataset, m):
                return m
        return None

    def datasets(self) -> list:
        return [d for d in self.plan.datasets if self.steps(d) and self.method(d)]

    def stores(self, dataset: str, split: str, step) -> list:
        """The followed method's stores of one split from the snapshot at `step`."""
        method = self.method(dataset)
        folder = layout.feature_dir(dataset, method, split, f"budget_step{step}")
        return [layout.store(folder, layer, t) for layer, t in self.plan.fixed_cells(dataset, method)]

    def runs(self, dataset: str) -> list:
        """(method folder, step (None: Table 2's run of a control), seed) of a dataset's curve:
        the followed method at every snapshot, every other experiment method from Table 2."""
        followed, plan = self.method(dataset), self.plan
        controls = [(key, None, s) for key, s in plan.experiment_runs(dataset) if base_method(key) != followed]
        return [(followed, n, s) for n in self.steps(dataset) for s in plan.seeds] + controls

    def metrics(self, dataset: str) -> list:
        """The metrics.json of the curve's runs, in `runs` order."""
        return [layout.run(dataset, layout.budget_run(key, n), s, "metrics.json") for key, n, s in self.runs(dataset)]
