"""The results layout: where every result of the workflow lives, below results/. The plan's
paths, the rules' inputs and outputs and their input functions come from here; each function
takes a dataset and the names that pick the file, or the wildcard patterns of a rule
(layout.run("{dataset}", "{method}", "{seed}", "ensemble.pt")).

Vocabulary: a method *folder* (key) is a method's result folder, one per model seed for a
source that has them ('ddpm', 'ddpm_m2'); a *run folder* is a method folder or one of its
variants ('ddpm/labels5', 'ddpm/noise_fresh', 'budget/step500/ddpm', 'distill_ddpm'), holding
seed<s>/ per MLP seed.
"""

import re

from ddpmseg import backbones

RESULTS = "results"
BUDGET_DIFFUSION = "budget/diffusion"  # the budget curve's diffusion training, a folder of `diffusion`


def dataset_dir(dataset: str) -> str:
    """A dataset's results folder."""
    return f"{RESULTS}/{dataset}"


def data(dataset: str, file: str) -> str:
    """A file of the prepared data folder: summary.json, corruptions.json (a split: `split`)."""
    return f"{dataset_dir(dataset)}/data/{file}"


def split(dataset: str, name: str) -> str:
    """A prepared split (train, test, unlabeled, annotated-<set>, segment-<folder>)."""
    return data(dataset, f"{name}.zarr")


def regions(dataset: str, name: str) -> str:
    """A prepared split's regions (`ddpmseg.regions`): train or unlabeled."""
    return data(dataset, f"regions/{name}.zarr")


def corrupted_test(dataset: str, corruption: str, severity=None) -> str:
    """The test split under a corruption: the folder of all severities, or one severity's split."""
    folder = data(dataset, f"test-{corruption}")
    return folder if severity is None else f"{folder}/severity{severity}.zarr"


def diffusion_dir(key: str) -> str:
    """Where the diffusion model of a method folder is trained: diffusion[_m<d>]."""
    suffix = re.search(r"_m\d+$", key)
    return "diffusion" + (suffix.group(0) if suffix else "")


def diffusion(dataset: str, folder: str, file: str) -> str:
    """A file of a diffusion training: folder diffusion[_m<d>], or BUDGET_DIFFUSION (the budget curve's)."""
    return f"{dataset_dir(dataset)}/{folder}/{file}"


def budget_snapshot(dataset: str, step) -> str:
    """The budget curve's EMA weights at `step`."""
    return diffusion(dataset, BUDGET_DIFFUSION, f"snapshots/step{step}.pt")


def pretrained(dataset: str, method: str, file: str) -> str:
    """A file of a source the workflow pretrains (model.pt, training.json)."""
    return f"{dataset_dir(dataset)}/pretrained/{method}/{file}"


def cell_id(layer: str, timestep: int | None) -> str:
    """'b5_t50' or 'block3': a cell's name in the sweep's paths (its store's name, less features_ and .zarr)."""
    return backbones.store_name(layer, timestep).removeprefix("features_").removesuffix(".zarr")


def feature_dir(dataset: str, key: str, split_name: str, name: str) -> str:
    """The folder of one extraction job's stores (`plan.stores.Extraction`)."""
    return f"{dataset_dir(dataset)}/features/{key}/{split_name}/{name}"


def store(folder: str, layer: str, timestep) -> str:
    """A cell's store in an extraction folder."""
    return f"{folder}/{backbones.store_name(layer, timestep)}"


def store_folders(stores):
    """The extraction folders holding `stores` (a path, a list, or a dict of either), in order:
    the input of a rule that reads stores, whose paths it takes as a param."""
    if isinstance(stores, dict):
        return {key: store_folders(value) for key, value in stores.items()}
    stores = [stores] if isinstance(stores, str) else stores
    return list(dict.fromkeys(path.rsplit("/", 1)[0] for path in stores))


def trained_on(key: str, train: str) -> str:
    """The run folder of a method folder's ensembles trained on `train`: the key itself for
    'real' (Table 2's), else '<key>/trained_on_<annotated set>'."""
    return key if train == "real" else f"{key}/trained_on_{train}"


def labels_run(key: str, labels) -> str:
    """Table 4's run folder of `labels` labelled images (None: the whole split, Table 2's)."""
    return key if labels is None else f"{key}/labels{labels}"


def noise_run(key: str, variant: str) -> str:
    """Table 5's run folder of a noise variant (shared: Table 2's)."""
    return key if variant == "shared" else f"{key}/noise_{variant}"


def budget_run(key: str, step) -> str:
    """The budget curve's run folder at a snapshot step (None: Table 2's run)."""
    return key if step is None else f"budget/step{step}/{key}"


def distill_run(pool: str) -> str:
    """The run folder of the DeepLabs distilled from a pool: 'distill_<pool>'."""
    return f"distill_{pool}"


def run_dir(dataset: str, folder: str) -> str:
    """A run folder (method folder or variant)."""
    return f"{dataset_dir(dataset)}/{folder}"


def run_file(dataset: str, folder: str, file: str) -> str:
    """A file of a run folder that its seeds share: features.json, cell_weights.csv, subsets.json,
    robustness/<corruption>.csv, resplit<r>/scores.csv."""
    return f"{run_dir(dataset, folder)}/{file}"


def run(dataset: str, folder: str, seed, file: str) -> str:
    """A file of one MLP seed's run: ensemble.pt, metrics.json, segmenter, ..."""
    return f"{run_dir(dataset, folder)}/seed{seed}/{file}"


def figure(dataset: str, key: str, file: str) -> str:
    """A method folder's figure (fig2-4, cell weights)."""
    return f"{dataset_dir(dataset)}/figures/{key}/{file}"


def probes(dataset: str, method: str, file: str) -> str:
    """A file of a method's probe sweep (cells/<cell>.json, the table, the class split)."""
    return f"{dataset_dir(dataset)}/probes/{method}/{file}"


def distill(dataset: str, pool: str, file: str) -> str:
    """A file of a distillation pool's folder (samples/, labelled/; its seeds' runs: `run`)."""
    return run_file(dataset, distill_run(pool), file)


def segment(dataset: str, name: str) -> str:
    """The output folder of a `segment:` folder."""
    return f"{dataset_dir(dataset)}/segment/{name}"


def experiment(dataset: str, file: str) -> str:
    """A dataset's output over its runs: overview.png, reliability.*, per_class_iou*, robustness.csv,
    budget_curve.*, active_labelling*, label_next/..., resplits/split<r>.json."""
    return f"{dataset_dir(dataset)}/{file}"


def table(file: str) -> str:
    """A table or figure over every dataset: table2.csv, figure6.png, ..."""
    return f"{RESULTS}/{file}"
