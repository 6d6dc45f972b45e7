"""Downloads against a local HTTP server (with and without Range support) and file:// URLs."""

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from ddpmseg.download import DownloadError, download, unpack

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /file.bin, honouring `Range: bytes=N-` when the server allows it;
    cuts the body off after `cut_after` bytes when set (a dropped connection)."""

    def do_GET(self):
        server = self.server
        server.requests.append(self.headers.get("Range"))
        if self.path != "/file.bin":
            self.send_error(404)
            return
        start = 0
        if server.ranges and self.headers.get("Range"):
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:
            self.wfile.write(body[: server.cut_after])
            self.wfile.flush()
            self.connection.shutdown(2)  # the client sees the connection drop mid-body
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests, httpd.ranges, httpd.cut_after = [], True, None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(httpd) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/file.bin"


def test_http_download_verifies_the_checksum_and_keeps_a_good_file(server, tmp_path):
    dest = tmp_path / "sub" / "file.bin"
    assert download(_url(server), dest, PAYLOAD_SHA256) == PAYLOAD_SHA256
    assert dest.read_bytes() == PAYLOAD and not dest.with_name("file.bin.part").exists()
    assert download(_url(server), dest, PAYLOAD_SHA256) == PAYLOAD_SHA256  # already there: no request
    assert len(server.requests) == 1


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    dest = tmp_path / "file.bin"
    server.cut_after = 300_000
    with pytest.raises(DownloadError, match=r"run again to resume"):
        download(_url(server), dest, PAYLOAD_SHA256)
    part = tmp_path / "file.bin.part"
    assert not dest.exists() and 0 < part.stat().st_size < len(PAYLOAD)  # never a half-written dest
    kept = part.stat().st_size
    server.cut_after = None
    download(_url(server), dest, PAYLOAD_SHA256)
    assert server.requests[-1] == f"bytes={kept}-"
    assert dest.read_bytes() == PAYLOAD


def test_server_without_ranges_restarts_from_the_beginning(server, tmp_path):
    server.ranges = False
    (tmp_path / "file.bin.part").write_bytes(b"stale bytes from another file")
    download(_url(server), tmp_path / "file.bin", PAYLOAD_SHA256)
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes_the_download(server, tmp_path):
    with pytest.raises(DownloadError, match=f"has sha256 {PAYLOAD_SHA256}, expected 0{{64}}; it was deleted"):
        download(_url(server), tmp_path / "file.bin", "0" * 64)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file.bin").write_bytes(b"placed by hand, but wrong")
    with pytest.raises(DownloadError, match=r"file\.bin: sha256 is .* Delete the file to fetch it again"):
        download(_url(server), tmp_path / "file.bin", PAYLOAD_SHA256)


def test_no_network_says_where_to_put_the_file(tmp_path):
    # port 9 on localhost: nothing listens there, the connection is refused at once
    with pytest.raises(DownloadError) as info:
        download("http://127.0.0.1:9/ffhq.pt", tmp_path / "resources" / "ffhq.pt", "a" * 64)
    message = str(info.value)
    assert "cannot download http://127.0.0.1:9/ffhq.pt" in message
    assert f"put it at {(tmp_path / 'resources' / 'ffhq.pt').resolve()} (sha256 {'a' * 64})" in message
    assert not (tmp_path / "resources" / "ffhq.pt").exists()


def test_file_url_with_unpinned_checksum(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "copy.bin"
    assert download(source.as_uri(), dest) == PAYLOAD_SHA256
    assert dest.read_bytes() == PAYLOAD
    (tmp_path / "out" / "other.bin.part").write_bytes(PAYLOAD[:1000])  # a file URL resumes too
    download(source.as_uri(), tmp_path / "out" / "other.bin", PAYLOAD_SHA256)
    assert (tmp_path / "out" / "other.bin").read_bytes() == PAYLOAD


def _tar_gz(path: Path, members: dict) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_unpack_tar_gz_and_zip_into_place(tmp_path):
    _tar_gz(tmp_path / "a.tar.gz", {"bedroom_28/real/train/x.npy": b"1", "ffhq_34/real/test/y.png": b"2"})
    unpack(tmp_path / "a.tar.gz", tmp_path / "datasets")
    assert (tmp_path / "datasets/bedroom_28/real/train/x.npy").read_bytes() == b"1"
    assert (tmp_path / "datasets/ffhq_34/real/test/y.png").read_bytes() == b"2"
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as zf:
        zf.writestr("cat_15/real/train/z.npy", b"3")
    unpack(tmp_path / "b.zip", tmp_path / "datasets")  # replaces the folder whole
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == ["cat_15"]


def test_unpack_refuses_members_outside_the_folder(tmp_path):
    _tar_gz(tmp_path / "evil.tar.gz", {"../outside.txt": b"x"})
    with pytest.raises(tarfile.TarError):
        unpack(tmp_path / "evil.tar.gz", tmp_path / "datasets")
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "datasets").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["evil.tar.gz"]  # no temporary folder left
