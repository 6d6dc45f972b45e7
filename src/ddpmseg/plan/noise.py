"""Table 5's plan: the ensembles trained on features of other noise (`ddpmseg.experiments.noise`)."""

from ddpmseg.experiments.noise import VARIANTS, variant_folders
from ddpmseg.plan import layout
from ddpmseg.tables import method_of as base_method  # 'ddpm_m2' -> 'ddpm'


class Noise:
    def __init__(self, plan):
        self.plan = plan

    def methods(self, dataset: str) -> list:
        """Table 5's methods: the experiment methods of a source that takes timesteps, with
        configured cells (an `auto` method's are known only after its sweep)."""
        plan = self.plan
        return [m for m in plan.experiment_methods(dataset) if plan.takes_timesteps(dataset, m) and not plan.is_auto(dataset, m)]

    def stores(self, dataset: str, key: str, split: str, variant: str) -> list:
        """The stores of a method folder's features of one split under a noise variant: its cells
        in Table 2's order, for fresh train features every draw's, draw-major."""
        draws = self.plan.settings(dataset)["experiments"]["noise_draws"]
        return [layout.store(layout.feature_dir(dataset, key, split, folder), layer, t)
                for folder in variant_folders(variant, split, draws)
                for layer, t in self.plan.fixed_cells(dataset, base_method(key))]

    def runs(self) -> list:
        """(dataset, method folder, variant, seed) of Table 5; the shared variant is Table 2's run."""
        plan = self.plan
        return [(d, key, v, s) for d in plan.datasets for m in self.methods(d) for key in plan.method_keys(d, m)
                for v in VARIANTS for s in plan.seeds]

    def metrics(self) -> list:
        """The metrics.json of Table 5's runs: Table 2's for the shared noise."""
        return [layout.run(d, layout.noise_run(key, v), s, "metrics.json") for d, key, v, s in self.runs()]
