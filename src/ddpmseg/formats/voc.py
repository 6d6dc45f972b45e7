"""Pascal VOC's class masks as tools write them (formats `voc` and `voc_segmentation`)::

    <path>/JPEGImages/NAME.jpg                 the images (any image suffix; subfolders are part of the id)
    <path>/SegmentationClass/NAME.png          class masks: a palette or grey PNG of class ids (255 =
                                               ignore), or an RGB PNG in the classes' colours (VOC's
                                               void colour 224,224,192 = ignore)
    <path>/ImageSets/Segmentation/SUBSET.txt   optional: each subset's image ids, one per line
    <path>/labelmap.txt                        optional: the classes, 'name:r,g,b::' (CVAT, datumaro)
    <path>/class_names.txt                     optional: the class names, one per line (labelme2voc)

Full VOC (with ImageSets/Main, Annotations/, SegmentationObject/), CVAT's "Segmentation mask 1.1"
export (ImageSets/Segmentation only, subset `default`) and labelme2voc's output (no ImageSets/:
every image in one subset, "") all read alike. The classes are labelmap.txt's, else
class_names.txt's (labelme's `__ignore__` left out), else VOC's 21 with VOC's colours. A list
line may be an id, a file name or a path written on another machine: it is matched to the images
by its longest tail. `trainval` is left out where `train` and `val` are listed (it is their
union); an image listed in two subsets belongs to the first of train, val, test, trainval and
the rest in name order. A listed image that is missing is an error naming the list's line; an
image without a mask joins the unlabeled pool.
"""

from __future__ import annotations

import pathlib

from ddpmseg.errors import DatasetError
from ddpmseg.folders import walk_files
from ddpmseg.formats.files import written_parts
from ddpmseg.formats.image_mask import mask_reader, read_labelmap
from ddpmseg.formats.source import Source, SourceImage
from ddpmseg.images import IMAGE_SUFFIXES

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
VOID_COLOUR = (224, 224, 192)  # VOC's colour of its ignore value 255
SUBSET_ORDER = ("train", "training", "val", "valid", "validation", "test", "testing", "trainval")
IGNORE_NAME = "__ignore__"  # labelme's ignore class, which labelme2voc's class_names.txt may list


def voc_colour(index: int) -> tuple:
    """VOC's palette colour of a class id: the id's bits spread over r, g, b, high bits first."""
    r = g = b = 0
    for shift in range(7, -1, -1):
        r |= ((index >> 0) & 1) << shift
        g |= ((index >> 1) & 1) << shift
        b |= ((index >> 2) & 1) << shift
        index >>= 3
    return r, g, b


def is_voc(root: pathlib.Path) -> bool:
    """Whether ``root`` holds VOC class masks (`ddpmseg.formats.detect`)."""
    return (root / "SegmentationClass").is_dir()


def read(root, settings: dict) -> Source:
    """The VOC folder at ``root``; ``ignore_label`` (settings; default 255) is the masks' ignore value."""
    root = pathlib.Path(root)
    images_dir, masks_dir = root / "JPEGImages", root / "SegmentationClass"
    if not masks_dir.is_dir():
        instance = " (only object masks: format voc_instance_segmentation)" if (root / "SegmentationObject").is_dir() \
            else ""
        raise DatasetError(f"{masks_dir}: folder not found{instance}. A VOC folder keeps its class masks in "
                           "SegmentationClass/ and its images in JPEGImages/; point `path` at the folder holding "
                           "both.")
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: folder not found. A VOC folder keeps its images in JPEGImages/ beside "
                           "SegmentationClass/; put them there.")
    classes, colours, where = _classes(root)
    ignore = 255 if settings.get("ignore_label") is None else settings["ignore_label"]
    images = _by_id(images_dir, IMAGE_SUFFIXES)
    masks = _by_id(masks_dir, (".png",))
    orphans = sorted(str(masks_dir / rel) for image_id, rel in masks.items() if image_id not in images)
    if orphans:
        more = f" ({len(orphans) - 1} more masks likewise)" if len(orphans) > 1 else ""
        raise DatasetError(f"{orphans[0]}: mask without an image of the same name in {images_dir}{more}. Add the "
                           "image or remove the mask.")
    subsets = _subsets(root, images)
    out = []
    for image_id, rel in images.items():
        image_path, subset = images_dir / rel, subsets.get(image_id, "")
        if image_id not in masks:
            out.append(SourceImage(image_id, subset, image_path))
            continue
        mask_path = masks_dir / masks[image_id]
        out.append(SourceImage(image_id, subset, image_path, str(mask_path),
                               mask_reader(mask_path, image_path, classes, colours, ignore, (VOID_COLOUR,), where)))
    return Source(classes, colours, out)


