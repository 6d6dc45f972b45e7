"""The files below a folder as every reader lists them.

`walk_files` lists a folder's files recursively, skipping files and folders whose name starts
with "." and sorting nothing. Linked files are read; a linked folder must lead to a folder inside
the walked one not reached otherwise (no loops, no images from elsewhere). `list_folder` gives
a folder's images (`ddpmseg.images.IMAGE_SUFFIXES`) sorted by their path below it, each with the
NAME.npy label beside it, as the paper's code names them.
"""

from __future__ import annotations

import os
import pathlib

from ddpmseg.errors import DatasetError
from ddpmseg.images import IMAGE_SUFFIXES


def _folder_link_problem(link: pathlib.Path, folder: pathlib.Path, visited: set) -> str | None:
    """Why the folder link ``link`` below ``folder`` must not be followed, or None."""
    target = link.resolve()
    if not target.is_relative_to(folder.resolve()):
        return (f"{link}: folder link to {target}, outside the split folder {folder}: its images would join "
                "this split (another split's, or from elsewhere). Copy the images in, or remove the link.")
    if target in visited or link.parent.resolve().is_relative_to(target):
        return (f"{link}: folder link to {target}, a folder this split already reaches (a loop or a second way "
                "in): its images would count more than once. Remove the link.")
    return None


def walk_files(folder: pathlib.Path, strict: bool = True) -> list[pathlib.PurePosixPath]:
    """Paths (relative to ``folder``) of all files below it, skipping dot-files and dot-folders.

    Folder links are followed when they lead inside ``folder`` to a folder not reached
    otherwise; any other raises DatasetError naming it (``strict``) or is skipped.
    """
    found, problems = [], []
    visited = {folder.resolve()}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        kept = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            path = pathlib.Path(dirpath) / name
            if path.is_symlink():
                problem = _folder_link_problem(path, folder, visited)
            elif path.resolve() in visited:  # a link listed earlier leads here
                problem = (f"{path}: this folder is also reached through a folder link in {folder}: its images "
                           "would count twice. Remove the link.")
            else:
                problem = None
            if problem:
                problems.append(problem)
            else:
                visited.add(path.resolve())
                kept.append(name)
        dirnames[:] = kept
        rel = pathlib.PurePosixPath(pathlib.Path(dirpath).relative_to(folder).as_posix())
        found.extend(rel / f for f in filenames if not f.startswith("."))
    if problems and strict:
        raise DatasetError("\n".join(problems), problems)
    return found


def list_folder(folder, labelled: bool = False, max_images: int | None = None, what: str = "") -> list:
    """The images below ``folder``, sorted by path relative to it: ``[(image_id, image_path,
    label_path or None)]``, the first ``max_images`` if given. ``image_id`` is the relative path
    without suffix with '/' separators (e.g. "0001" or "sub/0001"); ``label_path`` the ``.npy``
    beside the image when ``labelled`` and the file exists, else None. DatasetError when the
    folder does not exist (``what`` names its images in the message)."""
    folder = pathlib.Path(folder)
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be a positive integer or None; got {max_images!r}")
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found. Put the {what + ' ' if what else ''}images there.")
    images = sorted((p for p in walk_files(folder) if p.suffix.lower() in IMAGE_SUFFIXES), key=str)
    if max_images is not None:
        images = images[:max_images]
    items = []
    for rel in images:
        image_path = folder / rel
        label_path = image_path.with_suffix(".npy")
        has_label = labelled and label_path.is_file()
        items.append((rel.with_suffix("").as_posix(), image_path, label_path if has_label else None))
    return items


def relative_file(path, root) -> str:
    """``path`` relative to ``root`` with '/' separators, or absolute where it lies outside."""
    path, root = pathlib.Path(path), pathlib.Path(root)
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.absolute().as_posix()
