"""Readers of the annotation formats a dataset's `format:` names: format name -> a function
(root, dataset settings) -> `ddpmseg.formats.source.Source`. Beside them, `format: paper` (the
default) is the paper's layout (`ddpmseg.formats.paper`), whose splits and class ids are fixed:
it writes its splits itself (`ddpmseg.formats.prepare.prepare_dataset` calls the one of a
dataset's format). A new format is one module with a `read` and one line here (two where its
`path` may be a file)."""

from ddpmseg.formats import coco, datumaro_formats, image_mask, label_studio, labelme, voc

READERS = {
    **{name: datumaro_formats.read for name in datumaro_formats.NAMES},
    "image_mask": image_mask.read,
    "labelme": labelme.read,
    "label_studio": label_studio.read,
    "voc": voc.read,
    "voc_segmentation": voc.read,
    "coco_instances": coco.read,
    "coco_stuff": coco.read,
    "roboflow_coco": coco.read,
}
FILE_READERS = {coco.read, label_studio.read}  # readers whose `path` may be the export's file itself
