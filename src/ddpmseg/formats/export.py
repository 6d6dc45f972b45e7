"""Predicted masks written in an annotation format, so that an annotation tool opens them as
pre-annotations (CVAT, Label Studio and FiftyOne import VOC, COCO and CVAT exports; LabelMe
its XML): one mask per class present in each image, through datumaro's own writers, the images
copied in where the format keeps them, so that the folder is a dataset of its own.
"""

from __future__ import annotations

import pathlib
import tempfile

from ddpmseg.atomic import folder_written_atomically
from ddpmseg.images import write_upright

# datumaro's writers that keep per-pixel masks; "palette" (indexed PNGs, always written) is ours.
EXPORT_FORMATS = ("palette", "voc", "voc_segmentation", "coco_instances", "coco_panoptic", "cvat", "label_me",
                  "cityscapes", "camvid", "kitti_segmentation", "datumaro")


def export_masks(out, fmt: str, image_ids: list, image_paths: list, labels: list, classes: list,
                 colours: list | None = None) -> None:
    """Write labels [(H, W) uint8 class ids; other values: unlabelled] of the images
    (``image_paths``, named ``image_ids``) to the folder ``out`` in datumaro's format ``fmt``,
    classes named ``classes`` and, where given, coloured ``colours`` [(r, g, b)]. Atomic: a
    failure leaves no half-written folder."""
    import datumaro as dm
    from datumaro.components.annotation import AnnotationType, LabelCategories, Mask, MaskCategories
    from datumaro.components.media import Image as DmImage

    categories = {AnnotationType.label: LabelCategories.from_iterable(classes)}
    if colours is not None:
        categories[AnnotationType.mask] = MaskCategories({i: tuple(c) for i, c in enumerate(colours)})
    with folder_written_atomically(pathlib.Path(out)) as tmp, tempfile.TemporaryDirectory() as upright:
        items = []
        for i, (image_id, path, label) in enumerate(zip(image_ids, image_paths, labels)):
            shown = pathlib.Path(upright) / f"{i}{pathlib.Path(path).suffix}"
            write_upright(path, shown)  # the labels are in the shown orientation: so is the copied image
            masks = [Mask(image=label == c, label=c) for c in range(len(classes)) if (label == c).any()]
            items.append(dm.DatasetItem(id=image_id, media=DmImage.from_file(str(shown)), annotations=masks))
        dm.Dataset.from_iterable(items, categories=categories).export(str(tmp), fmt, save_media=True)

