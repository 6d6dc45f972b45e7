"""Imported first by every rule script: puts the repository's src/ on sys.path, so the rule
scripts use this checkout's ddpmseg package also in conda environments and cluster jobs
where it is not pip-installed. Snakemake puts this folder on the scripts' sys.path."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
