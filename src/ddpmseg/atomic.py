"""Folders written whole or not at all: a failure never leaves a half-written output."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def folder_written_atomically(dest) -> Iterator[Path]:
    """Yields a new empty folder beside `dest` to write into. When the block ends without an
    error, that folder becomes `dest` (an old `dest` is moved aside first, then deleted); when it
    raises, the folder is deleted and `dest` is left as it was."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        yield tmp
        if dest.exists() or dest.is_symlink():
            old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".old"))
            os.replace(dest, old / dest.name)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
