"""Config errors are found when the workflow is parsed, each as one line naming the key."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import heavy_modules_imported
from ddpmseg import adm_flags

REPO = Path(__file__).resolve().parents[1]


def dry_run(workdir, config_text):
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    (workdir / "user.yaml").write_text(config_text)
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "-n", "results/table2.csv", "--configfile", str(workdir / "user.yaml")],
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("config_text, expected", [
    ("datasets:\n  creatures7:\n    ensemble: {n_member: 3}\n",
     "config: datasets.creatures7.ensemble: unknown key 'n_member' (did you mean 'n_members'?); allowed: "),
    ("datasetz: {}\n", "config: (top level): unknown key 'datasetz' (did you mean 'datasets'?)"),
    ("datasets:\n  creatures7:\n    features: {timesteps: [50, -5]}\n",
     "config: datasets.creatures7.features.timesteps[1]: -5 is less than the minimum of 0"),
    ("datasets:\n  creatures7:\n    features: {blocks: autox}\n",
     "config: datasets.creatures7.features.blocks: 'autox' is not allowed; give a list of integers >= 0 or 'auto'"),
    ("datasets:\n  creatures7:\n    features: {blocks: [1, 99]}\n",
     "config: datasets.creatures7.features.blocks: block 99 does not exist: the model's decoder has 6 blocks (0..5"),
    ("datasets:\n  creatures7:\n    probes: {timesteps: [0, 1000]}\n",
     "config: datasets.creatures7.probes.timesteps: step 1000 does not exist: the diffusion has 1000 steps"),
    ("datasets:\n  creatures7:\n    diffusion: {flags: {num_chanels: 64}}\n",
     "config: datasets.creatures7.diffusion.flags: unknown model flag 'num_chanels' (did you mean 'num_channels'?)"),
    ("datasets:\n  creatures7:\n    diffusion: {checkpoint: a.pt, seeds: [0, 1]}\n",
     "config: datasets.creatures7.diffusion.seeds lists 2 seeds, but a given checkpoint is one model"),
])
def test_config_error_is_one_line_naming_the_key_before_any_job(tmp_path, config_text, expected):
    result = dry_run(tmp_path, config_text)
    assert result.returncode != 0
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("config: ")]
    assert len(errors) == 1 and errors[0].startswith(expected), result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "is not valid under any of the given schemas" not in result.stderr
    assert len((result.stdout + result.stderr).splitlines()) <= 4  # Snakemake's two notes and our line


def test_model_flags_are_guided_diffusions_in_its_order():
    from guided_diffusion.script_util import model_and_diffusion_defaults

    assert list(adm_flags.DEFAULTS.items()) == list(model_and_diffusion_defaults().items())
    assert all(meaning for _, meaning in adm_flags.FLAGS.values())


def test_the_adm_flags_module_imports_without_torch():
    code = "import ddpmseg.adm_flags as f, ddpmseg.config\nassert len(f.decoder_blocks({'image_size': 256})) == 18"
    assert heavy_modules_imported(code, ["torch", "guided_diffusion"]) == []


def test_unknown_flags_are_named_with_the_closest_flag():
    assert adm_flags.unknown_flags({"num_chanels": 3, "image_size": 64, "zzz": 1}) == [
        "unknown model flag 'num_chanels' (did you mean 'num_channels'?)", "unknown model flag 'zzz'"]
    with pytest.raises(ValueError, match="unknown model flag 'num_chanels' .*; guided-diffusion's flags are "
                                         "attention_resolutions, channel_mult"):
        adm_flags.full_flags({"num_chanels": 3})
    assert list(adm_flags.full_flags({"num_channels": 32})) == list(adm_flags.DEFAULTS)
