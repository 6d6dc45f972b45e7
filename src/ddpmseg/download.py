"""Fetching the paper's data archive and checkpoints: resumable, checksummed, atomic.

`download` writes `<dest>.part` and renames it to `dest` only once the whole file is there
and its SHA-256 matches, so `dest` is never half-written. An interrupted download resumes
from the bytes already in `.part` (an HTTP Range request; a server that ignores it is read
again from the start). `unpack` extracts a .tar.gz / .tgz / .zip archive the same way:
into a temporary sibling folder, renamed into place at the end.
"""

import hashlib
import logging
import os
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from ddpmseg.atomic import folder_written_atomically
from ddpmseg.errors import UserError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


class DownloadError(UserError, RuntimeError):
    """A file could not be fetched or failed its checksum; the message says what to do."""


def sha256_of(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks; of a folder (a diffusers model), the SHA-256 of
    its listing "<sha256 of the file>  <path relative to the folder>", one line a file, sorted by path."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        listing = "".join(f"{sha256_of(p)}  {p.relative_to(path).as_posix()}\n" for p in files)
        return hashlib.sha256(listing.encode()).hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _by_hand(url: str, dest: Path, sha256: str | None) -> str:
    pinned = f" (sha256 {sha256})" if sha256 else ""
    return (f"Without network access, fetch {url} on another machine and put it at {dest.resolve()}{pinned}; "
            "the workflow then uses it as it is.")


def _open(url: str, offset: int, timeout: float):
    """(response, total size or None, resumed) for reading `url` from byte `offset`."""
    if urllib.parse.urlparse(url).scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        f = open(path, "rb")
        f.seek(offset)
        return f, path.stat().st_size, True
    request = urllib.request.Request(url, headers={"User-Agent": "ddpmseg"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    response = urllib.request.urlopen(request, timeout=timeout)
    resumed = offset > 0 and response.status == 206
    length = response.headers.get("Content-Length")
    total = int(length) + (offset if resumed else 0) if length is not None else None
    return response, total, resumed


def download(url: str, dest, sha256: str | None = None, timeout: float = 60.0) -> str:
    """Fetches `url` to `dest` and returns the file's SHA-256 (hex).

    An existing `dest` is kept when it matches `sha256` (or none is pinned). Bytes already in
    `dest.part` are not fetched again. A checksum mismatch deletes the download and raises
    DownloadError; so does a network failure, with a message saying where to put the file
    by hand.
    """
    dest = Path(dest)
    if dest.exists():
        digest = sha256_of(dest)
        if sha256 is None or digest == sha256:
            log.info("%s is already there (sha256 %s)", dest, digest)
            return digest
        raise DownloadError(f"{dest}: sha256 is {digest}, expected {sha256}. Delete the file to fetch it again, "
                            "or fix `sha256` in the config if the published file changed.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    try:
        response, total, resumed = _open(url, offset, timeout)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot download {url} ({reason}). {_by_hand(url, dest, sha256)}") from exc
    if offset and not resumed:
        log.info("the server does not resume; fetching %s from the start", url)
        offset = 0
    if offset:
        log.info("resuming %s at byte %d", url, offset)
    try:
        with response, open(part, "ab" if offset else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=dest.name, mininterval=5
        ) as progress:
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                out.write(chunk)
                progress.update(len(chunk))
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"download of {url} was cut off after {part.stat().st_size} bytes ({exc}); run again "
                            f"to resume from {part}. {_by_hand(url, dest, sha256)}") from exc
    if total is not None and part.stat().st_size != total:
        raise DownloadError(f"download of {url} stopped at {part.stat().st_size} of {total} bytes; run again to "
                            f"resume from {part}.")
    digest = sha256_of(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise DownloadError(f"{url}: downloaded file has sha256 {digest}, expected {sha256}; it was deleted. "
                            "Run again, or fix `sha256` in the config if the published file changed.")
    os.replace(part, dest)
    if sha256 is None:
        log.warning("%s has no pinned sha256; it is %s (pin it in the config's downloads)", dest, digest)
    return digest


def unpack(archive, dest) -> None:
    """Extracts a .tar.gz / .tgz / .zip `archive` into the folder `dest` (replaced whole).

    Members that would land outside `dest` (absolute paths, '..', links out) are refused.
    """
    archive, dest = Path(archive), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with folder_written_atomically(dest) as tmp:
        if archive.name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        elif archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    if Path(member).is_absolute() or ".." in Path(member).parts:
                        raise DownloadError(f"{archive}: member {member!r} would land outside {dest}")
                zf.extractall(tmp)
        else:
            raise DownloadError(f"{archive}: unknown archive type; use .tar.gz, .tgz, .tar or .zip")
