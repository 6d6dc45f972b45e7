"""The SLURM profile (profiles/slurm): what each rule would request (a dry run, always), and the
tiny workflow run through a real one-node SLURM cluster started here (marker `slurm`)."""

import collections
import getpass
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import apt_install
from test_workflow import planned_resources

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config.test.yaml"
PROFILE = REPO / "profiles" / "slurm"
PARTITION = yaml.safe_load((PROFILE / "config.yaml").read_text())["default-resources"]["slurm_partition"]
# srun's default configuration path: the plugin runs each rule with srun after removing
# SLURM_CONF (and every other SLURM_* variable but the job's ids) from its environment.
SYSTEM_SLURM_CONF = Path("/etc/slurm/slurm.conf")
CPUS = len(os.sched_getaffinity(0))
TARGET = "results/table2.csv"


def copy_config(workdir: Path) -> Path:
    workdir.mkdir(exist_ok=True)
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    return workdir


def test_slurm_profile_requests_a_gpu_only_for_gpu_rules(tmp_path):
    """A dry run through the profile: diffusion training, pretraining and every extraction that
    runs a model ask for one GPU (the hand-made controls do not); the ensemble, prediction and probes only with `ensemble.gpu: true`; nothing else does.
    Every job gets the profile's partition."""
    workdir = copy_config(tmp_path)
    gpu_ensemble = tmp_path / "gpu_ensemble.yaml"
    gpu_ensemble.write_text("datasets:\n  tiny:\n    ensemble: {gpu: true}\n")
    extraction = {f"extract_features[tiny {m} cells]" for m in ("ddpm", "unet_untrained", "mae", "swav")} \
        | {f"extract_features[tiny ddpm sweep_t{t}]" for t in (5, 20, 50)}
    for configs, gpu_rules in (
        ([TEST_CONFIG], {"train_diffusion", "pretrain", *extraction}),
        ([TEST_CONFIG, gpu_ensemble], {"train_diffusion", "pretrain", *extraction, "train_ensemble", "predict", "probe"}),
    ):
        plan = planned_resources(workdir, "--workflow-profile", str(PROFILE), TARGET, "figures",
                                 "--configfile", *map(str, configs))
        assert gpu_rules <= plan.keys() and {"evaluate", "extract_features[tiny patch cells]", "table2"} <= plan.keys()
        for rule, jobs in plan.items():
            expected = {"1"} if rule in gpu_rules else {None, "0"}
            assert all(job.get("gpu") in expected for job in jobs), (rule, jobs)
            assert all(job["slurm_partition"] == PARTITION for job in jobs), (rule, jobs)


