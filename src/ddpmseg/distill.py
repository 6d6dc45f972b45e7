"""The labelled pool of a distillation (DatasetDDPM): which images are kept, and reading them.

A labelled pool is a set of folders in the paper's dataset layout, one per labelling job:
NAME.png (RGB) + NAME.npy (uint8 labels of the ensemble's vote) per image and uncertainty.csv
(image, js_mean, js_top10: the mean and the top-10% mean of the image's per-pixel
Jensen-Shannon divergence, nats).
"""

import contextlib
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from PIL import Image

from ddpmseg.errors import UserError


def select_most_certain(scores: pd.DataFrame, portion: float) -> pd.DataFrame:
    """`scores` (image, js_top10, ...) with rank (0 = most certain, by js_top10, ties by image
    name) and kept (False for the floor(portion x n) most uncertain images), in the input order."""
    order = scores.sort_values(["js_top10", "image"], kind="stable").index
    ranked = scores.assign(rank=pd.Series(np.arange(len(scores)), index=order))
    n_dropped = int(np.floor(portion * len(scores)))
    return ranked.assign(kept=ranked["rank"] < len(scores) - n_dropped)


def load_kept(selection: pd.DataFrame) -> tuple:
    """The kept images and labels of a selection (columns folder, image, kept), in its order:
    (N, S, S, 3) uint8 and (N, S, S) uint8."""
    kept = selection[selection["kept"]]
    images = np.stack([np.asarray(Image.open(Path(r.folder) / f"{r.image}.png").convert("RGB")) for r in kept.itertuples()])
    labels = np.stack([np.load(Path(r.folder) / f"{r.image}.npy") for r in kept.itertuples()])
    return images, labels


def released_file(path) -> Path:
    """The .npz of a released synthetic dataset: `path` itself, or the one .npz below a folder
    (an unpacked download). Raises UserError naming the path otherwise."""
    path = Path(path)
    found = sorted(path.rglob("*.npz")) if path.is_dir() else [path] if path.suffix == ".npz" and path.is_file() else []
    if len(found) != 1:
        what = f"holds {len(found)} .npz files" if path.is_dir() else "is not an .npz file"
        raise UserError(f"{path}: {what}; give the released synthetic dataset's .npz (images, labels, uncertainties) "
                        "or a folder holding exactly one in the config's distill.released")
    return found[0]


@contextlib.contextmanager
def released_arrays(path) -> Iterator[dict]:
    """The arrays of a released synthetic dataset's .npz (the paper's generate_dataset.py:
    np.savez(images, labels, uncertainties); DatasetGAN's also holds latents before the
    uncertainties), opened without loading them, for the `with` block: {"images": (N, S, S, 3)
    uint8, "labels": (N, S, S) uint8, "uncertainty": (N,) per-image score}, each a `StoredArray`
    (shape, dtype, rows(), read_all()). Raises UserError naming the file on another layout."""
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        members = sorted((n for n in archive.namelist() if n.endswith(".npy")),
                         key=lambda n: int(n[4:-4]) if n[4:-4].isdigit() else -1)
        if len(members) not in (3, 4):
            raise UserError(f"{path}: holds {len(members)} arrays ({', '.join(members)}); a released synthetic "
                            "dataset holds images, labels[, latents] and uncertainties (np.savez order)")
        arrays = {key: StoredArray(archive, member) for key, member in
                  zip(("images", "labels", "uncertainty"), (members[0], members[1], members[-1]))}
        n, size = arrays["images"].shape[0], arrays["images"].shape[1:3]
        expected = {"images": (n, *size, 3), "labels": (n, *size), "uncertainty": (n,)}
        for key, array in arrays.items():
            if array.shape != expected[key] or (key != "uncertainty" and array.dtype != np.uint8):
                raise UserError(f"{path}: {array.member} ({key}) is {array.dtype} {array.shape}, expected "
                                f"{'float' if key == 'uncertainty' else 'uint8'} {expected[key]}; give the paper's npz")
        yield arrays


class StoredArray:
    """One .npy member of an .npz, read in a single pass (rows()) or whole (read_all()), so that
    a 50000-image array never has to fit in memory."""

    def __init__(self, archive: zipfile.ZipFile, member: str):
        self.archive, self.member = archive, member
        with archive.open(member) as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            self.shape, fortran, self.dtype = read_header(f)
            self.offset = f.tell()
        if fortran:
            raise UserError(f"{archive.filename}: {member} is stored in Fortran order; save it C-ordered")
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def rows(self):
        """Yields the rows (array[i] for i in order) from one pass over the member."""
        with self.archive.open(self.member) as f:
            f.read(self.offset)
            for _ in range(self.shape[0]):
                yield np.frombuffer(f.read(self.row_bytes), dtype=self.dtype).reshape(self.shape[1:])

    def read_all(self) -> np.ndarray:
        return np.stack(list(self.rows())) if self.shape[0] else np.zeros(self.shape, self.dtype)
