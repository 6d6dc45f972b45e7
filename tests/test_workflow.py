"""The workflow itself: lint, the DAG of the default and tiny configs, and one real run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import zarr

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config.test.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def snakemake(workdir, *args, check=True):
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args],
        capture_output=True, text=True, timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def run_killed_during_extraction(workdir, *args):
    """Starts the workflow and SIGKILLs it (all its processes) once a feature extraction job runs."""
    process = subprocess.Popen(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not list((workdir / "logs").glob("extract_features/*.log")):
        assert process.poll() is None, "the workflow ended before any extraction started"
        assert time.monotonic() < deadline, "no extraction started within 5 minutes"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def planned_jobs(workdir, *args) -> dict:
    """{rule: count} of the jobs a dry run would run."""
    result = snakemake(workdir, "-n", *args, "--quiet", "rules")
    out = result.stdout + result.stderr
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


def test_lint_is_clean():
    result = snakemake(REPO, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_dag(tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    jobs = planned_jobs(tmp_path, "results/table2.csv")
    # 1 dataset x 4 methods (all 5 seeds in one job); UNet features for 2 models x 2 splits; controls 2 x 2
    assert jobs == {
        "generate_default_dataset": 1, "prepare_dataset": 1, "train_diffusion": 1,
        "extract_features_creatures7": 4, "control_features": 4, "train_ensemble": 4, "predict": 4,
        "evaluate": 4, "overview": 1, "table2": 1,
    }


def test_bad_config_fails_at_parse_time_with_the_key(tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  creatures7:\n    ensemble: {n_membres: 3}\n")
    result = snakemake(tmp_path, "-n", "results/table2.csv", "--configfile", str(bad), check=False)
    assert result.returncode != 0
    assert "n_membres" in result.stdout + result.stderr


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
    assert not (tmp_path / "results" / "broken" / "data" / "train.zarr").exists()


@pytest.mark.slow
def test_tiny_workflow_end_to_end(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for workdir in (clean, killed):
        workdir.mkdir()
        shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    args = ("results/table2.csv", "--configfile", str(TEST_CONFIG))
    snakemake(clean, *args)
    results = clean / "results"

    table = pd.read_csv(results / "table2.csv", index_col=0)
    assert list(table.index) == ["DDPM", "UNet (untrained)", "Pixels (RGB+xy)", "Patch (5x5 RGB+xy)"]
    assert list(table.columns) == ["tiny"] and table.loc["DDPM", "tiny"].count("±") == 1
    long = pd.read_csv(results / "table2_long.csv")
    assert len(long) == 8 and long["miou"].between(0, 1).all()

    store = zarr.open_array(str(results / "tiny/features/ddpm/test/features_b1_t20.zarr"), mode="r")
    assert store.shape == (3, 64, 32, 32) and store.dtype == "float16"  # block 1 upsamples 16 -> 32
    assert store.attrs["timestep"] == 20 and len(store.attrs["checkpoint_sha256"]) == 64
    assert zarr.open_array(str(results / "tiny/features/ddpm/test/features_b2_t5.zarr"), mode="r").shape[1] == 32
    metrics = json.loads((results / "tiny/ddpm/seed1/metrics.json").read_text())
    assert metrics["vote"] == "majority" and 0 <= metrics["miou_soft"] <= 1
    assert sorted(p.name for p in (results / "tiny/ddpm/seed0/masks").glob("*.png")) == ["0000.png", "0001.png", "0002.png"]
    for png in ("tiny/overview.png", "tiny/diffusion/loss.png"):
        assert (results / png).stat().st_size > 10_000
    assert pd.read_csv(results / "tiny/diffusion/loss.csv")["step"].iloc[-1] == 6

    # a finished run has nothing left to do
    rerun = snakemake(clean, "-n", *args)
    assert "Nothing to be done" in rerun.stdout + rerun.stderr

    # deleting one test store recomputes only what depends on it, with the same numbers. Snakemake
    # leaves a deleted intermediate alone while everything after it is up to date, so the store
    # is named as a target beside the table (as the README says).
    deleted = "results/tiny/features/ddpm/test/features_b2_t5.zarr"
    shutil.rmtree(clean / deleted)
    jobs = planned_jobs(clean, deleted, *args)
    assert jobs == {"extract_features_tiny": 1, "predict": 1, "evaluate": 1, "overview": 1, "table2": 1}
    snakemake(clean, deleted, *args)
    numbers = ["dataset", "method", "seed", "miou", "miou_soft"]
    pd.testing.assert_frame_equal(pd.read_csv(results / "table2_long.csv")[numbers], long[numbers])

    # killed in the middle of feature extraction, a rerun completes with the same numbers
    run_killed_during_extraction(killed, *args)
    assert not (killed / "results/table2.csv").exists()
    snakemake(killed, "--unlock", *args)  # a killed Snakemake leaves its lock behind
    snakemake(killed, *args)
    pd.testing.assert_frame_equal(pd.read_csv(killed / "results/table2_long.csv")[numbers], long[numbers])
