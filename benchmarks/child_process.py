"""What the benchmarks that run each measurement in a child process of its own share: the
child's own peak memory, and running a child for the JSON object it prints."""

import json
import resource
import subprocess
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's own peak resident memory, MiB: VmHWM of /proc/self/status on Linux.
    getrusage's ru_maxrss is not used there: Linux carries it across fork and exec, so a child
    would report at least its parent's peak (a parent that built a 2 GB model makes every child
    read 2 GB); elsewhere it is the fallback."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


def run_child(script: str, *args: str) -> dict:
    """Runs `python <script> --child <args>` and returns the JSON object of its last stdout line;
    SystemExit with the tail of its stderr when it fails."""
    child = subprocess.run([sys.executable, script, "--child", *args], capture_output=True, text=True)
    if child.returncode:
        raise SystemExit(f"{Path(script).name} --child {' '.join(args)[:200]} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])
