"""A plain folder of images and mask PNGs, matched by name (format `image_mask`)::

    <path>/images/[<subset>/]NAME.{jpg,jpeg,png,bmp,tif,tiff,webp}
    <path>/masks/[<subset>/]NAME.png
    <path>/labelmap.txt            optional: one class per line, "name:r,g,b::" (CVAT / VOC)

A mask is an index PNG (8- or 16-bit grey, or a palette PNG whose indices are the class ids)
or an RGB PNG whose colours are those of labelmap.txt. Its values are class ids in the order of
labelmap.txt (or of the config's `classes:` list) or the ignore label. A folder directly below
images/ named like a subset (train, val, test, ...) is that image's subset; images without a
mask go to the unlabeled pool; a mask without an image is an error.
"""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image

from ddpmseg.errors import DatasetError
from ddpmseg.folders import walk_files
from ddpmseg.formats.source import IGNORED, TEST_SUBSETS, TRAIN_SUBSETS, Source, SourceImage
from ddpmseg.images import IMAGE_SUFFIXES, shown_size, turned_mask_problem

SUBSET_FOLDERS = TRAIN_SUBSETS + TEST_SUBSETS + ("unlabeled",)
INDEX_MODES = ("1", "L", "P", "I", "I;16")
COLOUR_MODES = ("RGB", "RGBA")


def read(root, settings: dict) -> Source:
    """The folder at ``root``; its classes from labelmap.txt, else from the config's ``classes``
    list (settings), with ``ignore_label`` (settings; default 255) the value of unannotated pixels."""
    root = pathlib.Path(root)
    images_dir, masks_dir = root / "images", root / "masks"
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: folder not found. An image_mask dataset keeps its images in images/ "
                           "and their masks (PNG, same name) in masks/.")
    classes, colours = _classes(root, settings)
    ignore = 255 if settings.get("ignore_label") is None else settings["ignore_label"]
    images = {rel.with_suffix(""): rel for rel in sorted(walk_files(images_dir), key=str)
              if rel.suffix.lower() in IMAGE_SUFFIXES}
    masks = {rel.with_suffix(""): rel for rel in walk_files(masks_dir) if rel.suffix.lower() == ".png"} \
        if masks_dir.is_dir() else {}
    orphans = sorted(str(masks_dir / rel) for stem, rel in masks.items() if stem not in images)
    if orphans:
        more = f" ({len(orphans) - 1} more masks likewise)" if len(orphans) > 1 else ""
        raise DatasetError(f"{orphans[0]}: mask without an image of the same name in {images_dir}{more}. Add the "
                           "image or remove the mask.")
    out = []
    for stem, rel in images.items():
        parts = stem.parts
        subset = parts[0] if len(parts) > 1 and parts[0] in SUBSET_FOLDERS else ""
        image_id = pathlib.PurePosixPath(*parts[1:]) if subset else stem
        mask = masks.get(stem)
        if mask is None:
            out.append(SourceImage(image_id.as_posix(), subset, images_dir / rel))
        else:
            mask_path = masks_dir / mask
            out.append(SourceImage(image_id.as_posix(), subset, images_dir / rel, str(mask_path),
                                   mask_reader(mask_path, images_dir / rel, classes, colours, ignore)))
    return Source(classes, colours, out)


def _classes(root: pathlib.Path, settings: dict) -> tuple[list, list | None]:
    """Class names and colours: labelmap.txt's, else the config's `classes` list (no colours)."""
    path = root / "labelmap.txt"
    if path.is_file():
        return read_labelmap(path)
    if isinstance(settings.get("classes"), list):
        return list(settings["classes"]), None
    raise DatasetError(f"{path}: file not found. Write the class names there, one per line in id order as "
                       "'name:r,g,b::' (CVAT / VOC), or list them in the dataset's `classes:`.")


