"""The pictures of class maps a person looks at: a palette of distinct colours per class, and
class maps saved as indexed PNGs with it."""

import numpy as np
from PIL import Image


def palette(num_classes: int) -> np.ndarray:
    """(256, 3) uint8 colours: distinct colours for the classes, white for the rest (ignore)."""
    colours = np.full((256, 3), 255, np.uint8)
    cmap = [
        (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
        (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
        (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0),
        (255, 215, 180), (0, 0, 128), (128, 128, 128),
    ]
    rng = np.random.default_rng(0)
    for c in range(min(num_classes, 255)):
        colours[c] = cmap[c] if c < len(cmap) else rng.integers(0, 256, 3)
    return colours


def save_palette_png(mask: np.ndarray, path, num_classes: int) -> None:
    """A (H, W) uint8 class map as an indexed PNG whose palette shows the classes."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette(palette(num_classes).reshape(-1).tolist())
    image.save(path)