def _classes(root: pathlib.Path) -> tuple[list, list | None, str]:
    """Class names, their colours (None where unknown) and the file they came from."""
    if (root / "labelmap.txt").is_file():
        names, colours = read_labelmap(root / "labelmap.txt")  # without colours: VOC's, as datumaro reads it
        return names, colours or [voc_colour(i) for i in range(len(names))], str(root / "labelmap.txt")
    listed = root / "class_names.txt"
    if listed.is_file():
        names = [line.strip() for line in listed.read_text(encoding="utf-8").splitlines()
                 if line.strip() and line.strip() != IGNORE_NAME]
        if not names or len(set(names)) != len(names):
            raise DatasetError(f"{listed}: needs distinct class names, one per line; got {names}. Fix the file.")
        return names, [voc_colour(i) for i in range(len(names))], str(listed)
    return list(VOC_CLASSES), [voc_colour(i) for i in range(len(VOC_CLASSES))], "VOC's 21 classes"


def _by_id(folder: pathlib.Path, suffixes: tuple) -> dict:
    """{id: path relative to ``folder``} of its files with one of ``suffixes``, the id the path
    without suffix; DatasetError when two files share an id."""
    found = {}
    for rel in sorted(walk_files(folder), key=str):
        if rel.suffix.lower() not in suffixes:
            continue
        image_id = rel.with_suffix("").as_posix()
        if image_id in found:
            raise DatasetError(f"{folder / rel}: shares its name with {folder / found[image_id]}. Keep one of them.")
        found[image_id] = rel
    return found


def _subsets(root: pathlib.Path, images: dict) -> dict:
    """{image id: subset} from ImageSets/Segmentation/*.txt ({} without lists); DatasetError
    naming the list's line for a line that names no image."""
    lists = root / "ImageSets" / "Segmentation"
    files = {path.stem: path for path in sorted(lists.glob("*.txt"))} if lists.is_dir() else {}
    if "trainval" in files and "train" in files and "val" in files:
        del files["trainval"]
    order = [name for name in SUBSET_ORDER if name in files] + sorted(set(files) - set(SUBSET_ORDER))
    tails = {}  # every trailing part of each id -> ids, for lines written as paths
    for image_id in images:
        parts = image_id.split("/")
        for k in range(1, len(parts) + 1):
            tails.setdefault("/".join(parts[-k:]), []).append(image_id)
    subsets = {}
    for name in order:
        for number, line in enumerate(files[name].read_text(encoding="utf-8").splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            image_id = _listed_id(fields[0], images, tails)
            if image_id is None:
                raise DatasetError(f"{files[name]}:{number}: names the image {fields[0]!r}, which is not in "
                                   f"{root / 'JPEGImages'}. Put the image there, or remove the line.")
            subsets.setdefault(image_id, name)
    return subsets


def _listed_id(written: str, images: dict, tails: dict) -> str | None:
    """The image id a list line names: the id itself, else the longest tail of the written path
    (its image suffix removed) that one image's id ends with."""
    if written in images:
        return written
    parts = list(written_parts(written))
    if parts and pathlib.PurePosixPath(parts[-1]).suffix.lower() in IMAGE_SUFFIXES:
        parts[-1] = pathlib.PurePosixPath(parts[-1]).stem
    for k in range(len(parts), 0, -1):
        found = tails.get("/".join(parts[-k:]), [])
        if len(found) == 1:
            return found[0]
    return None
