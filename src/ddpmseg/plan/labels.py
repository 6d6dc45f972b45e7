"""Table 4's plan: the ensembles trained on fewer labelled images (`experiments.labels`)."""

from ddpmseg.plan import layout


class Labels:
    def __init__(self, plan):
        self.plan = plan

    def counts(self, dataset: str) -> list:
        """Table 4's labelled-image counts below the whole train split, falling."""
        return sorted(self.plan.settings(dataset)["experiments"]["labels"], reverse=True)

    def datasets(self) -> list:
        return [d for d in self.plan.datasets if self.counts(d)]

    def runs(self) -> list:
        """(dataset, method folder, labels (None: the whole split, Table 2's run), seed) of Table 4."""
        return [(d, key, n, s) for d in self.datasets() for n in [None, *self.counts(d)]
                for key, s in self.plan.experiment_runs(d)]

    def metrics(self) -> list:
        """The metrics.json of Table 4's runs: Table 2's for the whole split."""
        return [layout.run(d, layout.labels_run(key, n), s, "metrics.json") for d, key, n, s in self.runs()]
