"""Readers of the annotation formats a dataset's `format:` names: format name -> a function
(root, dataset settings) -> `ddpmseg.formats.source.Source`. A dataset without `format:` is in
the paper's layout (`ddpmseg.datasets`). A new format is one module with a `read` and one line
here."""

from ddpmseg.formats import coco, datumaro_formats, image_mask, labelme, voc

READERS = {
    **{name: datumaro_formats.read for name in datumaro_formats.NAMES},
    "image_mask": image_mask.read,
    "labelme": labelme.read,
    "voc": voc.read,
    "voc_segmentation": voc.read,
    "coco_instances": coco.read,
    "coco_stuff": coco.read,
    "roboflow_coco": coco.read,
}
