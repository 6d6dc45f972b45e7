"""The table of docs/results.md#annotation-tools-own-exports: every real export the tests read
(`../shared/real-exports/labelme/`, `tests/data/real_exports/`, and CVAT's segmentation-mask layout
written by the writer CVAT uses), read with the format named and with `format: auto`: the format
auto chose, images per subset, labelled and unlabeled counts, classes (those with pixels), what
was skipped, and the agreement with a reference annotation of the same photos where one exists.

    python benchmarks/real_exports.py     # a markdown table on stdout, a few seconds
"""

import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY / "src"))
sys.path.insert(0, str(REPOSITORY / "tests"))

from ddpmseg.formats.detect import detect  # noqa: E402
from ddpmseg.formats.prepare import read_source  # noqa: E402
from ddpmseg.formats.source import class_table, lut_classes  # noqa: E402

LABELME = REPOSITORY.parent / "shared" / "real-exports" / "labelme"
SAMPLES = REPOSITORY / "tests" / "data" / "real_exports"


def read(root, fmt: str) -> tuple:
    """(source, final classes, {image id: labels}) of ``root`` read with ``fmt``."""
    source = read_source(root, {"format": fmt}, "table")
    classes, lut = class_table(source, None, "auto", 255, "table")
    return source, classes, {i.image_id: lut_classes(i.class_map(), lut) for i in source.images if i.class_map}


def agreement(ours: dict, reference: dict) -> str:
    """Share of the pixels both label on which they agree, and how many pixels differ."""
    both = sum(int(((ours[i] != 255) & (reference[i] != 255)).sum()) for i in ours)
    same = sum(int(((ours[i] == reference[i]) & (ours[i] != 255)).sum()) for i in ours)
    differ = sum(int((ours[i] != reference[i]).sum()) for i in ours)
    return f"{same:,} of {both:,} pixels ({100 * same / both:.2f}%); {differ:,} differ"


def main() -> None:
    from test_real_exports import write_cvat_segmentation_mask_export

    _, _, semantic = read(LABELME / "semantic_json", "labelme")
    cvat = write_cvat_segmentation_mask_export(Path(tempfile.mkdtemp()) / "cvat")
    rows = [
        ("labelme/semantic_json", "labelme app", LABELME / "semantic_json", "labelme", None),
        ("labelme/semantic_voc", "labelme2voc", LABELME / "semantic_voc", "voc", semantic),
        ("labelme/instance_coco", "labelme2coco", LABELME / "instance_coco", "coco_instances", semantic),
        ("labelme/instance_coco/annotations.json", "labelme2coco", LABELME / "instance_coco/annotations.json",
         "coco_instances", semantic),
        ("real_exports/roboflow_coco", "Roboflow", SAMPLES / "roboflow_coco", "roboflow_coco", None),
        ("real_exports/cvat_voc_segmentation", "datumaro's VOC test data", SAMPLES / "cvat_voc_segmentation", "voc",
         None),
        ("CVAT Segmentation mask 1.1 layout", "datumaro voc_segmentation (CVAT's writer)", cvat, "voc", None),
    ]
    print("| folder | written by | format given | `auto` chose | images per subset | labelled / unlabeled | "
          "classes (with pixels) | skipped | agreement with the labelme JSON |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, tool, root, fmt, reference in rows:
        chosen = detect(root)[0]
        source, classes, labels = read(root, fmt)
        auto = read(root, chosen)[2]
        assert all((auto[i] == labels[i]).all() for i in labels), name  # auto reads the same pixels
        subsets = Counter(image.subset or '""' for image in source.images)
        present = {int(v) for label in labels.values() for v in np.unique(label) if v != 255}
        skipped = ", ".join(f"{n} {what}" for what, n in source.skipped.items()) or "-"
        print(f"| `{name}` | {tool} | `{fmt}` | `{chosen}` | "
              f"{', '.join(f'{s} {n}' for s, n in sorted(subsets.items()))} | {len(labels)} / "
              f"{len(source.images) - len(labels)} | {len(classes)} ({len(present)}) | {skipped} | "
              f"{agreement(labels, reference) if reference is not None else '-'} |")


if __name__ == "__main__":
    main()
