"""What an annotator sees (marker `label_studio`): a batch pushed into a real Label Studio, one
task's labelling page opened in a real headless Chromium (Debian's package, installed with
apt-get where missing) and screenshotted; the ensemble's masks must be there as the
pre-annotation: the image painted in the classes' colours where the mask has them, the region
list naming the classes, the prediction's tab naming the model.

Nothing needs setting or clicking for this: Label Studio 1.23.2 opens a task of no annotation
(/projects/<id>/data?task=<id>) with a new annotation pre-filled from its prediction (the regions
marked as predicted), beside a tab of the prediction itself (its model_version and score); it
does so even with the project's `show_collab_predictions` off, or the prediction's
model_version not the project's. Chromium is driven over the DevTools protocol by
tests/label_studio_page.py, run with the server venv's python (it has websocket-client).

Where DDPMSEG_DOCS_FIGURES names a folder, the screenshot is copied there as
label_studio_labelling.png (docs/figures/label_studio_labelling.png)."""

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import apt_install
from ddpmseg.label_studio_sync import Server, push
from ddpmseg.palette import palette
from label_studio_server import free_port
from test_label_studio_sync import CLASSES, FASSEG, POOL, label_next_batch, paper_dataset

PAGE_SCRIPT = Path(__file__).with_name("label_studio_page.py")
FIGURE = "label_studio_labelling.png"
IMAGE = "0001"  # the pool image whose task is opened
pytestmark = [pytest.mark.label_studio,
              pytest.mark.skipif(not FASSEG.is_dir(), reason="shared fasseg_face6 dataset not available")]


def install_chromium() -> str:
    """The path of Debian's `chromium` (`conftest.apt_install` where missing)."""
    apt_install(["chromium"], ("chromium",))
    return shutil.which("chromium")


@pytest.fixture
def chromium(tmp_path):
    """A headless Chromium with a fresh profile, its DevTools protocol on a free port (yielded);
    its process group is killed at the end, whatever happened."""
    binary, port = install_chromium(), free_port()
    with open(tmp_path / "chromium.log", "w") as log:
        process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", f"--remote-debugging-port={port}",
             f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,900", "--hide-scrollbars",
             "--no-first-run", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield port
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def overlay_agreement(shot: np.ndarray, box: list, photo: Image.Image, mask: np.ndarray) -> tuple:
    """How the screenshot's image area (box: x, y, width, height) shows the mask over the photo:
    (opacity, agreement). Each pixel should be the photo with its class colour blended over it,
    shown = photo + opacity * (colour - photo): the opacity is the median fit over the pixels
    inside the classes' regions (away from their edges), the agreement the fraction of those
    pixels whose best-fitting colour at that opacity is their class's."""
    x, y, width, height = (round(v) for v in box)
    shown = shot[y:y + height, x:x + width].astype(float)
    photo = np.asarray(photo.convert("RGB").resize((width, height), Image.BILINEAR), float)
    mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.NEAREST))
    inside = np.zeros(mask.shape, bool)
    for c in range(len(CLASSES)):
        inside |= cv2.erode((mask == c).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    colours = palette(len(CLASSES))[: len(CLASSES)].astype(float)
    shown, photo, classes = shown[inside], photo[inside], mask[inside]
    towards = colours[classes] - photo
    opacity = float(np.median((towards * (shown - photo)).sum(1) / np.maximum((towards**2).sum(1), 1)))
    misfit = np.stack([np.abs(shown - (1 - opacity) * photo - opacity * colour).sum(1) for colour in colours], 1)
    return opacity, float((misfit.argmin(1) == classes).mean())


def test_the_labelling_page_shows_the_ensembles_masks_as_the_pre_annotation(label_studio_server, chromium, tmp_path):
    """The FASSEG batch pushed into "faces next"; image 0001's task opened as its annotator (the
    server's user) and screenshotted (tmp_path/label_studio_labelling.png): the region list names
    the mask's classes in order, the prediction's tab its model, and the image shows the mask's
    class colours where the mask has them."""
    dataset = paper_dataset(tmp_path / "faces")
    batch = label_next_batch(tmp_path / "label_next" / "batch", dataset)
    server = Server(label_studio_server.url, label_studio_server.legacy_token)
    pushed = push(server, batch, "faces next")  # the title docs/label_next.md uses; one test pushes it
    project = pushed["project"]
    assert pushed["added"] == POOL
    [task] = [t for t in server.client.tasks.list(project=project, fields="all") if t.data["ddpmseg_image"] == IMAGE]
    mask = np.asarray(Image.open(batch / "masks" / f"{IMAGE}.png"))
    present = [name for c, name in enumerate(CLASSES) if (mask == c).any()]
    hair = "#{:02x}{:02x}{:02x}".format(*palette(len(CLASSES))[CLASSES.index("hair")])

    shot = tmp_path / FIGURE
    result = subprocess.run(
        [str(label_studio_server.venv / "bin" / "python"), str(PAGE_SCRIPT), str(chromium), label_studio_server.url,
         label_studio_server.username, label_studio_server.password, f"/projects/{project}/data?task={task.id}",
         str(shot), hair, str(len(present)), "60"],
        capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    page = json.loads(result.stdout.splitlines()[-1])

    assert page["regions"] == present and {"hair", "skin"} <= set(present)  # the region list, in class order
    assert "ddpm seed 0" in page["text"]  # the prediction's tab
    opacity, agreement = overlay_agreement(np.asarray(Image.open(shot).convert("RGB")), page["image"],
                                           Image.open(batch / "images" / f"{IMAGE}.jpg"), mask)
    assert 0.2 < opacity < 0.9 and agreement > 0.95, (opacity, agreement)
    if os.environ.get("DDPMSEG_DOCS_FIGURES"):
        shutil.copy(shot, Path(os.environ["DDPMSEG_DOCS_FIGURES"]) / FIGURE)
