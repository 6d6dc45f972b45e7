"""Finding the files that annotation and list files name, as tools really write those names.

A tool writes the path of an image as it was on the annotator's machine: relative to the
annotation file (labelme's `imagePath`), relative to where a converter ran (labelme2coco's
`JPEGImages/NAME.jpg`), absolute (`C:\\Users\\ann\\photos\\NAME.jpg`), with Windows separators,
or as a bare name beside an `images/` folder (COCO). `ImageIndex.find` resolves such a name under
the dataset's folder: first as written relative to the annotation file's folder, then by its
trailing components (the longest tail of the written path that a file below the folder ends
with), so a folder moved to another machine reads the same. A name two files fit equally well is
an error naming both.
"""

from __future__ import annotations

import pathlib
import re
import urllib.parse

from ddpmseg.errors import DatasetError
from ddpmseg.folders import walk_files
from ddpmseg.images import IMAGE_SUFFIXES

PREFERRED_FOLDERS = ("images", "jpegimages")  # where a bare image name is looked for first (COCO, VOC)
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # what Label Studio puts before an uploaded file's name


def written_parts(written: str) -> tuple:
    """The components of a path as a tool wrote it: '/' or '\\' separated, a drive letter, a
    file:// scheme and URL quoting removed, '.' dropped ('..' kept: it matches no file name)."""
    text = written.strip()
    if text.lower().startswith("file://"):
        text = urllib.parse.unquote(urllib.parse.urlparse(text).path)
    text = text.replace("\\", "/")
    if len(text) > 1 and text[1] == ":":  # C:/...
        text = text[2:]
    return tuple(part for part in text.split("/") if part not in ("", "."))


class ImageIndex:
    """Every image file below ``root`` (dot-files and dot-folders skipped), by file name."""

    def __init__(self, root):
        self.root = pathlib.Path(root)
        self.by_name: dict = {}
        for rel in walk_files(self.root, strict=False):
            if rel.suffix.lower() in IMAGE_SUFFIXES:
                self.by_name.setdefault(rel.name, []).append(rel)

    def paths(self) -> list:
        """Every indexed image, as a path below ``root``, sorted."""
        return sorted((self.root / rel for rels in self.by_name.values() for rel in rels), key=str)

    def find(self, written: str, bases: list, where: str) -> pathlib.Path | None:
        """The image that an annotation file names as ``written``: as written (absolute, or relative
        to the first of the folders ``bases`` where it exists) where that lies below the root; else the image below the root
        whose path shares the longest tail with it (one in an images/ or JPEGImages/ folder first
        on a tie); else as written where that file exists elsewhere; else None. DatasetError
        naming ``where`` (the annotation file, and its line or record) when two images below the
        root fit equally well. A Label Studio upload (.../upload/<project>/<8 hex>-<name>) missing
        below the root is looked for by its original name."""
        parts = written_parts(written)
        if not parts:
            return None
        if pathlib.PurePath(written).is_absolute():
            tried = [pathlib.Path(written)]
        else:
            tried = [pathlib.Path(base).joinpath(*parts) for base in bases]
        for as_written in tried:
            if as_written.resolve().is_relative_to(self.root.resolve()) and as_written.is_file():
                return as_written
        as_written = tried[0]
        if parts[-1] not in self.by_name and "upload" in parts[:-1]:  # Label Studio's upload of the file:
            parts = (*parts[:-1], UPLOAD_PREFIX.sub("", parts[-1]))   # <media>/upload/<project>/<8 hex>-<name>
        matched = [(_common_tail(rel.parts, parts), rel) for rel in self.by_name.get(parts[-1], [])]
        if not matched:
            return as_written if as_written.is_file() else None
        best = max(length for length, _ in matched)
        fits = [rel for length, rel in matched if length == best]
        if len(fits) > 1:
            preferred = [rel for rel in fits if len(rel.parts) > 1 and rel.parts[-2].lower() in PREFERRED_FOLDERS]
            fits = preferred or fits
        if len(fits) > 1:
            shown = " and ".join(str(self.root / rel) for rel in sorted(fits, key=str)[:2])
            raise DatasetError(f"{where}: names the image {written!r}, which is found twice: {shown}. Rename or "
                               "remove one of them, or write the path in full.")
        return self.root / fits[0]


def _common_tail(found: tuple, written: tuple) -> int:
    """How many trailing components two paths share."""
    n = 0
    while n < min(len(found), len(written)) and found[-1 - n] == written[-1 - n]:
        n += 1
    return n