def read_labelmap(path) -> tuple[list, list | None]:
    """Class names and (r, g, b) colours of a CVAT / VOC labelmap.txt ('name:r,g,b:parts:actions',
    '#' comments); colours None unless every class has one."""
    names, colours = [], []
    for number, line in enumerate(pathlib.Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        colour = rest.split(":")[0].strip()
        try:
            rgb = tuple(int(v) for v in colour.split(",")) if colour else None
        except ValueError:
            rgb = ()
        if not name.strip() or (rgb is not None and (len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb))):
            raise DatasetError(f"{path}:{number}: {line!r} is no 'name:r,g,b::' line. Fix it.")
        names.append(name.strip())
        colours.append(rgb)
    if len(set(names)) != len(names) or not names:
        raise DatasetError(f"{path}: needs distinct class names, one per line; got {names}. Fix the file.")
    return names, (colours if all(c is not None for c in colours) else None)


def mask_reader(mask_path: pathlib.Path, image_path: pathlib.Path, classes: list, colours: list | None,
                ignore: int, ignore_colours: tuple = (), where: str = "labelmap.txt"):
    """A `SourceImage.class_map` of a mask PNG over the image it belongs to: index values are
    class ids (``ignore`` IGNORED); colours are those of ``colours`` (``ignore_colours`` IGNORED).
    ``where`` names the class table in messages."""
    def class_map() -> np.ndarray:
        width, height, tag = shown_size(image_path)
        try:
            with Image.open(mask_path) as im:
                mode, values = im.mode, np.asarray(im)
        except Exception as exc:  # any Pillow failure: an unreadable file
            raise DatasetError(f"{mask_path}: cannot be read as a PNG mask ({type(exc).__name__}: {exc}). "
                               "Replace it.") from exc
        turned = turned_mask_problem(values.shape[1::-1], (width, height), tag, mask_path, image_path.name)
        if turned:
            raise DatasetError(turned)
        if values.shape[:2] != (height, width):
            raise DatasetError(f"{mask_path}: mask is {values.shape[1]}x{values.shape[0]} (width x height), its image "
                               f"{image_path.name} {width}x{height}. Save the mask at the image's size.")
        if mode in COLOUR_MODES:
            return _decode_colours(mask_path, values[..., :3], colours, ignore_colours, where)
        if mode not in INDEX_MODES:
            raise DatasetError(f"{mask_path}: PNG mode {mode!r} is no mask. Save an 8-bit index (grey or palette) "
                               "PNG, or an RGB PNG in labelmap.txt's colours.")
        ids = values.astype(np.int32)
        bad = np.unique(ids[(ids >= len(classes)) & (ids != ignore)])
        if bad.size:
            raise DatasetError(f"{mask_path}: class ids {bad[:10].tolist()} are beyond the {len(classes)} classes "
                               f"(0..{len(classes) - 1}; ignore label {ignore}). Fix the mask or the class list.")
        ids[ids == ignore] = IGNORED
        return ids
    return class_map


def _decode_colours(mask_path: pathlib.Path, rgb: np.ndarray, colours: list | None, ignore_colours: tuple,
                    where: str) -> np.ndarray:
    """(H, W) int32 class ids of an (H, W, 3) colour mask; DatasetError for a colour not in the table."""
    if colours is None:
        raise DatasetError(f"{mask_path}: an RGB mask needs the class colours: write labelmap.txt beside the "
                           "masks' folder ('name:r,g,b::' per class), or save index PNGs.")
    codes = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    table = {(r << 16) | (g << 8) | b: IGNORED for r, g, b in ignore_colours}
    table.update({(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(colours)})
    found, inverse = np.unique(codes, return_inverse=True)
    unknown = [int(c) for c in found if int(c) not in table]
    if unknown:
        shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in unknown[:5])
        raise DatasetError(f"{mask_path}: colours {shown} are not in {where}. Add them as classes, or "
                           "repaint those pixels.")
    return np.asarray([table[int(c)] for c in found], np.int32)[inverse].reshape(codes.shape)
