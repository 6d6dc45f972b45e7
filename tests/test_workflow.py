"""The workflow itself: lint, the DAG of the default and tiny configs, and one real run."""

import collections
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
import zarr
from PIL import Image

from ddpmseg.download import sha256_of
from ddpmseg.errors import CheckpointError
from ddpmseg.formats import READERS
from ddpmseg.formats.source import class_table, lut_classes
from ddpmseg.plan import Plan
from ddpmseg.stores import open_store
from ddpmseg.sampling import sample_batch
from ddpmseg.segmenter import Segmenter
from ddpmseg.synthetic import render_sample
from test_plan import validated

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config.test.yaml"
# The images segmented: (name, (width, height)). The model sees 32x32; after padding to a square,
# a and c are 96 = 3 x 32 wide or high with offsets that are multiples of 3, so that their pixels
# 3i+1 (less the offset) sit on the model's pixel centres.
SEGMENTED = (("a.png", (96, 72)), ("b.jpg", (48, 48)), ("sub/c.png", (48, 96)))
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def snakemake(workdir, *args, check=True, cores=2):
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", str(cores), *args],
        capture_output=True, text=True, timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def run_killed_during_extraction(workdir, *args, cores=2):
    """Starts the workflow and SIGKILLs it (all its processes) once a feature extraction job runs."""
    process = subprocess.Popen(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", str(cores), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not list((workdir / "logs").glob("extract_features/*.log")):
        assert process.poll() is None, "the workflow ended before any extraction started"
        assert time.monotonic() < deadline, "no extraction started within 5 minutes"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def dry_run_jobs(workdir, *args) -> list:
    """(name, resources dict) of every job a dry run would run, in its listing's order. The name
    is the rule's, for an extraction job 'extract_features[<dataset> <model> <extraction>]' (its
    folder less the split: one rule serves every kind of extraction)."""
    result = snakemake(workdir, "-n", *args)
    jobs, name = [], None
    for line in (result.stdout + result.stderr).splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in ("rule", "localrule", "checkpoint", "localcheckpoint") and line.endswith(":"):
            name = words[1].rstrip(":")
            jobs.append([name, {}])
        elif name == "extract_features" and line.strip().startswith("wildcards:"):
            wildcards = dict(item.split("=", 1) for item in line.split(":", 1)[1].strip().split(", "))
            jobs[-1][0] = f"extract_features[{wildcards['dataset']} {wildcards['model']} {wildcards['extraction']}]"
        elif name is not None and line.strip().startswith("resources:"):
            pairs = (item.split("=", 1) for item in line.split(":", 1)[1].split(", "))
            jobs[-1][1] = {key.strip(): value for key, value in pairs}
    return [tuple(job) for job in jobs]


def planned_jobs(workdir, *args) -> dict:
    """{job name (`dry_run_jobs`): count} of the jobs a dry run would run."""
    return dict(collections.Counter(name for name, _ in dry_run_jobs(workdir, *args)))


def test_lint_is_clean():
    result = snakemake(REPO, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_dag(tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    jobs = planned_jobs(tmp_path, "results/table2.csv")
    # 1 dataset x 4 methods (all 5 seeds in one job); features of each method for 2 splits
    assert jobs == {
        "generate_default_dataset": 1, "prepare_dataset": 1, "prepare_pool": 1, "train_diffusion": 1,
        **{f"extract_features[creatures7 {m} cells]": 2 for m in ("ddpm", "unet_untrained", "pixels", "patch")},
        "train_ensemble": 4, "predict": 4, "evaluate": 4, "overview": 1, "reliability": 1, "table2": 1,
    }


def test_every_rule_is_written_once_with_the_same_names_for_every_config(tmp_path):
    """No rule is generated in a Python loop: the rule names do not depend on the config, so one
    `--set-resources` line reaches every job of a rule (here every extraction: Table 2's cells,
    the probe sweep, Table 5's noise variants, the budget curve's snapshots), and the SLURM
    profile names only rules that exist. Every results path comes from the results layout."""
    for path in [REPO / "Snakefile", *sorted((REPO / "rules").rglob("*.smk"))]:
        text = path.read_text()
        assert not re.search(r"^\s+rule\s*:", text, re.M) and not re.search(r"^for ", text, re.M), path
        assert "results/" not in text, f"{path}: a results path outside ddpmseg.plan.layout"
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    names = {config: snakemake(tmp_path, "--list-rules", *args).stdout.split()
             for config, args in (("default", ()), ("paper", ("--configfile", str(REPO / "config/paper.yaml"))))}
    assert names["default"] == names["paper"] and {"extract_features", "train_diffusion", "corrupt_test"} <= set(names["paper"])
    jobs = dry_run_jobs(tmp_path, "all", "experiments", "figures", "--set-resources", "extract_features:mem_mb=1234")
    extractions = {name: resources for name, resources in jobs if name.startswith("extract_features")}
    kinds = {re.sub(r"\d+$", "", name.split()[-1].rstrip("]")) for name in extractions}
    assert kinds == {"cells", "sweep_t", "noise_per_timestep", "noise_fresh", "noise_fresh_test", "budget_step"}
    assert all(resources["mem_mb"] == "1234" for resources in extractions.values())
    assert all(resources.get("mem_mb") != "1234" for name, resources in jobs if name not in extractions)
    profile = (REPO / "profiles/slurm/config.yaml").read_text()
    gpu_comment = profile[profile.index("# GPUs:"):profile.index("set-resources:")]
    named = set(re.findall(r"\b([a-z]+(?:_[a-z]+)+)\b", gpu_comment)) - {"ensemble_gpu"}
    assert named and named <= set(names["default"]) | {"train_ensemble_", "predict_"}, named - set(names["default"])


def test_bad_dataset_fails_before_any_output(tmp_path):
    data = tmp_path / "broken"
    from ddpmseg.synthetic import generate_dataset

    generate_dataset(data, n_unlabeled=2, n_train=2, n_test=2, image_size=32)
    (data / "real" / "train" / "0001.npy").unlink()
    config = tmp_path / "broken.yaml"
    config.write_text(f"datasets:\n  creatures7: null\n  broken:\n    path: {data}\n")
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    result = snakemake(tmp_path, "results/broken/data/summary.json", "--configfile", str(config), check=False)
    assert result.returncode != 0
    log = (tmp_path / "logs" / "prepare_dataset" / "broken.log").read_text()
    assert "0001.png" in log and "label" in log
    # the user reads the message first, before Snakemake's report of the failed job; no traceback
    printed = result.stdout + result.stderr
    message = f"ERROR Dataset {data} has 1 problem:\n  {data}/real/train/0001.npy: label file missing"
    assert message in printed and printed.index(message) < printed.index("Error in rule prepare_dataset")
    assert "Traceback" not in printed
    assert not (tmp_path / "results" / "broken" / "data" / "train.zarr").exists()


def test_any_changed_file_of_a_dataset_reruns_its_preparation(tmp_path):
    """Snakemake alone sees only the folder's own time stamp; the manifest params see every file:
    the labelled images' rerun the labelled splits, the pool's the pool (and not the other)."""
    import numpy as np

    from ddpmseg.synthetic import generate_dataset

    data = tmp_path / "mine"
    generate_dataset(data, n_unlabeled=3, n_train=2, n_test=2, image_size=32)
    config = tmp_path / "mine.yaml"
    config.write_text(f"datasets:\n  creatures7: null\n  mine:\n    path: {data}\n")
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    args = ("results/mine/data/summary.json", "results/mine/data/unlabeled.zarr", "--configfile", str(config))
    snakemake(tmp_path, *args)
    assert planned_jobs(tmp_path, *args) == {}
    label = data / "real" / "train" / "0001.npy"
    np.save(label, np.zeros_like(np.load(label)))  # a label rewritten
    assert planned_jobs(tmp_path, *args) == {"prepare_dataset": 1}
    snakemake(tmp_path, *args)
    assert zarr.open_group(str(tmp_path / "results/mine/data/train.zarr"), mode="r")["labels"][1].max() == 0
    shutil.copy(data / "real" / "test" / "0000.png", data / "real" / "test" / "sub.png")  # an image added
    shutil.copy(data / "real" / "test" / "0000.npy", data / "real" / "test" / "sub.npy")
    assert planned_jobs(tmp_path, *args) == {"prepare_dataset": 1}
    snakemake(tmp_path, *args)
    (data / "unlabeled" / "0002.png").unlink()  # an image removed from the pool
    assert planned_jobs(tmp_path, *args) == {"prepare_pool": 1}
    snakemake(tmp_path, *args)
    summary = json.loads((tmp_path / "results/mine/data/summary.json").read_text())
    assert summary["counts"] == {"train": 2, "test": 3} and len(summary["manifest_sha256"]) == 64
    pool = zarr.open_group(str(tmp_path / "results/mine/data/unlabeled.zarr"), mode="r")
    assert pool.attrs["image_ids"] == ["0000", "0001"] and pool.attrs["files"] == ["unlabeled/0000.png", "unlabeled/0001.png"]


END_TO_END_ARGS = ("results/table2.csv", "--configfile", str(TEST_CONFIG))
# deleting this extraction's folder of test stores recomputes only what depends on it
DELETED_STORES = "results/tiny/features/ddpm/test/cells"
NUMBERS = ["dataset", "method", "seed", "miou", "miou_soft"]  # the columns of table2_long.csv that must not change


def released_gan_samples():
    """(samples, rng): the six (image, label, ...) samples of the end-to-end run's released synthetic
    set, rendered at 32x32 from seed 7, and the generator after them (it draws their uncertainties)."""
    rng = np.random.default_rng(7)
    return [render_sample(rng, 32) for _ in range(6)], rng


def label_through_label_studio(server, workdir: Path, configfiles: list, batch: str = "results/tiny/label_next") -> dict:
    """`ddpmseg label-studio push` of workdir's tiny batch into a new project, each task's
    prediction submitted as its annotation through the server's API, then `pull` into the tiny
    dataset; returns {push, pull: the commands' output}."""
    from label_studio_sdk import LabelStudio

    env = {**os.environ, "LABEL_STUDIO_API_KEY": server.personal_token}
    title = f"tiny {workdir.parent.name} {Path(batch).name}"
    command = [sys.executable, "-m", "ddpmseg", "label-studio"]
    pushed = subprocess.run([*command, "push", batch, "--project", title, "--url", server.url],
                            cwd=workdir, env=env, capture_output=True, text=True, check=True).stdout
    client = LabelStudio(base_url=server.url, api_key=server.legacy_token)
    [project] = [p for p in client.projects.list() if p.title == title]
    for task in client.tasks.list(project=project.id, fields="all"):
        client.annotations.create(id=task.id, result=task.predictions[0].result)
    pulled = subprocess.run([*command, "pull", "--project", title, "--dataset", "tiny", "--url", server.url,
                             "--configfile", *configfiles], cwd=workdir, env=env, capture_output=True, text=True,
                            check=True).stdout
    return {"push": pushed, "pull": pulled}


def _run_tiny_workflow(root: Path, label_studio) -> dict:
    """Every command of the end-to-end run, in order, under `root`: Table 2 on tests/config.test.yaml
    in root/clean; a dry rerun; a test store deleted and recomputed; a folder segmented and three
    pools distilled (Table 3); the probe sweep (`figures`); `experiments`; the report; and in
    root/killed a DDPM-only run killed during feature extraction and resumed with --cores 1.

    What the tests read that a later command changes is kept as it was: copies in root/snapshots
    (table2.csv and table2_long.csv after the first run, table2_long.csv after the recompute,
    table2.csv after the distillation), and the returned dict (JSON-able) of what the commands
    printed or planned: rerun (the dry rerun's output), jobs_after_deletion, figures_jobs,
    figures_dry, experiments_jobs ({rule: count} / the dry run's stdout), killed_left_table2 (bool),
    label_studio (the push and pull commands' output: the killed run's batch labelled through
    the real Label Studio ``label_studio``), jobs_after_labelling.
    """
    clean, killed = root / "clean", root / "killed"
    for workdir in (clean, killed):
        workdir.mkdir()
        shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    args = END_TO_END_ARGS
    snakemake(clean, *args)
    results = clean / "results"
    snapshots = root / "snapshots"
    snapshots.mkdir()
    shutil.copy(results / "table2.csv", snapshots / "table2.csv")
    shutil.copy(results / "table2_long.csv", snapshots / "table2_long.csv")
    observed = {}

    # a finished run has nothing left to do
    rerun = snakemake(clean, "-n", *args)
    observed["rerun"] = rerun.stdout + rerun.stderr

    # deleting one extraction's test stores recomputes only what depends on them. Snakemake leaves
    # a deleted intermediate alone while everything after it is up to date, so the folder is named
    # as a target beside the table (as docs/reproducing.md says).
    shutil.rmtree(clean / DELETED_STORES)
    observed["jobs_after_deletion"] = planned_jobs(clean, DELETED_STORES, *args)
    snakemake(clean, DELETED_STORES, *args)
    shutil.copy(results / "table2_long.csv", snapshots / "table2_long.recomputed.csv")

    # a folder of images in no split, of other sizes and aspects, segmented by a seed's bundle from the
    # workflow; a and c are 3x the model's 32 (after padding), so that their pixels 3i+1 sit on the
    # model's pixel centres
    folder = root / "to_segment"
    (folder / "sub").mkdir(parents=True)
    sources = sorted((clean / "resources/tiny/source/unlabeled").glob("*.png"))[:3]
    for source, (target, size) in zip(sources, SEGMENTED):
        Image.open(source).convert("RGB").resize(size).save(folder / target, quality=95)
    write_image_mask_dataset(clean / "resources/tiny/source", root / "tiny_folder")
    # a released synthetic dataset in the paper's npz layout (images, labels, latents, uncertainties)
    rendered, rng = released_gan_samples()
    released = root / "released_gan" / "tiny.npz"
    released.parent.mkdir()
    np.savez(released, np.stack([r[0] for r in rendered]), np.stack([r[1] for r in rendered]), np.zeros((6, 4)),
             rng.random(6))
    segment_config = root / "segment.yaml"  # with the distillation of three pools into DeepLab, seed 1
    tiny = yaml.safe_load(TEST_CONFIG.read_text())["datasets"]["tiny"]
    tiny_folder = {"path": str(root / "tiny_folder"), "format": "image_mask", "non_square": "pad",
                   "diffusion": {"flags": tiny["diffusion"]["flags"],
                                 "checkpoint": str(results / "tiny/diffusion/model.pt")},
                   "features": tiny["features"], "ensemble": {**tiny["ensemble"], "aggregation": "learned"},
                   "evaluation": {"resolution": "original", "resplits": 2},
                   "segment": {"photos": {"path": str(folder), "seed": 1, "format": "voc"}}}
    segment_config.write_text(
        "datasets:\n  tiny:\n    segment:\n"
        f"      pool: {{path: {folder}, seed: 1}}\n      pool_deeplab: {{path: {folder}, model: deeplab, seed: 1}}\n"
        "    distill: {pools: [ddpm, unlabeled, released_gan], seeds: [1], n_samples: 6, sample_batch: 4,\n"
        f"              timestep_respacing: ddim5, labelled_by: ddpm, released: {{gan: {released.parent}}},\n"
        "              uncertainty_portion: 0.25, deeplab: {backbone: mobilenet_v3_large, epochs: 2, batch_size: 2}}\n")
    both = ("--configfile", str(TEST_CONFIG), str(segment_config))
    snakemake(clean, "results/table2.csv", "results/table3.csv", "segment", *both)
    shutil.copy(results / "table2.csv", snapshots / "table2.distilled.csv")
    # the same folder segmented by an ensemble trained on an image_mask dataset of non-square images,
    # its cells mixed with learned weights; the dataset re-split at random
    folder_config = root / "tiny_folder.yaml"
    folder_config.write_text(yaml.safe_dump({"datasets": {"tiny_folder": tiny_folder}}))
    snakemake(clean, "results/tiny_folder/segment/photos", "results/tiny_folder/ddpm/seed0/metrics.json",
              "results/tiny_folder/figures/ddpm/cell_weights.png", "results/tiny_folder/ddpm/resplit1/scores.csv",
              "--configfile", str(TEST_CONFIG), str(folder_config))

    # the probe sweep after the ensemble
    observed["figures_jobs"] = planned_jobs(clean, "figures", "--configfile", str(TEST_CONFIG))
    observed["figures_dry"] = snakemake(clean, "-n", "figures", "--configfile", str(TEST_CONFIG)).stdout
    snakemake(clean, "figures", "--configfile", str(TEST_CONFIG))

    # the experiments
    observed["experiments_jobs"] = planned_jobs(clean, "experiments", *both)
    snakemake(clean, "experiments", *both)

    # Snakemake's report
    snakemake(clean, "--report", "report.html", "results/table2.csv", "figures", "experiments", *both)

    # killed in the middle of feature extraction and rerun with --cores 1 (DDPM alone), on a copy
    # of the generated dataset given as a user's folder
    user_data = root / "tiny_data"
    shutil.copytree(clean / "resources/tiny/source", user_data)
    ddpm_only = root / "ddpm_only.yaml"
    ddpm_only.write_text(f"methods: [ddpm]\ndatasets:\n  tiny:\n    path: {user_data}\n")
    killed_args = (*args, str(ddpm_only))
    run_killed_during_extraction(killed, *killed_args, cores=1)
    observed["killed_left_table2"] = (killed / "results/table2.csv").exists()
    snakemake(killed, "--unlock", *killed_args)  # a killed Snakemake leaves its lock behind
    snakemake(killed, *killed_args, cores=1)
    shutil.copy(killed / "results/table2_long.csv", snapshots / "table2_long.killed.csv")

    # which images to label next, by the DDPM ensemble; its batch pushed into Label Studio, the
    # predictions accepted as they are (through the server's API, as an annotator's "submit"),
    # and pulled into the training folder: the labelled splits and what follows them rerun, not
    # the pool nor the diffusion model
    ranking = "results/tiny/label_next/ranking.csv"
    snakemake(killed, ranking, *killed_args)
    shutil.copytree(killed / "results/tiny/label_next", root / "label_next")
    shutil.copy(killed / "results/tiny/ddpm/seed0/ensemble.pt", root / "label_next" / "ensemble.pt")
    observed["label_studio"] = label_through_label_studio(label_studio, killed, [str(TEST_CONFIG), str(ddpm_only)])
    observed["jobs_after_labelling"] = planned_jobs(killed, ranking, *killed_args)
    snakemake(killed, ranking, *killed_args)

    # a region batch of the same ensemble: the pool's regions ranked (the images labelled just now
    # offer none), pushed into Label Studio, the predictions submitted, pulled: only the asked regions
    regions_config = root / "regions.yaml"
    regions_config.write_text("datasets:\n  tiny:\n    label_next: {unit: region, count: 6, per_image: 2}\n")
    region_args = (*killed_args, str(regions_config))
    snakemake(killed, "results/tiny/label_next/regions/ranking.csv", *region_args)
    shutil.copytree(killed / "results/tiny/label_next/regions", root / "label_next_regions")
    observed["region_labelling"] = label_through_label_studio(
        label_studio, killed, [str(TEST_CONFIG), str(ddpm_only), str(regions_config)], "results/tiny/label_next/regions")
    return observed


def write_image_mask_dataset(source: Path, out: Path) -> None:
    """The tiny dataset (paper layout at `source`) as an image_mask folder of non-square images:
    each train / test image and label stretched to 40x32 (width x height; labels nearest), its
    first 6 unlabeled images without masks (the unlabeled pool), and a labelmap.txt."""
    for split in ("train", "test"):
        (out / "images" / split).mkdir(parents=True)
        (out / "masks" / split).mkdir(parents=True)
        for image in sorted((source / "real" / split).glob("*.png")):
            Image.open(image).convert("RGB").resize((40, 32)).save(out / "images" / split / image.name)
            label = Image.fromarray(np.load(image.with_suffix(".npy"))).resize((40, 32), Image.Resampling.NEAREST)
            label.save(out / "masks" / split / image.name)
    for image in sorted((source / "unlabeled").glob("*.png"))[:6]:
        Image.open(image).convert("RGB").resize((40, 32)).save(out / "images" / image.name)
    classes = json.loads((source / "meta.json").read_text())["classes"]
    (out / "labelmap.txt").write_text("".join(f"{name}:::\n" for name in classes))


class TinyRun:
    """The end-to-end run's folders (root, clean, killed, results = clean/results, folder: the
    images segmented), `observed` (`_run_tiny_workflow`'s dict) and its snapshots of Table 2."""

    def __init__(self, root: Path, observed: dict):
        self.root, self.observed = root, observed
        self.clean, self.killed, self.folder = root / "clean", root / "killed", root / "to_segment"
        self.results = self.clean / "results"

    def table(self) -> pd.DataFrame:
        """table2.csv as the first run wrote it."""
        return pd.read_csv(self.root / "snapshots/table2.csv", index_col=0)

    def long(self) -> pd.DataFrame:
        """table2_long.csv as the first run wrote it."""
        return pd.read_csv(self.root / "snapshots/table2_long.csv")


@pytest.fixture(scope="session")
def tiny_workflow(tmp_path_factory, label_studio_server) -> TinyRun:
    """The end-to-end run (`_run_tiny_workflow`), once per test session. Under pytest-xdist the
    workers share it: the first to need it runs it under a file lock in the session's base
    temporary folder (the workers' folders are inside it) and the others wait for it, then read
    it; a failed run fails the others' tests too, without running again."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base
    root, observed_file, failed_file = (shared / f"tiny_workflow{suffix}" for suffix in ("", ".json", ".failed"))
    with open(shared / "tiny_workflow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if failed_file.exists():
            pytest.fail(f"the end-to-end run failed in another worker:\n{failed_file.read_text()}")
        if not observed_file.exists():
            root.mkdir()
            try:
                observed = _run_tiny_workflow(root, label_studio_server)
            except Exception as exc:
                failed_file.write_text(f"{type(exc).__name__}: {exc}")
                raise
            observed_file.write_text(json.dumps(observed))
    return TinyRun(root, json.loads(observed_file.read_text()))


@pytest.mark.slow
def test_tiny_workflow_table2_rows_and_training_outcomes(tiny_workflow):
    results = tiny_workflow.results
    table = tiny_workflow.table()
    assert list(table.index) == ["DDPM", "UNet (untrained)", "MAE", "SwAV", "Pixels (RGB+xy)", "Patch (5x5 RGB+xy)",
                                 "DDPM: layers", "UNet (untrained): layers", "MAE: layers", "SwAV: layers",
                                 "Runs (± over)", "Trained on", "Diffusion training", "MAE training", "SwAV training"]
    assert table.loc["DDPM: layers", "tiny"] == "t5: b1,2,3; t20: b1,2,3"
    assert table.loc["MAE: layers", "tiny"] == "block1"  # the last half of its 2 blocks
    assert table.loc["SwAV: layers", "tiny"] == "layer1.0, layer2.0, layer3.0, layer4.0"
    assert table.loc["Runs (± over)", "tiny"] == "1 model seed x 2 MLP seeds (controls: 2 MLP seeds)"
    assert table.loc["Diffusion training", "tiny"].startswith("6 steps, ")
    assert table.loc["MAE training", "tiny"].startswith("4 steps, ") and table.loc["SwAV training", "tiny"].startswith("4 steps, ")
    for source in ("mae", "swav"):
        pretrained = json.loads((results / f"tiny/pretrained/{source}/training.json").read_text())
        assert (pretrained["steps"], pretrained["stopped_by"], pretrained["source"]) == (4, "max_steps", source)
        mae_store = open_store(next((results / f"tiny/features/{source}/test/cells").glob("features_*.zarr")))
        assert mae_store.attrs["source"] == source and mae_store.attrs["normalisation"] == "imagenet"
        assert mae_store.attrs["timestep"] is None and len(mae_store.attrs["checkpoint_sha256"]) == 64
    assert open_store(results / "tiny/features/mae/test/cells/features_block1.zarr").shape == (3, 32, 8, 8)  # patch 4
    training = json.loads((results / "tiny/diffusion/training.json").read_text())
    assert (training["steps"], training["stopped_by"], training["torch_threads"]) == (6, "max_steps", 2)
    assert list(table.columns) == ["tiny"] and table.loc["DDPM", "tiny"].count("±") == 1
    long = tiny_workflow.long()
    assert len(long) == 12 and long["miou"].between(0, 1).all()
    train = zarr.open_group(str(results / "tiny/data/train.zarr"), mode="r")
    labelled = int((train["labels"][:] != train.attrs["ignore_label"]).sum())  # the training pixels, counted by hand
    assert (long["train_images"] == len(train.attrs["image_ids"])).all() and (long["train_labelled_pixels"] == labelled).all()
    assert table.loc["Trained on", "tiny"] == f"{len(train.attrs['image_ids'])} images, {labelled:,} labelled pixels"


@pytest.mark.slow
def test_tiny_workflow_scored_at_the_images_own_size_gives_the_model_size_miou(tiny_workflow):
    """tiny's images are the model's size and it is scored at their own size
    (`evaluation.resolution: original`): every run, Table 2's, the distilled DeepLab's and the
    experiments', votes again at the images' own size and gets the model-size mIoU."""
    files = sorted((tiny_workflow.results / "tiny").rglob("metrics.json"))
    folders = {path.relative_to(tiny_workflow.results / "tiny").parts[0] for path in files}
    assert {"ddpm", "pixels", "distill_ddpm", "budget"} <= folders
    for path in files:
        metrics = json.loads(path.read_text())
        assert metrics["resolution"] == "original", path
        assert metrics["miou"] == pytest.approx(metrics["miou_at_model_size"], abs=1e-9), path


@pytest.mark.slow
def test_tiny_workflow_measures_how_far_the_uncertainty_can_be_trusted(tiny_workflow):
    """Every Table 2 run has the AUROC of its JS uncertainty for the misclassified pixels and its
    soft vote's ECE; the reliability diagram pools them per method, and its ECE comes from the
    bins that the runs recorded."""
    long = tiny_workflow.long()
    assert long["auroc_uncertainty"].between(0, 1).all() and long["ece"].between(0, 1).all()
    results = tiny_workflow.results
    metrics = json.loads((results / "tiny/ddpm/seed0/metrics.json").read_text())
    bins = metrics["calibration"]
    labelled = int((zarr.open_group(str(results / "tiny/data/test.zarr"), mode="r")["labels"][:] != 255).sum())
    assert 0 < sum(bins["count"]) <= labelled and len(bins["count"]) == 15
    assert metrics["ece"] == pytest.approx(sum(n * abs(a - c) for n, a, c in zip(bins["count"], bins["accuracy"], bins["confidence"])
                                               if n) / sum(bins["count"]))
    table = pd.read_csv(results / "tiny/reliability.csv")
    assert list(table["method"].unique()) == list(dict.fromkeys(long["method"]))
    pooled = table[table.method == "DDPM"]
    seeds = [json.loads((results / f"tiny/ddpm/seed{s}/metrics.json").read_text())["calibration"] for s in (0, 1)]
    assert pooled["count"].tolist() == [a + b for a, b in zip(seeds[0]["count"], seeds[1]["count"])]
    assert (results / "tiny/reliability.png").stat().st_size > 10_000


@pytest.mark.slow
def test_tiny_workflow_stores_open_with_xarray_and_dask_and_the_run_writes_its_outputs(tiny_workflow):
    results = tiny_workflow.results
    store = open_store(str(results / "tiny/features/ddpm/test/cells/features_b1_t20.zarr"))
    assert store.shape == (3, 64, 32, 32) and store.dtype == "float16"  # block 1 upsamples 16 -> 32
    assert store.attrs["timestep"] == 20 and len(store.attrs["checkpoint_sha256"]) == 64
    assert store.attrs["torch_threads"] == 2 and store.attrs["model_seed"] == 0
    # the same store with xarray and dask, attrs kept
    import dask.array as da
    import xarray as xr

    opened = xr.open_zarr(results / "tiny/features/ddpm/test/cells/features_b1_t20.zarr")["features"]
    assert opened.dims == ("image", "channel", "y", "x") and opened.attrs["timestep"] == 20
    assert (opened.values == store[:]).all()
    lazy = da.from_zarr(str(results / "tiny/features/ddpm/test/cells/features_b1_t20.zarr"), component="features")
    assert lazy.shape == store.shape and float(lazy[2].sum().compute()) == float(store[2].sum())
    assert open_store(str(results / "tiny/features/ddpm/test/cells/features_b2_t5.zarr")).shape[1] == 32
    metrics = json.loads((results / "tiny/ddpm/seed1/metrics.json").read_text())
    assert metrics["vote"] == "majority" and 0 <= metrics["miou_soft"] <= 1
    assert sorted(p.name for p in (results / "tiny/ddpm/seed0/masks").glob("*.png")) == ["0000.png", "0001.png", "0002.png"]
    for png in ("tiny/overview.png", "tiny/diffusion/loss.png"):
        assert (results / png).stat().st_size > 10_000
    assert pd.read_csv(results / "tiny/diffusion/loss.csv")["step"].iloc[-1] == 6


@pytest.mark.slow
def test_tiny_workflow_rerun_does_nothing_and_a_deleted_store_recomputes_the_same_numbers(tiny_workflow):
    observed = tiny_workflow.observed
    # a finished run has nothing left to do
    assert "Nothing to be done" in observed["rerun"]
    # deleting one test store recomputes only what depends on it, with the same numbers
    assert observed["jobs_after_deletion"] == {
        "extract_features[tiny ddpm cells]": 1, "predict": 1, "evaluate": 1, "overview": 1, "reliability": 1, "table2": 1}
    long = tiny_workflow.long()
    pd.testing.assert_frame_equal(pd.read_csv(tiny_workflow.root / "snapshots/table2_long.recomputed.csv")[NUMBERS],
                                  long[NUMBERS])


def assert_agrees_with_the_model_size_prediction(bundle, files: list, labels: list) -> None:
    """Masks at the images' own size (`labels`) equal the model-size prediction of the padded
    square at its pixel centres (SEGMENTED's a and c), and inside the image their nearest-neighbour
    reduction to the model's size agrees with it on most pixels (all of them)."""
    from ddpmseg.resizing import fit_image, square_box
    from ddpmseg.images import read_rgb

    pictures = [read_rgb(path) for path in files]
    square = bundle.predict(np.stack([fit_image(rgb, 32, "pad") for rgb in pictures]))[0]
    for i in (0, 2):
        height, width = pictures[i].shape[:2]
        top, left, side = square_box(height, width, "pad")
        centres = np.arange(32) * 3 + 1  # square pixels on the model's pixel centres
        rows, cols = centres - top, centres - left
        keep_rows, keep_cols = (rows >= 0) & (rows < height), (cols >= 0) & (cols < width)
        at_centres = labels[i][np.ix_(rows[keep_rows], cols[keep_cols])]
        assert (at_centres == square[i][np.ix_(keep_rows, keep_cols)]).all()
    for i, rgb in enumerate(pictures):
        height, width = rgb.shape[:2]
        top, left, side = square_box(height, width, "pad")
        centres = ((np.arange(32) + 0.5) * side / 32).astype(int)
        rows, cols = centres - top, centres - left
        keep_rows, keep_cols = (rows >= 0) & (rows < height), (cols >= 0) & (cols < width)
        reduced = labels[i][np.ix_(rows[keep_rows], cols[keep_cols])]
        assert (reduced == square[i][np.ix_(keep_rows, keep_cols)]).mean() > 0.8


@pytest.mark.slow
def test_tiny_workflow_segments_an_image_mask_dataset_of_non_square_images(tiny_workflow):
    """An image_mask dataset of non-square images (pad) read, trained on and used to segment the
    folder: the prepared splits record each image's size, the masks come back at each image's
    own size and agree with the model-size prediction."""
    results, folder = tiny_workflow.results, tiny_workflow.folder
    summary = json.loads((results / "tiny_folder/data/summary.json").read_text())
    assert summary["counts"] == {"train": 4, "test": 3, "unlabeled": 6} and summary["format"] == "image_mask"
    train = zarr.open_group(results / "tiny_folder/data/train.zarr", mode="r")
    assert train.attrs["original_sizes"] == [[32, 40]] * 4 and train.attrs["non_square"] == "pad"
    assert (train["labels"][:, :3] == 255).all()  # the padding rows are ignored
    segmented = zarr.open_group(results / "tiny_folder/segment/photos/segmentation.zarr", mode="r")
    assert [segmented["labels"][str(i)].shape for i in range(3)] == [(72, 96), (48, 48), (96, 48)]
    bundle = Segmenter.load(results / "tiny_folder/ddpm/seed1/segmenter")
    files = [folder / name for name, _ in SEGMENTED]
    labels = [segmented["labels"][str(i)][:] for i in range(3)]
    assert all((a == b).all() for a, b in zip(bundle.predict_files(files)[0], labels))
    assert_agrees_with_the_model_size_prediction(bundle, files, labels)
    # the masks also written as a VOC dataset (segment.photos.format), which reads back as they are
    exported = READERS["voc"](results / "tiny_folder/segment/photos/voc", {"format": "voc"})
    names, lut = class_table(exported, None, "auto", 255, "voc")
    assert names == bundle.classes
    decoded = {image.image_id: lut_classes(image.class_map(), lut) for image in exported.images}
    assert all((decoded[image_id] == labels[i]).all() for i, image_id in enumerate(["a", "b", "sub/c"]))


@pytest.mark.slow
def test_tiny_workflow_scores_an_image_mask_dataset_at_the_images_own_size(tiny_workflow):
    """`evaluation.resolution: original`: the test split keeps each label at its image's own size
    (40x32, as written), the predictions come at that size too, and the mIoU is theirs; the
    paper's model-size mIoU is kept beside it and is close to it."""
    from ddpmseg.splits import read_original_labels
    from ddpmseg.metrics import mean_iou

    results = tiny_workflow.results
    test = results / "tiny_folder/data/test.zarr"
    written = sorted((tiny_workflow.root / "tiny_folder/masks/test").glob("*.png"))
    originals = read_original_labels(test)
    assert len(originals) == len(written) == 3
    assert all((np.asarray(Image.open(path)) == label).all() for path, label in zip(written, originals))
    metrics = json.loads((results / "tiny_folder/ddpm/seed0/metrics.json").read_text())
    assert metrics["resolution"] == "original"
    predictions = zarr.open_group(results / "tiny_folder/ddpm/seed0/predictions.zarr", mode="r")
    majority = [predictions["original/majority"][str(i)][:] for i in range(3)]
    assert [m.shape for m in majority] == [(32, 40)] * 3
    classes = zarr.open_group(test, mode="r").attrs["classes"]
    expected = mean_iou(np.concatenate([m.ravel() for m in majority]), np.concatenate([o.ravel() for o in originals]),
                        len(classes), 255)
    assert metrics["miou"] == pytest.approx(expected) and metrics["miou_majority"] == pytest.approx(expected)
    assert abs(metrics["miou"] - metrics["miou_at_model_size"]) < 0.15


@pytest.mark.slow
def test_tiny_workflow_learned_aggregation_writes_each_members_cell_weights(tiny_workflow):
    """tiny_folder's ensembles mix their cells with learned weights (`ensemble.aggregation:
    learned`): the table has a weight per seed, member and cell of features.json, each member's
    summing to one and moved away from uniform by training, and the figure beside Figure 2's."""
    results = tiny_workflow.results / "tiny_folder"
    table = pd.read_csv(results / "ddpm/cell_weights.csv")
    cells = json.loads((results / "ddpm/features.json").read_text())["cells"]
    assert len(cells) == 3 * 2 and len(table) == 2 * 3 * len(cells)  # seeds x members x cells
    assert [[layer, int(t)] for layer, t in zip(table["layer"][: len(cells)], table["timestep"])] == cells
    sums = table.groupby(["seed", "member"])["weight"].sum()
    np.testing.assert_allclose(sums, 1.0, rtol=1e-5)
    assert (table["weight"] - 1 / len(cells)).abs().max() > 1e-4
    assert torch.load(results / "ddpm/seed1/ensemble.pt", weights_only=True)["cell_weights"].shape == (3, len(cells))
    assert (results / "figures/ddpm/cell_weights.png").stat().st_size > 10_000


@pytest.mark.slow
def test_tiny_workflow_resplits_partition_the_labelled_images_and_score_each_seed(tiny_workflow):
    """tiny_folder with `evaluation.resplits: 2`: split 1 names every labelled image once, by its
    fixed split, with the train split's size; its scores have a row per seed, on the other images."""
    results = tiny_workflow.results / "tiny_folder"
    ids = {split: zarr.open_group(str(results / f"data/{split}.zarr"), mode="r").attrs["image_ids"]
           for split in ("train", "test")}
    split = json.loads((results / "resplits/split1.json").read_text())
    assert sorted(split["train"] + split["test"]) == sorted(f"{s}/{i}" for s in ids for i in ids[s])
    assert len(split["train"]) == len(ids["train"]) and split["train"] != [f"train/{i}" for i in ids["train"]]
    scores = pd.read_csv(results / "ddpm/resplit1/scores.csv")
    assert list(scores["seed"]) == [0, 1] and (scores["test_images"] == len(ids["test"])).all()
    assert scores["miou"].between(0, 1).all()


@pytest.mark.slow
def test_tiny_workflow_segments_a_folder_and_a_bundle_names_its_checkpoint(tiny_workflow, tmp_path):
    """A folder of images in no split, segmented by a seed's bundle from the workflow, and the
    same masks from Python with the bundle alone; on the test split the bundle gives the
    predict rule's masks (extracted and predicted by other code)."""
    results, folder = tiny_workflow.results, tiny_workflow.folder
    segmented = zarr.open_group(results / "tiny/segment/pool/segmentation.zarr", mode="r")
    assert segmented.attrs["image_ids"] == ["a", "b", "sub/c"]
    assert [segmented["labels"][str(i)].shape for i in range(3)] == [(72, 96), (48, 48), (96, 48)]
    masks = {str(p.relative_to(results / "tiny/segment/pool/masks")): Image.open(p).size
             for p in (results / "tiny/segment/pool/masks").rglob("*.png")}
    assert masks == {"a.png": (96, 72), "b.png": (48, 48), "sub/c.png": (48, 96)}  # each image's own size
    assert (results / "tiny/segment/pool/uncertainty/sub/c.png").is_file()
    bundle = Segmenter.load(results / "tiny/ddpm/seed1/segmenter")
    assert bundle.classes == zarr.open_group(results / "tiny/data/test.zarr", mode="r").attrs["classes"]
    files = [folder / name for name, _ in SEGMENTED]
    labels, uncertainty = bundle.predict_files(files)
    for i in range(3):
        assert (labels[i] == segmented["labels"][str(i)][:]).all()
        assert (uncertainty[i].astype("float16") == segmented["uncertainty"][str(i)][:]).all()
    assert_agrees_with_the_model_size_prediction(bundle, files, labels)
    test_images = zarr.open_group(results / "tiny/data/test.zarr", mode="r")["images"][:]
    predicted = zarr.open_group(results / "tiny/ddpm/seed1/predictions.zarr", mode="r")
    labels, uncertainty = bundle.predict(test_images)
    assert (labels == predicted["majority"][:]).all() and (uncertainty.astype("float16") == predicted["uncertainty"][:]).all()
    # the bundle names its checkpoint relative to itself: a moved tree works, a missing or other file fails
    moved = tmp_path / "moved"
    shutil.copytree(results / "tiny/ddpm/seed1/segmenter", moved / "tiny/ddpm/seed1/segmenter")
    with pytest.raises(CheckpointError, match=r"moved/tiny/ddpm/seed1/segmenter: .*moved/tiny/ddpm/seed1/segmenter/"
                                              r"\.\./\.\./\.\./diffusion/model\.pt is missing"):
        Segmenter.load(moved / "tiny/ddpm/seed1/segmenter")
    (moved / "tiny/diffusion").mkdir()
    shutil.copy(results / "tiny/diffusion/model.pt", moved / "tiny/diffusion/model.pt")
    assert (Segmenter.load(moved / "tiny/ddpm/seed1/segmenter").predict(test_images[:1])[0] == labels[:1]).all()
    with open(moved / "tiny/diffusion/model.pt", "ab") as f:
        f.write(b"0")
    with pytest.raises(CheckpointError, match="has sha256 .*, the bundle was built with"):
        Segmenter.load(moved / "tiny/ddpm/seed1/segmenter")


def ddpmseg_command(*args):
    """`python -m ddpmseg ARGS` with this repository's package: (exit status, stdout, stderr)."""
    result = subprocess.run([sys.executable, "-m", "ddpmseg", *map(str, args)], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    return result.returncode, result.stdout, result.stderr


@pytest.mark.slow
def test_tiny_workflow_ddpmseg_command_segments_as_the_workflow_does(tiny_workflow, tmp_path):
    """`ddpmseg segment` on the folder the workflow's `segment:` target segmented, with the same
    bundle, writes the same masks and uncertainty PNGs pixel for pixel (in batches of 2), plus an
    overlay each; `ddpmseg info` names the bundle's classes, cells, checkpoint and its run's scores."""
    results, folder = tiny_workflow.results, tiny_workflow.folder
    bundle = results / "tiny/ddpm/seed1/segmenter"
    status, _, stderr = ddpmseg_command("segment", bundle, folder, "--out", tmp_path / "out", "--batch-size", 2,
                                        "--quiet")
    assert status == 0, stderr
    workflow = results / "tiny/segment/pool"
    for name in ("a", "b", "sub/c"):
        for kind in ("masks", "uncertainty"):
            ours, theirs = (np.asarray(Image.open(root / kind / f"{name}.png")) for root in (tmp_path / "out", workflow))
            assert ours.shape == theirs.shape and (ours == theirs).all(), (name, kind)
        assert Image.open(tmp_path / "out/masks" / f"{name}.png").mode == "P"
        assert (tmp_path / "out/overlays" / f"{name}.png").stat().st_size > 5000
    assert json.loads((tmp_path / "out/segment.json").read_text())["images"]["sub/c"] == str(folder / "sub/c.png")
    status, stdout, _ = ddpmseg_command("info", bundle)
    classes = zarr.open_group(results / "tiny/data/test.zarr", mode="r").attrs["classes"]
    metrics = json.loads((results / "tiny/ddpm/seed1/metrics.json").read_text())
    assert status == 0
    assert f"classes ({len(classes)}): " + ", ".join(f"{i} {c}" for i, c in enumerate(classes)) in stdout
    assert "cells (6): b1@t5, b2@t5, b3@t5, b1@t20, b2@t20, b3@t20" in stdout
    assert f"mIoU {100 * metrics['miou']:.1f}%" in stdout and "diffusion/model.pt (sha256 " in stdout


@pytest.mark.slow
def test_tiny_workflow_ddpmseg_command_segments_tagged_photos_as_they_are_shown(tiny_workflow, tmp_path):
    """A photo stored turned with an EXIF orientation (6 and 8: a phone's portrait photos; 3:
    upside down) is segmented as it is shown: its mask equals that of the same photo saved upright,
    at the shown size."""
    from ddpmseg.images import ORIENTATION_TAG

    bundle = tiny_workflow.results / "tiny/ddpm/seed1/segmenter"
    upright = Image.open(tiny_workflow.folder / "a.png").convert("RGB")  # 96x72
    photos = tmp_path / "photos"
    photos.mkdir()
    upright.save(photos / "upright.png")
    undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    for tag, turn in undo.items():
        exif = Image.Exif()
        exif[ORIENTATION_TAG] = tag
        upright.transpose(turn).save(photos / f"tag{tag}.png", exif=exif.tobytes())
    status, _, stderr = ddpmseg_command("segment", bundle, photos, "--out", tmp_path / "out", "--quiet")
    assert status == 0, stderr
    reference = np.asarray(Image.open(tmp_path / "out/masks/upright.png"))
    assert reference.shape == (72, 96)
    for tag in undo:
        mask = np.asarray(Image.open(tmp_path / f"out/masks/tag{tag}.png"))
        assert mask.shape == (72, 96) and (mask == reference).all(), tag


@pytest.mark.slow
@pytest.mark.parametrize("bundle", ["ddpm/seed1", "distill_ddpm/seed1"])
def test_tiny_workflow_bundles_export_to_onnx_and_agree_with_torch(tiny_workflow, tmp_path, bundle):
    """`ddpmseg export` of the DDPM ensemble (the ADM with its fixed noise in the graph) and of the
    distilled DeepLab: on the test split, onnxruntime's labels equal the bundle's on at least 99.9%
    of the pixels, its probabilities and uncertainty those of the graph in torch within 2e-3, and
    the metadata describes the bundle."""
    import onnx

    from ddpmseg.export import onnx_predict, segmenter_graph

    folder = tiny_workflow.results / "tiny" / bundle / "segmenter"
    status, stdout, stderr = ddpmseg_command("export", folder, tmp_path / "model.onnx", "--check", tiny_workflow.folder)
    assert status == 0, stderr
    assert "labels agree with the bundle on" in stdout and "uncertainty differs by at most" in stdout
    images = zarr.open_group(tiny_workflow.results / "tiny/data/test.zarr", mode="r")["images"][:]
    labels, probabilities, uncertainty = onnx_predict(tmp_path / "model.onnx", images)
    segmenter = Segmenter.load(folder)
    expected, _ = segmenter.predict(images)
    assert labels.shape == expected.shape and (labels == expected).mean() >= 0.999
    with torch.no_grad():
        graph = [segmenter_graph(segmenter)(torch.from_numpy(image[None])) for image in images]
    np.testing.assert_allclose(probabilities, np.concatenate([g[1].numpy() for g in graph]), atol=2e-3)
    np.testing.assert_allclose(uncertainty, np.concatenate([g[2].numpy() for g in graph]), atol=2e-3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    metadata = {p.key: p.value for p in onnx.load(tmp_path / "model.onnx").metadata_props}
    assert json.loads(metadata["ddpmseg"])["classes"] == segmenter.classes


@pytest.mark.slow
def test_tiny_workflow_ddpmseg_command_errors_are_one_line_naming_the_file(tiny_workflow, tmp_path):
    bundle = tiny_workflow.results / "tiny/ddpm/seed1/segmenter"
    (tmp_path / "broken.png").write_bytes(b"not a png")
    newer = tmp_path / "newer"
    shutil.copytree(bundle, newer)
    description = json.loads((newer / "segmenter.json").read_text())
    (newer / "segmenter.json").write_text(json.dumps({**description, "format": "ddpmseg-segmenter/9"}))
    (tmp_path / "empty").mkdir()
    cases = [
        (("segment", bundle, tmp_path / "nothing.jpg"), "nothing.jpg: no such file or folder"),
        (("segment", bundle, tmp_path / "empty"), "empty: no images"),
        (("segment", bundle, tmp_path / "broken.png"), "broken.png"),
        (("segment", tmp_path / "empty", tiny_workflow.folder), "empty: no segmenter.json here"),
        (("info", newer), "format 'ddpmseg-segmenter/9'; this ddpmseg reads ddpmseg-segmenter/1"),
    ]
    for args, expected in cases:
        status, _, stderr = ddpmseg_command(*args, *(["--out", tmp_path / "out", "--quiet"] if args[0] == "segment" else []))
        lines = stderr.strip().splitlines()
        assert status == 2 and len(lines) == 1 and expected in lines[0], (args, stderr)
    assert not (tmp_path / "out/masks/broken.png").exists()


@pytest.mark.slow
def test_tiny_workflow_distills_three_pools_into_deeplab_and_fills_table3(tiny_workflow):
    """DatasetDDPM: seeded sample batches, each seed's labels in the paper's layout, the most
    uncertain quarter dropped, one DeepLab per seed, two new rows of Table 2 with their times;
    Table 3: DDPM trained on the real, the "ddpm" and the "gan" annotated images; DatasetDDPM
    under the images its labelling ensembles were trained on; the released GAN set's DeepLab."""
    results, folder, table = tiny_workflow.results, tiny_workflow.folder, tiny_workflow.table()
    rendered, _ = released_gan_samples()
    test_images = zarr.open_group(results / "tiny/data/test.zarr", mode="r")["images"][:]
    samples = [zarr.open_group(results / f"tiny/distill_ddpm/samples/batch{b}.zarr", mode="r") for b in (0, 1)]
    assert [s.attrs["image_ids"] for s in samples] == [["00000", "00001", "00002", "00003"], ["00004", "00005"]]
    checkpoint = results / "tiny/diffusion/model.pt"
    flags = json.loads((results / "tiny/diffusion/flags.json").read_text())
    assert (sample_batch(checkpoint, flags, 2, 0, 1, "ddim5") == samples[1]["images"][:]).all()  # from the seed alone
    labelled = results / "tiny/distill_ddpm/labelled/seed1/batch1"
    assert np.load(labelled / "00005.npy").dtype == np.uint8 and (labelled / "00005.png").is_file()
    labeller = json.loads((results / "tiny/ddpm/trained_on_ddpm/seed1/segmenter/segmenter.json").read_text())
    assert labeller["provenance"]["trained_on"] == "ddpm"  # labelled_by: the annotated DDPM samples
    assert json.loads((labelled / "labelling.json").read_text())["bundle"].endswith("ddpm/trained_on_ddpm/seed1/segmenter")
    selection = pd.read_csv(results / "tiny/distill_ddpm/labelled/seed1/selection.csv", dtype={"image": str})
    assert len(selection) == 6 and (~selection.kept).sum() == 1  # floor(0.25 x 6)
    assert selection.loc[~selection.kept, "js_top10"].min() >= selection.loc[selection.kept, "js_top10"].max()
    unlabeled = pd.read_csv(results / "tiny/distill_unlabeled/labelled/seed1/selection.csv")
    assert len(unlabeled) == 16 and (~unlabeled.kept).sum() == 4
    assert (results / "tiny/distill_ddpm/labelled/seed1/samples.png").stat().st_size > 10_000
    released_pool = results / "tiny/distill_released_gan/labelled/released"
    assert (np.load(released_pool / "00003.npy") == rendered[3][1]).all()
    assert (np.asarray(Image.open(released_pool / "00003.png")) == rendered[3][0]).all()
    assert (~pd.read_csv(results / "tiny/distill_released_gan/labelled/seed1/selection.csv").kept).sum() == 1
    distilled = pd.read_csv(tiny_workflow.root / "snapshots/table2.distilled.csv", index_col=0)
    for row in ("DatasetDDPM", "DDPM -> DeepLab (unlabeled)", "DatasetGAN (released)"):
        assert distilled.loc[row, "tiny"].endswith(" ± 0.0"), row  # one DeepLab seed
    table3 = pd.read_csv(results / "table3.csv", index_col=0, keep_default_na=False)
    assert list(table3.columns) == ["tiny: real", "tiny: ddpm", "tiny: gan"]
    assert list(table3.index) == ["DDPM", "DatasetDDPM", "DatasetGAN (released)"]
    assert table3.loc["DDPM", "tiny: real"] == table.loc["DDPM", "tiny"]  # Table 2's run
    assert table3.loc["DatasetDDPM"].tolist() == ["", distilled.loc["DatasetDDPM", "tiny"], ""]
    assert table3.loc["DatasetGAN (released)"].tolist() == ["", "", distilled.loc["DatasetGAN (released)", "tiny"]]
    assert all(cell.count("±") == 1 for cell in table3.loc["DDPM"])
    trained_on = {name: zarr.open_group(results / f"tiny/data/annotated-{name}.zarr", mode="r") for name in ("ddpm", "gan")}
    assert trained_on["ddpm"]["labels"].shape == (3, 32, 32) and not (trained_on["ddpm"]["images"][:] == trained_on["gan"]["images"][:]).all()
    assert "DeepLab" in distilled.loc["DatasetDDPM: times", "tiny"] and "sampling" in distilled.loc["DatasetDDPM: times", "tiny"]
    assert distilled.loc["DDPM", "tiny"] == table.loc["DDPM", "tiny"]  # the other rows do not change
    outcome = json.loads((results / "tiny/distill_ddpm/seed1/training.json").read_text())
    assert (outcome["images"], outcome["pool_images"], outcome["epochs"]) == (5, 6, 2)
    deeplab = Segmenter.load(results / "tiny/distill_ddpm/seed1/segmenter")
    predicted = zarr.open_group(results / "tiny/distill_ddpm/seed1/predictions.zarr", mode="r")
    assert (deeplab.predict(test_images)[0] == predicted["majority"][:]).all()
    by_deeplab = zarr.open_group(results / "tiny/segment/pool_deeplab/segmentation.zarr", mode="r")
    by_file = deeplab.predict_files([folder / name for name, _ in SEGMENTED])[0]
    assert all((labels == by_deeplab["labels"][str(i)][:]).all() for i, labels in enumerate(by_file))


@pytest.mark.slow
def test_tiny_workflow_probe_sweep_reuses_the_ensembles_stores(tiny_workflow):
    """The probe sweep after the ensemble reuses its stores: at t 5 and 20 only block 0 is new."""
    results, observed = tiny_workflow.results, tiny_workflow.observed
    jobs = observed["figures_jobs"]
    assert {k: v for k, v in jobs.items() if k.startswith("extract_features")} == {
        f"extract_features[tiny ddpm sweep_t{t}]": 2 for t in (5, 20, 50)}  # train, test; none of Table 2's cells
    dry = observed["figures_dry"]
    assert "output: results/tiny/features/ddpm/train/sweep_t5\n" in dry
    assert (results / "tiny/features/ddpm/train/sweep_t5/features_b0_t5.zarr").is_dir()  # block 0 alone at t 5
    assert not (results / "tiny/features/ddpm/train/sweep_t5/features_b1_t5.zarr").exists()
    grid = pd.read_csv(results / "tiny/probes/ddpm/miou_by_layer_timestep.csv")
    assert grid[["layer", "timestep"]].values.tolist() == [[f"b{b}", t] for b in range(4) for t in (5, 20, 50)]
    assert grid[["miou", "miou_small", "miou_large", "miou_cv"]].stack().between(0, 1).all()
    assert grid["channels"].tolist() == [64] * 6 + [32] * 6
    for name in ("fig2.png", "fig3.png", "fig4.png"):
        assert (results / "tiny/figures/ddpm" / name).stat().st_size > 10_000


@pytest.mark.slow
def test_tiny_workflow_experiments_reuse_table2_and_give_table4_and_per_class_iou(tiny_workflow):
    """The experiments reuse Table 2's features, models and ensembles: none of Table 2's jobs reruns."""
    results, table = tiny_workflow.results, tiny_workflow.table()
    jobs = tiny_workflow.observed["experiments_jobs"]
    assert not any(k.startswith(("extract_features[tiny ddpm cells", "extract_features[tiny ddpm sweep", "pretrain"))
                   for k in jobs)
    assert not {"train_diffusion", "train_ensemble", "predict", "evaluate"} & set(jobs)
    assert jobs["train_ensemble_labels"] == 4  # (ddpm, pixels) x (2, 1) labelled images, all seeds in one job
    assert {k: v for k, v in jobs.items() if k.startswith("extract_features[tiny ddpm noise")} == {
        "extract_features[tiny ddpm noise_per_timestep]": 2,  # train, test
        **{f"extract_features[tiny ddpm noise_fresh{k}]": 1 for k in range(4)},  # 4 fresh train draws
        "extract_features[tiny ddpm noise_fresh_test]": 1}
    assert jobs["train_diffusion_budget"] == 1  # 2 snapshots x 2 splits:
    assert jobs["extract_features[tiny ddpm budget_step6]"] == jobs["extract_features[tiny ddpm budget_step9]"] == 2
    assert jobs["active_labelling_run"] == 4 * 2 and jobs["active_labelling"] == 1  # strategies x seeds
    assert jobs["active_labelling_region_run"] == 2 * 2 and jobs["cut_regions"] == 1  # the region arm: train regions
    subsets = {n: json.loads((results / f"tiny/ddpm/labels{n}/subsets.json").read_text()) for n in (2, 1)}
    assert subsets[2] == json.loads((results / "tiny/pixels/labels2/subsets.json").read_text())  # per seed, not per method
    for seed in ("0", "1"):
        assert len(subsets[2][seed]) == 2 and set(subsets[1][seed]) < set(subsets[2][seed])  # nested
    assert subsets[2]["0"] != subsets[2]["1"] or subsets[1]["0"] != subsets[1]["1"]  # each seed draws its own
    table4 = pd.read_csv(results / "table4.csv", index_col=0)
    assert list(table4.index) == ["DDPM", "Pixels (RGB+xy)"] and list(table4.columns) == ["tiny: 4", "tiny: 2", "tiny: 1"]
    assert table4.loc["DDPM", "tiny: 4"] == table.loc["DDPM", "tiny"]  # the whole split is Table 2's run
    long4 = pd.read_csv(results / "table4_long.csv")
    assert len(long4) == 2 * 3 * 2 and long4["miou"].between(0, 1).all()
    train = zarr.open_group(str(results / "tiny/data/train.zarr"), mode="r")
    ids, labels = train.attrs["image_ids"], train["labels"][:]
    for seed in ("0", "1"):  # each run's labelled pixels are its subset's, counted by hand
        metrics = json.loads((results / f"tiny/ddpm/labels2/seed{seed}/metrics.json").read_text())
        picked = [ids.index(i) for i in subsets[2][seed]]
        assert metrics["train_images"] == 2
        assert metrics["train_labelled_pixels"] == int((labels[picked] != train.attrs["ignore_label"]).sum())
    assert not (results / "tiny/ddpm/labels2/seed0/predictions.zarr").exists()  # temporary: only scores are kept
    per_class = pd.read_csv(results / "tiny/per_class_iou.csv", index_col=0)
    classes = zarr.open_group(results / "tiny/data/test.zarr", mode="r").attrs["classes"]
    assert list(per_class.index) == classes + ["mIoU"]
    assert list(per_class.columns) == ["DDPM", "UNet (untrained)", "MAE", "SwAV", "Pixels (RGB+xy)", "Patch (5x5 RGB+xy)"]
    assert (per_class.loc["mIoU"] == table.loc[per_class.columns.tolist(), "tiny"]).all()  # Table 2's cells
    assert (results / "tiny/per_class_iou.png").stat().st_size > 10_000


@pytest.mark.slow
def test_tiny_workflow_simulated_labelling_loop(tiny_workflow):
    """Image arm: 1 -> 3 of tiny's 4 training images, each strategy from the same start per seed:
    round 0 is one ensemble on one image whatever the strategy; every round adds new images, one
    each. Region arm: 5% -> 20% of the labelled pixels in regions, from the same random regions
    per seed; the labelled pixels are the asked regions' labelled pixels, counted by hand."""
    from ddpmseg.experiments.active_labelling import asked_pixels
    from ddpmseg.regions import read_regions

    results = tiny_workflow.results
    long = pd.read_csv(results / "tiny/active_labelling.csv", dtype={"added": str})
    images = long[long["unit"] == "image"]
    assert len(images) == 4 * 2 * 3 and set(images["strategy"]) == {"uncertainty", "diversity", "uncertainty+diversity",
                                                                     "random"}
    assert (long["method"] == "DDPM").all() and long["miou"].between(0, 1).all()
    assert images["images"].tolist() == [1, 2, 3] * 8 and images["share"].iloc[-1] > images["share"].iloc[-2]
    for seed, runs in images.groupby("seed"):
        start = runs[runs["round"] == 0]
        assert start["added"].nunique() == 1 and start["miou"].nunique() == 1, seed  # the same start and ensemble
        for strategy, run in runs.groupby("strategy"):
            added = [set(a.split(";")) for a in run.sort_values("round")["added"]]
            assert [len(a) for a in added] == [1, 1, 1] and len(set.union(*added)) == 3, (seed, strategy)
    train = zarr.open_group(str(results / "tiny/data/train.zarr"), mode="r")
    labels, ids = train["labels"][:], train.attrs["image_ids"]
    total = np.count_nonzero(labels != train.attrs["ignore_label"])
    regions = read_regions(results / "tiny/data/regions/train.zarr")
    region_runs = long[long["unit"] == "region"]
    assert len(region_runs) == 2 * 2 * 2 and (region_runs["share"].to_numpy().reshape(-1, 2) >= [0.05, 0.2]).all()
    for (strategy, seed), run in region_runs.groupby(["strategy", "seed"]):
        pairs = [(ids.index(p.rsplit(":", 1)[0]), int(p.rsplit(":", 1)[1])) for a in run["added"] for p in a.split(";")]
        asked = asked_pixels(regions, pairs)
        assert run["labelled_pixels"].iloc[-1] == np.count_nonzero(asked & (labels != train.attrs["ignore_label"])), (strategy, seed)
        assert run["share"].iloc[-1] == pytest.approx(run["labelled_pixels"].iloc[-1] / total)
        assert run["regions"].iloc[-1] == len(set(pairs))
    start = region_runs[region_runs["round"] == 0].groupby("seed")["added"].nunique()
    assert (start == 1).all()  # every strategy of a seed starts from the same regions
    summary = pd.read_csv(results / "tiny/active_labelling_summary.csv")
    assert list(summary.columns) == ["dataset", "unit", "strategy", "round", "images", "regions", "share", "miou_mean",
                                     "miou_std", "seeds"]
    assert len(summary) == 4 * 3 + 2 * 2 and (summary["seeds"] == 2).all()
    random = summary.set_index(["unit", "strategy", "round"]).loc[("region", "random", 1)]
    assert random["miou_mean"] == pytest.approx(100 * region_runs.query("strategy == 'random' and round == 1")["miou"].mean(),
                                                abs=0.01)
    assert (results / "tiny/active_labelling.png").stat().st_size > 10_000


@pytest.mark.slow
def test_tiny_workflow_robustness_to_corruptions(tiny_workflow):
    results, long = tiny_workflow.results, tiny_workflow.long()
    corruptions = json.loads((results / "tiny/data/corruptions.json").read_text())
    assert corruptions["usable"] == ["fog"] and corruptions["left_out"] == {}  # through the compat layer
    foggy = zarr.open_group(results / "tiny/data/test-fog/severity5.zarr", mode="r")
    test_split = zarr.open_group(results / "tiny/data/test.zarr", mode="r")
    assert (foggy["labels"][:] == test_split["labels"][:]).all() and not (foggy["images"][:] == test_split["images"][:]).all()
    robustness = pd.read_csv(results / "tiny/robustness.csv")
    assert len(robustness) == 2 * 2 * (1 + 1 * 2)  # (ddpm, pixels) x seeds x (clean + 1 corruption x 2 severities)
    assert robustness["miou"].between(0, 1).all() and set(robustness["severity"]) == {0, 1, 5}
    clean_runs = robustness[robustness.severity == 0].set_index(["method", "seed"])["miou"]
    assert (clean_runs == long.set_index(["method", "seed"])["miou"].loc[clean_runs.index]).all()  # Table 2's runs
    assert not (results / "tiny/features/ddpm/test-fog-5").exists()  # scratch features are not kept
    assert (results / "figure6.png").stat().st_size > 10_000


@pytest.mark.slow
def test_tiny_workflow_noise_variants_and_the_budget_curve(tiny_workflow):
    results, table = tiny_workflow.results, tiny_workflow.table()
    table5 = pd.read_csv(results / "table5.csv")
    assert table5[["method", "share train/test", "share across t"]].values.tolist() == [
        ["DDPM", "+", "+"], ["DDPM", "+", "-"], ["DDPM", "-", "-"]]  # pixels take no timesteps: no rows
    assert table5.loc[0, "tiny"] == table.loc["DDPM", "tiny"]  # "+ +" is Table 2's run
    features = results / "tiny/features/ddpm"
    variants = {folder: open_store(features / f"train/{folder}/features_b2_t5.zarr")
                for folder in ("cells", "noise_per_timestep", "noise_fresh0", "noise_fresh1")}
    assert [variants[f].attrs["noise_mode"] for f in variants] == ["shared", "per_timestep", "per_image", "per_image"]
    values = {f: store[:] for f, store in variants.items()}
    assert all(not (values[a] == values[b]).all() for a in values for b in values if a < b)  # noise really differs
    # the budget curve's snapshots are of one run: the one at Table 2's 6 steps is Table 2's model
    snapshot = torch.load(results / "tiny/budget/diffusion/snapshots/step6.pt")
    table2_model = torch.load(results / "tiny/diffusion/model.pt")
    assert all(torch.equal(snapshot[k], table2_model[k]) for k in table2_model)
    curve = pd.read_csv(results / "tiny/budget_curve.csv")
    assert curve["method"].tolist() == ["DDPM"] * 2 + ["Pixels (RGB+xy)"] and curve["steps"].iloc[:2].tolist() == [6, 9]
    assert curve["minutes"].iloc[:2].is_monotonic_increasing and curve["mean"].between(0, 100).all()
    assert f"{curve['mean'].iloc[0]:.1f} ± {curve['std'].iloc[0]:.1f}" == table.loc["DDPM", "tiny"]
    fresh_test = open_store(features / "test/noise_fresh_test/features_b2_t5.zarr")
    assert fresh_test.attrs["noise_seed"] not in {variants[f].attrs["noise_seed"] for f in ("noise_fresh0", "noise_fresh1")}


@pytest.mark.slow
def test_tiny_workflow_report_holds_every_table_and_figure(tiny_workflow):
    """Snakemake's report holds every table and figure with its caption, grouped by dataset."""
    report = (tiny_workflow.clean / "report.html").read_text()
    for name in ("table2.csv", "table2_spread.csv", "overview.png", "reliability.png", "loss.png", "fig2.png", "fig3.png", "fig4.png",
                 "per_class_iou.csv", "probe sweep", "diffusion training", "Figure 2, tiny, ddpm: mIoU of one probe",
                 "Where Table 2's spread comes from", "table4.csv", "per-class IoU figure", "figure6.png", "table5.csv", "budget curve figure", "table3.csv"):
        assert name in report, name


@pytest.mark.slow
def test_tiny_workflow_killed_run_resumes_with_the_same_numbers(tiny_workflow):
    """Killed in the middle of feature extraction, a rerun completes with the same numbers, and
    with --cores 1 instead of 2: the torch threads are settings, not --cores (DDPM alone)."""
    killed, results, long = tiny_workflow.killed, tiny_workflow.results, tiny_workflow.long()
    assert not tiny_workflow.observed["killed_left_table2"]
    assert (killed / "results/tiny/diffusion/model.pt").read_bytes() == (results / "tiny/diffusion/model.pt").read_bytes()
    pd.testing.assert_frame_equal(pd.read_csv(tiny_workflow.root / "snapshots/table2_long.killed.csv")[NUMBERS],
                                  long.loc[long.method == "DDPM", NUMBERS].reset_index(drop=True))


@pytest.mark.slow
def test_tiny_workflow_ranks_the_pool_and_writes_the_batch_for_the_annotator(tiny_workflow):
    """The DDPM run's `label_next` (3 of 16, uncertainty+diversity among the 6 most uncertain):
    every pool image once, in order; its scores are the ensemble's; the batch's masks are the
    ensemble's labels at each image's own size, in the dataset's layout beside the palette PNGs."""
    from ddpmseg.label_next import score_images
    from ddpmseg.mlp import load_ensemble
    from ddpmseg.predict import predict_images_at_original_size
    from ddpmseg.stores import ImageSubset
    from ddpmseg.stores import open_stores

    first, results = tiny_workflow.root / "label_next", tiny_workflow.killed / "results/tiny"
    ranking = pd.read_csv(first / "ranking.csv", dtype={"image": str})
    pool = zarr.open_group(str(results / "data/unlabeled.zarr"), mode="r")
    ids, classes = pool.attrs["image_ids"], zarr.open_group(str(results / "data/train.zarr"), mode="r").attrs["classes"]
    assert sorted(ranking["image"]) == sorted(ids) and ranking["rank"].tolist() == list(range(1, 17))
    assert ranking["picked"].tolist() == [True] * 3 + [False] * 13 and not ranking["already_labelled"].any()
    assert set(ranking.loc[ranking.picked, "image"]) <= set(ranking.nlargest(6, "js_top10")["image"])
    assert ranking["js_top10"].iloc[3:].is_monotonic_decreasing  # the rest by uncertainty
    model = load_ensemble(first / "ensemble.pt")
    stores = open_stores(sorted((results / "features/ddpm/unlabeled/cells").glob("features_*.zarr"),
                                key=lambda p: (int(p.stem.split("_t")[1]), int(p.stem.split("_b")[1].split("_")[0]))))
    again = score_images(model, stores, len(ids), 32, classes).assign(image=ids).set_index("image")
    for column in ("js_top10", "js_mean", "entropy_mean", "margin_mean", f"area_{classes[1]}"):
        np.testing.assert_allclose(ranking.set_index("image").loc[ids, column], again[column], rtol=1e-4, atol=1e-6)
    picked = ranking.loc[ranking.picked, "image"].tolist()
    index = [ids.index(i) for i in picked]
    [(labels, _)] = predict_images_at_original_size([model], [ImageSubset(s, index) for s in stores],
                                                    [pool.attrs["original_sizes"][i] for i in index], 32, "pad", 255,
                                                    outputs=("majority", "js"))
    for image_id, label in zip(picked, labels):
        name = image_id if image_id not in {"0000", "0001", "0002", "0003"} else f"pool-{image_id}"  # the 4 train ids
        assert (np.array(Image.open(first / "batch/masks" / f"{image_id}.png")) == label).all()
        assert (np.load(first / "batch/real/train" / f"{name}.npy") == label).all()
        assert (first / "batch/real/train" / f"{name}.png").read_bytes() == (
            tiny_workflow.root / "tiny_data/unlabeled" / f"{image_id}.png").read_bytes()
        assert (first / "batch/overlays" / f"{image_id}.png").stat().st_size > 10_000
    assert pd.read_csv(first / "batch/batch.csv", dtype={"image": str})["image"].tolist() == picked


@pytest.mark.slow
def test_tiny_workflow_a_labelled_batch_retrains_the_ensemble_not_the_diffusion_model(tiny_workflow):
    """The batch pushed into Label Studio, its predictions submitted unchanged and pulled: the
    dataset's training folder gains exactly the batch's real/train/ files (images and labels);
    the dry run plans the labelled splits, their features, the ensemble and what follows it, and
    not the pool nor the diffusion model; ranked again, the labelled images come last, never picked."""
    studio = tiny_workflow.observed["label_studio"]
    assert "has 3 new tasks" in studio["push"] and "labels of 3 images written" in studio["pull"], studio
    batch, train = tiny_workflow.root / "label_next/batch/real/train", tiny_workflow.root / "tiny_data/real/train"
    for file in sorted(batch.iterdir()):
        if file.suffix == ".npy":
            np.testing.assert_array_equal(np.load(train / file.name), np.load(file))
        else:
            assert (train / file.name).read_bytes() == file.read_bytes()
    assert tiny_workflow.observed["jobs_after_labelling"] == {
        "prepare_dataset": 1, "extract_features[tiny ddpm cells]": 2, "train_ensemble": 1, "predict": 1, "evaluate": 1,
        "overview": 1, "reliability": 1, "table2": 1, "label_next": 1}
    results = tiny_workflow.killed / "results/tiny"
    assert len(zarr.open_group(str(results / "data/train.zarr"), mode="r").attrs["image_ids"]) == 4 + 3
    first = pd.read_csv(tiny_workflow.root / "label_next/ranking.csv", dtype={"image": str})
    again = pd.read_csv(results / "label_next/ranking.csv", dtype={"image": str})
    labelled = set(first.loc[first.picked, "image"])
    assert set(again.loc[again.already_labelled, "image"]) == labelled
    assert again["image"].tail(3).isin(labelled).all() and not again.loc[again.already_labelled, "picked"].any()


@pytest.mark.slow
def test_tiny_workflow_a_region_batch_asks_for_regions_and_pull_writes_only_them(tiny_workflow):
    """`label_next: {unit: region, count: 6, per_image: 2}` after the image batch was labelled:
    the pool's regions ranked by mean JS, none of the images labelled whole, the 6 highest taken
    at most 2 of an image; each image's pre-annotation is the guess in its asked regions and the
    ignore label elsewhere; pushed, submitted unchanged and pulled, the training folder's label of
    each image is exactly that."""
    from ddpmseg.region_batch import asked_regions
    from ddpmseg.regions import read_regions

    first, results = tiny_workflow.root / "label_next_regions", tiny_workflow.killed / "results/tiny"
    ranking = pd.read_csv(first / "ranking.csv", dtype={"image_id": str})
    whole = set(pd.read_csv(tiny_workflow.root / "label_next/batch/batch.csv", dtype={"image": str})["image"])
    assert len(whole) == 3 and not ranking["image_id"].isin(whole).any()
    assert ranking["rank"].tolist() == list(range(1, len(ranking) + 1)) and ranking["js_mean"].is_monotonic_decreasing
    picked = ranking[ranking.picked]
    assert len(picked) == 6 and picked.groupby("image_id").size().max() <= 2
    last = picked["rank"].max()
    skipped = ranking[(ranking["rank"] < last) & ~ranking.picked]
    assert skipped["image_id"].map(picked.groupby("image_id").size()).eq(2).all()  # only for per_image
    pool = zarr.open_group(str(results / "data/unlabeled.zarr"), mode="r")
    ids, regions = pool.attrs["image_ids"], read_regions(results / "data/regions/unlabeled.zarr")
    batch = pd.read_csv(first / "batch/batch.csv", dtype={"image": str, "name": str, "regions": str})
    assert sorted(batch["image"]) == sorted(set(picked["image_id"]))
    studio = tiny_workflow.observed["region_labelling"]
    assert f"labels of {len(batch)} images written" in studio["pull"], studio
    for _, row in batch.iterrows():
        i = ids.index(row["image"])
        asked_ids = sorted(picked.loc[picked["image_id"] == row["image"], "region"])
        assert row["regions"] == ";".join(map(str, asked_ids))
        height, width = pool.attrs["original_sizes"][i]
        asked = asked_regions(regions[i], asked_ids, height, width, pool.attrs["non_square"]) >= 0
        np.testing.assert_array_equal(np.asarray(Image.open(first / "batch/asked" / f"{row['image']}.png")) > 0, asked)
        mask = np.asarray(Image.open(first / "batch/masks" / f"{row['image']}.png"))
        assert np.all(mask[~asked] == 255) and np.all(mask[asked] < 255) and asked.any() and not asked.all()
        np.testing.assert_array_equal(np.load(tiny_workflow.root / "tiny_data/real/train" / f"{row['name']}.npy"), mask)
        assert (first / "batch/overlays" / f"{row['image']}.png").stat().st_size > 5_000


DIFFUSERS_ONLY = """
methods:
  ddpm: null
  unet_untrained: null
  mae: null
  swav: null
  patch: null
  pixels: null
  hf:
    source: diffusers_unet
    layers: [up0, up1_res1]
    arch: {block_out_channels: [16, 32], layers_per_block: 1, down_block_types: [DownBlock2D, AttnDownBlock2D],
           up_block_types: [AttnUpBlock2D, UpBlock2D], attention_head_dim: 8, norm_num_groups: 8}
    scheduler: {num_train_timesteps: 100}
    train: {max_steps: 4, batch_size: 4, log_every: 2}
  sd: {source: stable_diffusion, checkpoint: SD_FOLDER, layers: [up0, up1_attn1], prompt: a creature, noise_draws: 2}
datasets:
  tiny:
    experiments: {methods: [hf]}
"""


@pytest.mark.slow
def test_diffusers_sources_run_through_the_workflow_to_the_table(tmp_path, sd_pipeline):
    """diffusers_unet trained by the workflow and stable_diffusion read from a local pipeline folder."""
    overlay = tmp_path / "diffusers.yaml"
    overlay.write_text(DIFFUSERS_ONLY.replace("SD_FOLDER", str(sd_pipeline)))
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    snakemake(tmp_path, "results/table2.csv", "--configfile", str(TEST_CONFIG), str(overlay))
    table = pd.read_csv(tmp_path / "results/table2.csv", index_col=0)
    assert table.loc["DDPM (diffusers)", "tiny"].count("±") == 1
    assert table.loc["DDPM (diffusers): layers", "tiny"] == "t5: up0, up1_res1; t20: up0, up1_res1"
    assert table.loc["DDPM (diffusers) training", "tiny"].startswith("4 steps, ")
    assert not (tmp_path / "results/tiny/diffusion").exists()  # no ADM is trained for it
    training = json.loads((tmp_path / "results/tiny/pretrained/hf/training.json").read_text())
    assert (training["steps"], training["source"]) == (4, "diffusers_unet")
    store = open_store(tmp_path / "results/tiny/features/hf/test/cells/features_up0_t20.zarr")
    assert store.shape == (3, 32, 32, 32) and store.attrs["source"] == "diffusers_unet"  # up0 upsamples 16 -> 32
    assert store.attrs["timestep"] == 20 and store.attrs["normalisation"] == "[-1, 1]"
    assert store.attrs["settings"]["scheduler"]["num_train_timesteps"] == 100 and len(store.attrs["checkpoint_sha256"]) == 64
    assert open_store(tmp_path / "results/tiny/features/hf/test/cells/features_up1_res1_t5.zarr").shape == (3, 16, 32, 32)
    assert table.loc["Stable Diffusion", "tiny"].count("±") == 1
    assert table.loc["Stable Diffusion: layers", "tiny"] == "t5: up0, up1_attn1; t20: up0, up1_attn1"
    latent = open_store(tmp_path / "results/tiny/features/sd/test/cells/features_up1_attn1_t20.zarr")
    assert latent.shape == (3, 8, 16, 16) and latent.attrs["settings"]["prompt"] == "a creature"  # 32x32 -> 16x16 latents
    assert latent.attrs["checkpoint_sha256"] == sha256_of(sd_pipeline)
    # Figures 2-4 sweep every decoder layer of the diffusers UNet at the probe timesteps
    swept = tmp_path / "swept.yaml"
    swept.write_text("datasets:\n  tiny:\n    probes: {methods: [hf]}\n")
    jobs = planned_jobs(tmp_path, "figures", "--configfile", str(TEST_CONFIG), str(overlay), str(swept))
    assert jobs["probe"] == 8 * 3  # up0: res0, attn0, res1, attn1, up0; up1: res0, res1, up1; t 5, 20, 50


def planned_resources(workdir, *args) -> dict:
    """{job name (`dry_run_jobs`): [resources dict of each planned job]} from a dry run's job listing."""
    plan = {}
    for name, resources in dry_run_jobs(workdir, *args):
        plan.setdefault(name, []).append(resources)
    return plan


def test_paper_config_plans_the_full_dag_without_any_file(tmp_path):
    """`snakemake -n --configfile config/paper.yaml results/table2.csv results/table3.csv` here,
    with no network, dataset or checkpoint: 6 datasets, 4 checkpoints, GPUs only where the work
    needs one."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    args = ("results/table2.csv", "results/table3.csv", "--configfile", str(REPO / "config" / "paper.yaml"))
    datasets = ["bedroom_28", "ffhq_34", "cat_15", "horse_21", "celeba_19", "ade_bedroom_30"]
    distilled = datasets[:4]  # Bedroom, FFHQ, Cat, Horse: the archive's annotated DDPM samples, DatasetDDPM/GAN
    assert planned_jobs(tmp_path, *args) == {
        # the archive, 4 ADMs, 4 MAEs, 8 SwAVs, the ResNet-101 and 8 released synthetic datasets;
        # the archive and the synthetic datasets unpacked
        "download": 1 + 4 * 4 + 1 + 8, "unpack": 1 + 8,
        "prepare_dataset": 6,  # DDPM: 5 seeds' noise x (train, test and the annotated DDPM samples)
        **{f"extract_features[{d} ddpm cells_noise{n}]": 2 + (d in distilled) for d in datasets for n in range(5)},
        **{f"extract_features[{d} {m} cells]": 2 for d in datasets for m in ("mae", "swav", "swav_w2")},  # no noise
        "train_ensemble": 24, "predict": 24, "evaluate": 24, "overview": 6, "reliability": 6, "table2": 1,
        # Table 3: DDPM trained on the annotated DDPM samples, 5 seeds in one job per dataset
        "prepare_annotated": 4, "train_ensemble_annotated": 4, "predict_annotated": 4, "evaluate_annotated": 4,
        "table3": 1,
        # DatasetDDPM: 100 batches of 100 samples labelled by each of 5 seeds' ensembles trained on
        # the DDPM samples; the released DDPM and GAN datasets, downloaded and written once
        "sample_diffusion": 400, "segmenter_annotated": 20, "label_pool": 2000,
        "released_pool": 8, "select_pool": 60, "train_deeplab": 60, "predict_distill": 60, "evaluate_distill": 60,
    }
    plan = planned_resources(tmp_path, *args)
    gpu_rules = {name for name in plan if name.startswith("extract_features")} | {"train_ensemble", "predict", "train_ensemble_annotated", "predict_annotated", "sample_diffusion", "label_pool",
           "train_deeplab", "predict_distill"}
    for rule, jobs in plan.items():
        expected = "1" if rule in gpu_rules else None
        assert all(job.get("gpu") == expected for job in jobs), (rule, jobs)
    assert sum(len(jobs) for rule, jobs in plan.items() if rule in gpu_rules) == 80 + 36 + 48 + 8 + 400 + 2000 + 60 + 60
    dry = snakemake(tmp_path, "-n", *args).stdout
    # CelebA-19 uses the FFHQ model and ADE-Bedroom-30 the LSUN-bedroom one, as in the paper
    assert "input: results/celeba_19/data/test.zarr, resources/downloads/ffhq.pt" in dry
    assert "input: results/ade_bedroom_30/data/train.zarr, resources/downloads/lsun_bedroom.pt" in dry
    assert "output: results/bedroom_28/features/ddpm/train/cells_noise4\n" in dry
    paper = Plan(validated({}, yaml.safe_load((REPO / "config" / "paper.yaml").read_text())))
    assert ("b12", 250) in paper.fixed_cells("bedroom_28", "ddpm") and "b9" not in paper.plans["bedroom_28"]["ddpm"].layers
    assert "input: results/celeba_19/data/train.zarr, resources/downloads/mae_ffhq.pth" in dry
    assert "block23" in paper.plans["celeba_19"]["mae"].layers and "block11" not in paper.plans["celeba_19"]["mae"].layers
    assert "layer3.4" in paper.plans["bedroom_28"]["swav_w2"].layers
    assert "layer3.3" not in paper.plans["bedroom_28"]["swav_w2"].layers
    assert "input: resources/downloads/lsun_cat.pt\n    output: results/cat_15/distill_ddpm/samples/batch99.zarr" in dry
    assert "input: results/horse_21/distill_ddpm/labelled/seed4/batch0, " in dry and "celeba_19/distill" not in dry
    assert "input: resources/paper_datasets, results/cat_15/data/test.zarr\n    output: results/cat_15/data/annotated-ddpm.zarr" in dry
    assert "output: results/cat_15/ddpm/trained_on_ddpm/seed4/segmenter" in dry
    assert "input: resources/synthetic_gan_horse_21, results/horse_21/data/test.zarr\n" in dry


@pytest.mark.slow
def test_downloaded_archive_and_official_checkpoint_run_through_the_workflow(tmp_path):
    """The paper's route on a small scale: a dataset archive without meta.json and an
    official-format checkpoint (fp16, `module.` prefix), both fetched from file:// URLs with
    pinned checksums; the flags are read from the checkpoint's shapes (only image_size and
    num_heads given); the paper's resize, and its noise seeded per run (each run its own
    stores); both the DDPM and the untrained control run to the table."""
    import tarfile

    import torch

    from conftest import TINY_FLAGS
    from ddpmseg.diffusion import build_unet
    from ddpmseg.download import sha256_of
    from ddpmseg.synthetic import CLASSES, generate_dataset

    source = tmp_path / "source"
    generate_dataset(source / "tiny_paper", n_unlabeled=1, n_train=4, n_test=3, image_size=32)
    (source / "tiny_paper" / "meta.json").unlink()
    shutil.rmtree(source / "tiny_paper" / "unlabeled")
    with tarfile.open(tmp_path / "datasets.tar.gz", "w:gz") as tar:
        tar.add(source / "tiny_paper", arcname="tiny_paper")
    torch.manual_seed(0)
    model = build_unet({**TINY_FLAGS, "learn_sigma": True})
    torch.save({f"module.{k}": v.half() for k, v in model.state_dict().items()}, tmp_path / "tiny.pt")
    workdir = tmp_path / "run"
    workdir.mkdir()
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    config = workdir / "paper_like.yaml"
    config.write_text(f"""
methods: [ddpm, unet_untrained]
seeds: [0, 1]
downloads:
  archive: {{url: "{(tmp_path / 'datasets.tar.gz').as_uri()}", sha256: {sha256_of(tmp_path / 'datasets.tar.gz')}, unpack: true}}
  checkpoint: {{url: "{(tmp_path / 'tiny.pt').as_uri()}", sha256: {sha256_of(tmp_path / 'tiny.pt')}}}
datasets:
  creatures7: null
  tiny_paper:
    path: resources/archive/tiny_paper
    classes: {json.dumps(list(CLASSES))}
    ignore_label: 255
    resize: paper
    diffusion:
      checkpoint: resources/downloads/tiny.pt
      flags: {{image_size: 32, num_heads: 2, diffusion_steps: 100}}
    features: {{blocks: [1, 2], timesteps: [5], batch_images: 2, noise_seed: per_run}}
    ensemble: {{n_members: 2, max_epochs: 2, early_stop_epoch: 1, patience: 5}}
    evaluation: {{overview_images: 1}}
""")
    args = ("results/table2.csv", "--configfile", str(config))
    snakemake(workdir, *args)
    assert (workdir / "resources/downloads/tiny.pt").read_bytes() == (tmp_path / "tiny.pt").read_bytes()
    features = workdir / "results/tiny_paper/features/ddpm/test"
    store = open_store(str(features / "cells_noise0/features_b1_t5.zarr"))
    flags = store.attrs["model_flags"]
    assert (flags["num_channels"], flags["channel_mult"], flags["learn_sigma"]) == (32, "1,2", True)
    assert store.shape == (3, 64, 32, 32)  # block 1 ends with the upsampler: 16 -> 32
    other = open_store(str(features / "cells_noise1/features_b1_t5.zarr"))  # run 1's noise: other features
    assert (store.attrs["noise_seed"], other.attrs["noise_seed"]) == (0, 1) and (store[:] != other[:]).any()
    used = json.loads((workdir / "results/tiny_paper/ddpm/features.json").read_text())
    assert [Path(p).parent.name for p in used["stores"]] == ["cells_noise0", "cells_noise0", "cells_noise1", "cells_noise1"]
    assert zarr.open_group(str(workdir / "results/tiny_paper/data/train.zarr"), mode="r").attrs["resize"] == "paper"
    table = pd.read_csv(workdir / "results/table2.csv", index_col=0)
    assert list(table.index) == ["DDPM", "UNet (untrained)", "DDPM: layers", "UNet (untrained): layers",
                                 "Runs (± over)", "Trained on", "Diffusion training"]
    assert table.loc["Diffusion training", "tiny_paper"] == "checkpoint"
    assert list(table.columns) == ["tiny_paper"]


@pytest.mark.slow
def test_auto_features_come_from_the_sweep_cross_validated_in_train(tmp_path):
    """`features: auto` runs the probe sweep first, then trains the ensembles on the cells with
    the best CV mIoU inside the train split; the table names them."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    auto = tmp_path / "auto.yaml"
    auto.write_text("methods: [ddpm, unet_untrained]\ndatasets:\n  tiny:\n"
                    "    features: {blocks: auto, timesteps: auto, auto_cells: 2}\n"
                    "    probes: {timesteps: [5, 20], kmeans: {n_images: 1}}\n")
    args = ("results/table2.csv", "--configfile", str(TEST_CONFIG), str(auto))
    assert not any(k.startswith("extract_features[tiny ddpm cells") for k in planned_jobs(tmp_path, *args))  # the sweep's
    snakemake(tmp_path, *args)
    grid = pd.read_csv(tmp_path / "results/tiny/probes/ddpm/miou_by_layer_timestep.csv")
    best = grid.sort_values(["miou_cv", "timestep", "depth"], ascending=[False, True, True]).head(2)
    chosen = [(layer, t) for _, layer, t in sorted(zip(best["depth"], best["layer"], best["timestep"]),
                                                   key=lambda c: (c[2], c[0]))]
    used = json.loads((tmp_path / "results/tiny/ddpm/features.json").read_text())
    assert [tuple(c) for c in used["cells"]] == chosen and used["auto"]
    untrained = json.loads((tmp_path / "results/tiny/unet_untrained/features.json").read_text())
    assert untrained["cells"] == used["cells"]  # the control uses the same cells
    table = pd.read_csv(tmp_path / "results/table2.csv", index_col=0)
    assert table.loc["DDPM: layers", "tiny"].startswith("auto (CV in train): ")
    assert not (tmp_path / "results/tiny/probes/unet_untrained").exists()  # no sweep of its own
