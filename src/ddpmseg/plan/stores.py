"""The feature stores' plan: which extraction job writes which folder of stores, and where each
cell's store lives. One job (rule `extract_features`) writes one folder,
`layout.feature_dir(dataset, model, split, name)`, one store per cell inside."""

import re
from dataclasses import dataclass

from ddpmseg.experiments.noise import folder_noise
from ddpmseg.plan import layout
from ddpmseg.tables import method_of as base_method  # 'ddpm_m2' -> 'ddpm'

EXTRACTION_NAMES = r"cells(_noise\d+)?|sweep(_t\d+)?|noise_per_timestep|noise_fresh\d+|noise_fresh_test|budget_step\d+"


@dataclass(frozen=True)
class Extraction:
    """One extraction job: the stores of some cells of one method folder on one split. Its
    folder's `name` says what it is for: "cells" (Table 2's cells; "cells_noise<n>" under per-run
    noise, the run of seed n), "sweep_t<t>" ("sweep" for a source without timesteps: the probe
    sweep's layers at t that Table 2's cells leave out), a Table 5 noise variant
    ("noise_per_timestep", "noise_fresh<k>", "noise_fresh_test") or "budget_step<n>" (the budget
    curve's diffusion snapshot at step n). `checkpoint`: the model's file, or None (a source
    without a model, or random weights built from the settings)."""

    layers: list
    timesteps: list | None
    model_seed: int
    noise_mode: str
    noise_seed: int
    checkpoint: str | None


class Stores:
    """Store paths and extraction jobs of a plan (`ddpmseg.plan.Plan`)."""

    def __init__(self, plan):
        self.plan = plan
        self.sweep_cells = None  # (dataset, method) -> the cells an `auto` method's sweep picked, set by the workflow

    def cells(self, dataset: str, key: str) -> list:
        """A method folder's cells: its configured ones, or those its probe sweep picked (`auto`:
        known once the sweep has run, through `sweep_cells`)."""
        method = base_method(key)
        if self.plan.is_auto(dataset, method):
            return self.sweep_cells(dataset, self.plan.probes.swept_method(dataset, method))
        return self.plan.fixed_cells(dataset, method)

    def method_stores(self, dataset: str, key: str, split: str) -> list:
        """The stores of a method folder's cells of one split (`cell_stores`)."""
        return self.cell_stores(dataset, key, split, self.cells(dataset, key))

    def settings(self, dataset: str) -> dict:
        """The feature settings that change extracted values (params of the extraction rule, so
        that editing e.g. the ensemble's settings never re-extracts features)."""
        features = self.plan.settings(dataset)["features"]
        return {key: features[key] for key in ("noise_device", "batch_images", "precision")}

    def noise_base_seed(self, dataset: str) -> int:
        """The seed Table 5's variants and the budget curve derive theirs from: features.noise_seed
        (0 under per_run)."""
        seed = self.plan.settings(dataset)["features"]["noise_seed"]
        return seed if isinstance(seed, int) else 0

    def noise_seed(self, dataset: str, key: str, run_seed: int) -> int:
        """The seed of the shared noise of a method folder's features for the run of `run_seed`:
        that seed under per-run noise, else `features.noise_seed`."""
        return run_seed if self.plan.per_run_noise(dataset, key) else self.plan.settings(dataset)["features"]["noise_seed"]

    def store_path(self, dataset: str, key: str, split: str, layer: str, timestep, noise=None) -> str:
        """A store of Table 2's cells of a method folder `key`; with per-run noise the run of seed
        `noise`'s (default the first run's, whose stores the probe sweep uses)."""
        seeds = self.plan.seeds
        name = f"cells_noise{seeds[0] if noise is None else noise}" if self.plan.per_run_noise(dataset, key) else "cells"
        return layout.store(layout.feature_dir(dataset, key, split, name), layer, timestep)

    def cell_stores(self, dataset: str, key: str, split: str, cells) -> list:
        """Store paths of a method folder's `cells`; with per-run noise every run's, run-major. An
        `auto` method's are its probe sweep's (the first run's noise)."""
        if self.plan.is_auto(dataset, key):
            return [self.sweep_store(dataset, key, split, layer, t) for layer, t in cells]
        if self.plan.per_run_noise(dataset, key):
            return [self.store_path(dataset, key, split, layer, t, noise=s) for s in self.plan.seeds for layer, t in cells]
        return [self.store_path(dataset, key, split, layer, t) for layer, t in cells]

    def run_stores(self, dataset: str, key: str, split: str, seed: int) -> list:
        """The stores one MLP seed's run of a method folder reads: under per-run noise that run's
        (the first run's for a seed that is not configured), else `method_stores`."""
        if not self.plan.per_run_noise(dataset, key):
            return self.method_stores(dataset, key, split)
        return [self.store_path(dataset, key, split, layer, t, noise=seed if seed in self.plan.seeds else None)
                for layer, t in self.cells(dataset, key)]

    def sweep_store(self, dataset: str, method: str, split: str, layer: str, timestep) -> str:
        """The store of a probe sweep cell: Table 2's (the first run's) where the method's cells
        hold it, else its timestep's sweep extraction's."""
        if (layer, timestep) in self.plan.fixed_cells(dataset, base_method(method)):
            return self.store_path(dataset, method, split, layer, timestep)
        name = "sweep" if timestep is None else f"sweep_t{timestep}"
        return layout.store(layout.feature_dir(dataset, method, split, name), layer, timestep)

    def extraction(self, dataset: str, key: str, split: str, name: str) -> Extraction:
        """The extraction job that writes folder `layout.feature_dir(dataset, key, split, name)`."""
        plan, method, base = self.plan, base_method(key), self.noise_base_seed(dataset)
        layers, timesteps = plan.plans[dataset][method].layers, plan.plans[dataset][method].timesteps
        if name.startswith("budget_step"):
            return Extraction(layers, timesteps, plan.model_seeds(dataset)[0], "shared", base,
                              layout.budget_snapshot(dataset, name.removeprefix("budget_step")))
        checkpoint, model_seed = plan.model_checkpoint(dataset, key), plan.model_seed(dataset, key)
        if name.startswith("noise_"):
            return Extraction(layers, timesteps, model_seed, *folder_noise(name, base), checkpoint)
        if name.startswith("sweep"):
            t = int(name.removeprefix("sweep_t")) if name.startswith("sweep_t") else None
            layers = [layer for layer in plan.probes.sweep(dataset, method)["layers"]
                      if (layer, t) not in plan.fixed_cells(dataset, method)]
            timesteps = None if t is None else [t]
        noise = re.fullmatch(r"cells_noise(\d+)", name)
        run_seed = int(noise.group(1)) if noise else plan.seeds[0]
        return Extraction(layers, timesteps, model_seed, "shared", self.noise_seed(dataset, key, run_seed), checkpoint)
