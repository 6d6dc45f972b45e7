"""Fingerprints of the files a preparation reads, so that the workflow reruns it when any changes.

Each is a sha256 (hex) over the relative path, size and mtime (ns) of every file, listed as
`ddpmseg.folders.walk_files` lists them (links followed where they may be): a file added,
removed, rewritten or touched changes it.
"""

from __future__ import annotations

import hashlib
import pathlib

from ddpmseg.folders import walk_files


def _files_digest(root: pathlib.Path, files: list) -> str:
    """sha256 (hex) over "path<TAB>size<TAB>mtime_ns" of ``files`` (relative to ``root``), sorted."""
    digest = hashlib.sha256()
    for rel in sorted(files, key=str):
        stat = (root / rel).stat()
        digest.update(f"{rel}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def manifest_digest(root, tops=("real", "unlabeled")) -> str:
    """The fingerprint of meta.json and of every file below the folders ``tops`` of the paper's
    layout: real/ (the labelled splits), unlabeled/ (the pool); "" when ``root`` is no folder."""
    root = pathlib.Path(root)
    if not root.is_dir():
        return ""
    files = [pathlib.PurePosixPath("meta.json")] if (root / "meta.json").is_file() else []
    for top in tops:
        if (root / top).is_dir():
            files += [pathlib.PurePosixPath(top) / rel for rel in walk_files(root / top, strict=False)]
    return _files_digest(root, files)


def folder_digest(folder) -> str:
    """The fingerprint of every file below ``folder``; "" when it is no folder."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return ""
    return _files_digest(folder, walk_files(folder, strict=False))
