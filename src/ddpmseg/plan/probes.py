"""The probe sweep's plan (paper Figures 2-4): per method the grid of layers and timesteps a
probe scores, the k-means cells, and which methods the target `figures` draws."""

from ddpmseg import backbones
from ddpmseg.backbones.defaults import SweepProblem
from ddpmseg.methods import ConfigProblem
from ddpmseg.plan import layout
from ddpmseg.sweep import kmeans_steps, nearest_in_grid, timestep_grid


def sweep_grid(dataset: str, settings: dict, plan: dict) -> dict:
    """{layers, timesteps ([None] for a source without), kmeans cells} of one method's probe
    sweep on a dataset (`settings`: the dataset's), or {problem: why there is none}."""
    probes, source = settings["probes"], backbones.source(plan.source)
    try:
        layers, k_layers = source.sweep_layers(plan.settings, plan.table, probes)
    except SweepProblem as exc:
        return {"problem": f"dataset {dataset!r}: {exc}"}
    if not source.TAKES_TIMESTEPS:
        return {"layers": layers, "timesteps": [None], "kmeans": [(layer, None) for layer in k_layers]}
    diffusion_steps = source.schedule_length(plan.settings)
    steps = sorted(set(probes["timesteps"] or timestep_grid(diffusion_steps)))
    k_steps = (nearest_in_grid(probes["kmeans"]["timesteps"], steps) if probes["kmeans"]["timesteps"]
               else kmeans_steps(diffusion_steps, steps))
    return {"layers": layers, "timesteps": steps, "kmeans": [(layer, t) for layer in k_layers for t in k_steps]}


class Probes:
    """The sweep grids of every method on every dataset. Built after the core plan; raises
    ConfigProblem where an `auto` method or a method listed in `probes.methods` has no sweep."""

    def __init__(self, plan):
        self.plan = plan
        self.grids = {d: {key: sweep_grid(d, plan.settings(d), method) for key, method in plan.plans[d].items()}
                      for d in plan.datasets}
        for d in plan.datasets:
            needed = [m for m in plan.methods if plan.is_auto(d, m)] + (plan.settings(d)["probes"]["methods"] or [])
            for m in needed:
                if m in self.grids[d] and "problem" in self.grids[d][m]:
                    why = "'auto' needs the probe sweep, but" if plan.is_auto(d, m) else "is in probes.methods, but"
                    raise ConfigProblem(f"config: method {m} {why} {self.grids[d][m]['problem']}")

    def sweep(self, dataset: str, method: str) -> dict:
        """The sweep grid {layers, timesteps, kmeans} of a dataset's method."""
        return self.grids[dataset][method]

    def has_sweep(self, dataset: str, method: str) -> bool:
        return "problem" not in self.grids[dataset][method]

    def cell(self, dataset: str, method: str, cell: str) -> dict:
        """{layer, timestep, depth} of the sweep cell `cell` ('b5_t50', 'block3') of a method; depth
        is the layer's index in the sweep's layers, which are in forward order."""
        grid = self.sweep(dataset, method)
        for depth, layer in enumerate(grid["layers"]):
            for t in grid["timesteps"]:
                if layout.cell_id(layer, t) == cell:
                    return {"layer": layer, "timestep": t, "depth": depth}
        raise ValueError(f"{cell!r} is not a cell of the sweep of {method} on {dataset}")

    def cell_stores(self, dataset: str, method: str, cell: str) -> dict:
        """{train_store, test_store}: the stores of a sweep cell."""
        cell = self.cell(dataset, method, cell)
        return {f"{split}_store": self.plan.stores.sweep_store(dataset, method, split, cell["layer"], cell["timestep"])
                for split in ("train", "test")}

    def kmeans_stores(self, dataset: str, method: str) -> list:
        """The test stores of a method's k-means cells (Figure 4)."""
        return [self.plan.stores.sweep_store(dataset, method, "test", layer, t)
                for layer, t in self.sweep(dataset, method)["kmeans"]]

    def cells(self, dataset: str, method: str) -> list:
        """The cell names ('b5_t50') of a method's sweep, layer-major."""
        grid = self.sweep(dataset, method)
        return [layout.cell_id(layer, t) for layer in grid["layers"] for t in grid["timesteps"]]

    def swept_method(self, dataset: str, method: str) -> str:
        """The method whose probe sweep chooses an `auto` method's cells: its own, except a
        random-weights control, which takes the cells of the first trained method of its source
        (the same architecture: the paper compares them on the same cells)."""
        plans = self.plan.plans[dataset]
        if plans[method].settings.get("weights") == "random":
            trained = [k for k, p in plans.items()
                       if p.source == plans[method].source and p.settings.get("weights") == "trained"]
            return trained[0] if trained else method
        return method

    def several_layers(self, dataset: str, method: str) -> bool:
        """Whether a method's source has more than one layer (a table known only once the
        checkpoint is read has many)."""
        table = self.plan.plans[dataset][method].table
        return table is None or len(table) > 1

    def methods(self, dataset: str) -> list:
        """The methods whose sweep the target `figures` draws: probes.methods, or the first
        method with more than one layer and a sweep."""
        chosen = self.plan.settings(dataset)["probes"]["methods"]
        if chosen is not None:
            return [m for m in chosen if m in self.plan.plans[dataset]]
        return [m for m in self.plan.methods if self.several_layers(dataset, m) and self.has_sweep(dataset, m)][:1]

    def described_methods(self, dataset: str) -> list:
        """The methods whose layers Table 2 names: those of a source with more than one layer."""
        return [m for m in self.plan.methods if self.several_layers(dataset, m)]

    def cell_weight_figures(self) -> list:
        """The learned cell weights' figure of every method folder whose ensembles learn to mix
        several cells (`ensemble.aggregation: learned`), in Table 2's run order."""
        plan = self.plan
        return [layout.figure(d, key, "cell_weights.png") for d in plan.datasets
                if plan.settings(d)["ensemble"]["aggregation"] == "learned"
                for m in plan.methods if plan.is_auto(d, m) or len(plan.fixed_cells(d, m)) > 1
                for key in plan.method_keys(d, m)]
