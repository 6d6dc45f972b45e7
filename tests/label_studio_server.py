"""A real Label Studio server for tests, on 127.0.0.1: the application lives in its own virtual
environment (built once per machine in a cache folder), and one server serves all pytest-xdist
workers of a run (its address and tokens are kept in a json file in a folder they share)."""

import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, fields
from pathlib import Path

LABEL_STUDIO_VERSION = "1.23.2"
# sentry-sdk 3 breaks Label Studio's start-up; websocket-client is for the screenshot script.
REQUIREMENTS = [f"label-studio=={LABEL_STUDIO_VERSION}", "sentry-sdk<3", "websocket-client==1.8.0"]
START_TIMEOUT_S = 180


@dataclass
class LabelStudioServer:
    """A running server: its address, the user's legacy token and personal access token (a JWT
    refresh token), the user's login, the local-files root it serves, its data folder and venv."""

    url: str
    legacy_token: str
    personal_token: str
    username: str
    password: str
    files_root: Path
    data_dir: Path
    venv: Path


def tail(text: str, lines: int = 40) -> str:
    """The last `lines` lines of `text`."""
    return "\n".join(text.splitlines()[-lines:])


def server_venv() -> Path:
    """The virtual environment with Label Studio, in `$DDPMSEG_TEST_CACHE` (default
    ~/.cache/ddpmseg-tests); built under a lock file where it is missing or half-built (its marker
    file, written last, is absent). Fails with pip's last lines where the build fails."""
    cache = Path(os.environ.get("DDPMSEG_TEST_CACHE") or Path.home() / ".cache" / "ddpmseg-tests")
    cache.mkdir(parents=True, exist_ok=True)
    venv = cache / f"label-studio-{LABEL_STUDIO_VERSION}"
    marker = venv / "complete"
    with open(cache / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = subprocess.run([str(venv / "bin" / "pip"), "install", *REQUIREMENTS],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert pip.returncode == 0, f"building {venv} failed:\n{tail(pip.stdout)}"
            marker.write_text(" ".join(REQUIREMENTS) + "\n")
    return venv


def healthy(url: str) -> bool:
    """Whether the server at `url` answers /health with 200."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that no one listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_personal_token(url: str, legacy_token: str) -> str:
    """Creates the user's personal access token (`POST /api/token/`, authenticated by the legacy
    token) and returns it; a user has one, a second POST answers 409."""
    request = urllib.request.Request(f"{url}/api/token/", method="POST",
                                     headers={"Authorization": f"Token {legacy_token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["token"]


def shared_server(shared_dir: Path) -> LabelStudioServer:
    """The server recorded in `shared_dir/label-studio.json` where it answers /health; else starts
    one (data, local files and log under `shared_dir`), waits for /health (fails with the log's
    tail after 180 s), creates the personal access token and records it. Under a lock file, so
    that processes sharing `shared_dir` share one server."""
    state = shared_dir / "label-studio.json"
    with open(shared_dir / "label-studio.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if state.exists():
            record = json.loads(state.read_text())
            server = LabelStudioServer(**{f.name: f.type(record[f.name]) for f in fields(LabelStudioServer)})
            if healthy(server.url):
                return server
            stop_shared_server(shared_dir)
        venv, port = server_venv(), free_port()
        server = LabelStudioServer(url=f"http://127.0.0.1:{port}", legacy_token=secrets.token_hex(20),
                                   personal_token="", username="annotator@example.com",
                                   password=secrets.token_hex(8), files_root=shared_dir / "label-studio-files",
                                   data_dir=shared_dir / "label-studio-data", venv=venv)
        server.files_root.mkdir(exist_ok=True)
        server.data_dir.mkdir(exist_ok=True)
        # LABEL_STUDIO_HOST (the address in the links it makes) wins over a HOST in the environment;
        # --internal-host is the address it listens on (0.0.0.0 by default).
        env = dict(os.environ, LABEL_STUDIO_HOST=server.url, LABEL_STUDIO_BASE_DATA_DIR=str(server.data_dir),
                   LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true", LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
                   LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(server.files_root))
        log_path = shared_dir / "label-studio.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [str(venv / "bin" / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1",
                 "--port", str(port), "--username", server.username, "--password",
                 server.password, "--user-token", server.legacy_token],
                env=env, cwd=shared_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not healthy(server.url):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"Label Studio did not start (exit status {process.poll()}):\n"
                                     f"{tail(log_path.read_text())}")
            time.sleep(1)
        server.personal_token = create_personal_token(server.url, server.legacy_token)
        record = {key: str(value) for key, value in asdict(server).items()}
        state.write_text(json.dumps(dict(record, pid=process.pid), indent=1))
        return server


def stop_shared_server(shared_dir: Path):
    """Ends the process group of the server recorded in `shared_dir/label-studio.json` (SIGTERM,
    SIGKILL where it is still there after 10 s) and removes the json; does nothing where there is
    none."""
    state = shared_dir / "label-studio.json"
    if not state.exists():
        return
    pid = json.loads(state.read_text())["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)  # reaps it where it is this process's child
            except ChildProcessError:
                pass
            os.killpg(pid, 0)  # ProcessLookupError once the group is gone
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    state.unlink()