def install_slurm():
    """Debian's slurm-wlm and munge, where a daemon or client is missing (`conftest.apt_install`)."""
    apt_install(["slurm-wlm", "munge"], ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo"))


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports on 127.0.0.1 that nothing listens on now."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def wait_for(condition, seconds: float, what: str, logs=()):
    """Polls condition() until true; fails with the tails of `logs` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log}\n{log.read_text()[-2000:] if log.exists() else '(none)'}" for log in logs)
            pytest.fail(f"{what} within {seconds} s\n{tails}")
        time.sleep(0.5)


@pytest.fixture
def slurm_cluster(tmp_path_factory):
    """A one-node SLURM cluster: munged, slurmctld and slurmd started here, as root, with their
    key, socket, state, spool, logs and pid files in a temp dir; the node has this machine's
    CPUs and one GPU declared in gres.conf. Yields the environment for SLURM clients (SLURM_CONF
    and PATH with this Python's bin first: sbatch exports it to the jobs). The daemons are stopped
    by their PIDs afterwards, whatever happened."""
    install_slurm()
    if SYSTEM_SLURM_CONF.is_symlink() and not SYSTEM_SLURM_CONF.exists():
        SYSTEM_SLURM_CONF.unlink()  # left by a test run that was killed
    if SYSTEM_SLURM_CONF.exists():
        pytest.skip(f"{SYSTEM_SLURM_CONF} exists: this machine has a SLURM of its own, "
                    "which the test would shadow")
    root = tmp_path_factory.mktemp("slurm")
    (root / "munge").mkdir(mode=0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    conf = root / "slurm.conf"
    hostname = socket.gethostname().split(".")[0]
    ctld_port, slurmd_port = free_ports(2)
    conf.write_text((REPO / "tests" / "slurm" / "slurm.conf").read_text().format(
        root=root, hostname=hostname, ctld_port=ctld_port, slurmd_port=slurmd_port, cpus=CPUS, partition=PARTITION))
    shutil.copy(REPO / "tests" / "slurm" / "gres.conf", root / "gres.conf")  # slurmd reads it beside slurm.conf
    for folder in ("state", "spool"):
        (root / folder).mkdir()
    SYSTEM_SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SLURM_CONF": str(conf),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    daemons = []

    def start(*command):
        with open(root / f"{command[0]}.out", "w") as out:
            daemons.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT))

    try:
        SYSTEM_SLURM_CONF.symlink_to(conf)  # for the srun inside each job; everything else reads SLURM_CONF
        # --force: munged runs as root and accepts a socket under a temp dir that others cannot enter
        start("munged", "--foreground", "--force", f"--socket={root}/munge/munge.socket", f"--key-file={key}",
              f"--log-file={root}/munge/munged.log", f"--pid-file={root}/munge/munged.pid",
              f"--seed-file={root}/munge/munged.seed")
        wait_for((root / "munge" / "munge.socket").exists, 20, "munged did not start", [root / "munged.out"])
        start("slurmctld", "-D")
        start("slurmd", "-D", "-N", hostname)

        def node_idle():
            state = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%T"], env=env,
                                   capture_output=True, text=True, check=False)
            return state.stdout.strip() == "idle"

        wait_for(node_idle, 60, "the node did not come up idle", [root / "slurmctld.log", root / "slurmd.log"])
        yield env
    finally:
        subprocess.run(["scancel", f"--user={getpass.getuser()}"], env=env, capture_output=True, check=False)
        for daemon in reversed(daemons):
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        if SYSTEM_SLURM_CONF.is_symlink() and SYSTEM_SLURM_CONF.readlink() == conf:
            SYSTEM_SLURM_CONF.unlink()


def run_snakemake(workdir: Path, args: list, env: dict, timeout_s: int):
    """Runs the workflow in workdir in a session of its own, output to workdir/snakemake.out;
    SIGKILLs all its processes after timeout_s (a status query that hangs ignores SIGTERM) and
    fails the test, as it does when Snakemake fails."""
    out_path = workdir / "snakemake.out"
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               *args]
    with open(out_path, "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            pytest.fail(f"snakemake {' '.join(args)} was still running after {timeout_s} s:\n"
                        f"{out_path.read_text()[-4000:]}")
    assert returncode == 0, f"snakemake {' '.join(args)} failed:\n{out_path.read_text()[-4000:]}"


def slurm_jobs(env: dict) -> list[dict]:
    """Every job the cluster knows, as {field: value} of `scontrol show job --details --oneliner`."""
    out = subprocess.run(["scontrol", "show", "job", "--details", "--oneliner"], env=env,
                         capture_output=True, text=True, check=True).stdout
    return [dict(field.split("=", 1) for field in line.split() if "=" in field)
            for line in out.splitlines() if line.startswith("JobId=")]


def rule_device(workdir: Path, rule_log: str) -> str:
    """The device that a rule script said it would use (src/ddpmseg/runtime.py)."""
    return re.search(r", device (\w+)", (workdir / "logs" / rule_log).read_text()).group(1)


@pytest.mark.slurm
def test_tiny_workflow_through_slurm_equals_a_local_run(slurm_cluster, tmp_path):
    """`--workflow-profile profiles/slurm` on a real SLURM: every job of the plan is a SLURM job
    that completed, with its SLURM log; the GPU rules were submitted with `--gpus=1` and given the
    node's GPU (one GPU job at a time), the other rules asked for none; the results equal those
    of a local run. The tiny config with the DDPM method alone (10 jobs, of them 3 GPU jobs)
    keeps both runs short."""
    env = slurm_cluster
    ddpm_only = tmp_path / "ddpm_only.yaml"
    ddpm_only.write_text("methods: [ddpm]\n")
    local, cluster = copy_config(tmp_path / "local"), copy_config(tmp_path / "slurm")
    configs = ["--configfile", str(TEST_CONFIG), str(ddpm_only)]
    run_snakemake(local, ["--cores", str(CPUS), TARGET, *configs], env, timeout_s=300)

    profile_args = ["--workflow-profile", str(PROFILE), TARGET, *configs]
    plan = planned_resources(cluster, *profile_args)
    gpu_rules = {name.split("[")[0] for name, jobs in plan.items() if jobs[0].get("gpu") == "1"}  # rule names
    assert gpu_rules == {"train_diffusion", "extract_features"}
    # the node has CPUS cores, fewer than the profile's max-threads; the first status check comes
    # after 2 s instead of 40 (squeue still applies: MinJobAge is over 3 x 2 s)
    run_snakemake(cluster, [*profile_args, "--max-threads", str(CPUS), "--slurm-init-seconds-before-status-checks",
                            "2", "--slurm-keep-successful-logs"], env, timeout_s=450)

    jobs = slurm_jobs(env)
    rule_of = {job["JobId"]: job["Comment"].removeprefix("rule_").split("_wildcards_")[0] for job in jobs}
    planned_rules = collections.Counter()
    for name, planned in plan.items():
        planned_rules[name.split("[")[0]] += len(planned)
    assert collections.Counter(rule_of.values()) == planned_rules
    assert all(job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0" for job in jobs), jobs
    assert all(job["Partition"] == PARTITION for job in jobs)
    slurm_logs = {log.stem for log in (cluster / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert slurm_logs == set(rule_of)
    for job in jobs:
        if rule_of[job["JobId"]] in gpu_rules:
            assert job.get("TresPerJob") == "gres:gpu:1" and job["JOB_GRES"] == "gpu:1", job
        else:
            assert "TresPerJob" not in job and job["JOB_GRES"] == "(null)", job
    gpu_spans = sorted((job["StartTime"], job["EndTime"]) for job in jobs if rule_of[job["JobId"]] in gpu_rules)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(gpu_spans)), gpu_spans
    # under its GPU allocation, the script picked the same device as locally (CPU on a machine without CUDA)
    assert rule_device(cluster, "train_diffusion/tiny_diffusion.log") == rule_device(local, "train_diffusion/tiny_diffusion.log")

    numbers = ["dataset", "method", "seed", "miou", "miou_soft"]
    pd.testing.assert_frame_equal(pd.read_csv(cluster / "results/table2_long.csv")[numbers],
                                  pd.read_csv(local / "results/table2_long.csv")[numbers])
    tables = [pd.read_csv(workdir / TARGET, index_col=0) for workdir in (cluster, local)]
    timed = [row for row in tables[0].index if row.endswith(" training")]  # "6 steps, 12 s": wall time differs
    pd.testing.assert_frame_equal(tables[0].drop(index=timed), tables[1].drop(index=timed))
    steps = [table.loc[timed].map(lambda cell: cell.split(",")[0]) for table in tables]
    pd.testing.assert_frame_equal(*steps)
