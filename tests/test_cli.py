"""The `ddpmseg` command's parsing and file gathering (the commands themselves run on the tiny
workflow's bundle in test_workflow.py)."""
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from ddpmseg.cli import InputProblem, image_files, main, parser

REPO = Path(__file__).resolve().parents[1]


def test_files_folders_and_globs_name_their_images(tmp_path):
    for name in ("photos/a.jpg", "photos/sub/b.PNG", "photos/notes.txt", "more/c.png", "more/d.jpeg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = image_files([tmp_path / "photos", str(tmp_path / "more/*.png"), tmp_path / "more/d.jpeg"])
    assert [(name, file.relative_to(tmp_path).as_posix()) for name, file in found] == [
        ("a", "photos/a.jpg"), ("sub/b", "photos/sub/b.PNG"), ("c", "more/c.png"), ("d", "more/d.jpeg")]
    with pytest.raises(InputProblem, match=r"more/c.png and .*more/c.png would both be written as c.png"):
        image_files([tmp_path / "more/c.png", str(tmp_path / "more/c.*")])
    with pytest.raises(InputProblem, match=r"\*.gif: no images"):
        image_files([str(tmp_path / "*.gif")])
    with pytest.raises(InputProblem, match="missing: no such file or folder"):
        image_files([tmp_path / "missing"])


def test_help_names_every_option_and_the_console_script_is_declared(capsys):
    segment_help = parser().parse_known_args(["segment", "b", "p", "--out", "o"])[0]
    assert segment_help.batch_size == 16 and segment_help.device == "cpu" and not segment_help.no_overlays
    help_text = subprocess.run([sys.executable, "-m", "ddpmseg", "segment", "--help"], capture_output=True, text=True,
                               env={"PYTHONPATH": str(REPO / "src")}).stdout
    for option in ("--out", "--device", "--batch-size", "--no-overlays", "--quiet", "BUNDLE", "PATH"):
        assert option in help_text
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["ddpmseg"] == "ddpmseg.cli:main"
    with pytest.raises(SystemExit):
        main(["segment", "bundle", "x", "--out", "o", "--batch-size", "0"])
    assert "--batch-size must be at least 1" in capsys.readouterr().err
