"""Class maps as palette PNGs (`ddpmseg.palette`)."""
import numpy as np
from PIL import Image

from ddpmseg.palette import save_palette_png


def test_palette_png_keeps_class_ids(tmp_path):
    mask = np.array([[0, 1, 2], [5, 255, 3]], np.uint8)
    save_palette_png(mask, tmp_path / "m.png", num_classes=6)
    image = Image.open(tmp_path / "m.png")
    assert image.mode == "P"
    np.testing.assert_array_equal(np.array(image), mask)
