"""Readers of the annotation formats a dataset's `format:` names: format name -> a function
(root, dataset settings) -> `ddpmseg.formats.source.Source`. A dataset without `format:` is in
the paper's layout (`ddpmseg.datasets`). A new format is one module with a `read` and one line
here."""

from ddpmseg.formats import datumaro_formats, image_mask, labelme

READERS = {
    "image_mask": image_mask.read,
    "labelme": labelme.read,
    **{name: datumaro_formats.read for name in datumaro_formats.NAMES},
}
