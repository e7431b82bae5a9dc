"""Downloads and extraction against a local HTTP server on 127.0.0.1 (the real code, a tiny archive)."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from speechvq.cli import main
from speechvq.data.download import Archive, download_archive, extract_archive, with_mirror
from speechvq.errors import SpeechVQError


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves files from `root`, honouring `Range: bytes=N-` unless `ignore_range` is set."""

    root: Path
    ignore_range = False
    requests: list

    def do_GET(self):  # noqa: N802 (the http.server API)
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.requests.append(self.headers.get("Range"))
        start = 0
        if self.headers.get("Range") and not self.ignore_range:
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = type("Handler", (RangeHandler,), {"root": root, "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def librispeech_like_tarball(path: Path) -> bytes:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in [("LibriSpeech/dev-clean/84/121123/84-121123-0000.flac", b"fake flac " * 500),
                              ("LibriSpeech/dev-clean/84/121123/84-121123.trans.txt", b"84-121123-0000 HI\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path.read_bytes()


def archive_for(root: Path, url: str, name: str) -> Archive:
    data = (root / name).read_bytes()
    return Archive(name, f"{url}/{name}", len(data), hashlib.sha256(data).hexdigest())


def test_download_verify_extract_and_idempotence(server, tmp_path):
    root, url, handler = server
    librispeech_like_tarball(root / "dev-clean.tar.gz")
    archive = archive_for(root, url, "dev-clean.tar.gz")
    seen = []
    path = download_archive(archive, tmp_path / "dl", progress=seen.append)
    assert path.read_bytes() == (root / "dev-clean.tar.gz").read_bytes() and sum(seen) == archive.size
    extract_archive(path, tmp_path / "dl")
    assert (tmp_path / "dl/LibriSpeech/dev-clean/84/121123/84-121123.trans.txt").read_text() == "84-121123-0000 HI\n"
    # a second call fetches nothing and extracts nothing
    (tmp_path / "dl/LibriSpeech/dev-clean/84/121123/84-121123.trans.txt").write_text("edited")
    requests_before = len(handler.requests)
    download_archive(archive, tmp_path / "dl")
    extract_archive(path, tmp_path / "dl")
    assert len(handler.requests) == requests_before
    assert (tmp_path / "dl/LibriSpeech/dev-clean/84/121123/84-121123.trans.txt").read_text() == "edited"


@pytest.mark.parametrize("ignore_range", [False, True])
def test_partial_download_resumes(server, tmp_path, ignore_range):
    root, url, handler = server
    handler.ignore_range = ignore_range
    data = librispeech_like_tarball(root / "dev-clean.tar.gz")
    archive = archive_for(root, url, "dev-clean.tar.gz")
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / "dev-clean.tar.gz.part").write_bytes(data[: len(data) // 2])
    path = download_archive(archive, folder)
    assert path.read_bytes() == data
    assert handler.requests == [f"bytes={len(data) // 2}-"]  # asked only for the rest
    assert not (folder / "dev-clean.tar.gz.part").exists()


def test_wrong_checksum_is_rejected_and_nothing_extracted(server, tmp_path):
    root, url, _ = server
    librispeech_like_tarball(root / "dev-clean.tar.gz")
    good = archive_for(root, url, "dev-clean.tar.gz")
    bad = Archive(good.name, good.url, good.size, "0" * 64)
    with pytest.raises(SpeechVQError, match="SHA-256 mismatch"):
        download_archive(bad, tmp_path / "dl")
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == []


def test_cli_against_the_official_table_rejects_a_different_file(server, tmp_path, capsys):
    # The mirror serves a file named like the real dev-clean archive but of another size: refused.
    root, url, _ = server
    librispeech_like_tarball(root / "dev-clean.tar.gz")
    code = main(["download", "librispeech", "--subset", "dev-clean", "--dir", str(tmp_path / "dl"), "--mirror", url])
    assert code == 1
    assert "expected 337926286" in capsys.readouterr().err
    assert not (tmp_path / "dl" / "LibriSpeech").exists()
    assert not list((tmp_path / "dl").glob("dev-clean.tar.gz*"))


def test_unreachable_host_is_one_line(tmp_path):
    archive = with_mirror(Archive("x.tar.gz", "https://example.invalid/x.tar.gz", 10, "0" * 64), "http://127.0.0.1:9")
    with pytest.raises(SpeechVQError, match="cannot reach http://127.0.0.1:9/x.tar.gz"):
        download_archive(archive, tmp_path)


def test_tar_members_escaping_the_folder_are_refused(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        for name in ["ok/file.txt", "../outside.txt"]:
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(SpeechVQError, match="refusing to extract"):
        extract_archive(evil, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "out" / "ok").exists()
    linked = tmp_path / "link.tar.gz"
    with tarfile.open(linked, "w:gz") as tar:
        info = tarfile.TarInfo("data/escape")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(SpeechVQError, match="refusing to extract"):
        extract_archive(linked, tmp_path / "out2")


def test_zip_members_escaping_the_folder_are_refused(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as archive:
        archive.writestr("VCTK-Corpus-0.92/txt/p225/p225_001.txt", "hello")
    extract_archive(good, tmp_path / "out")
    assert (tmp_path / "out/VCTK-Corpus-0.92/txt/p225/p225_001.txt").read_text() == "hello"
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("fine.txt", "x")
        archive.writestr("../../escape.txt", "x")
    with pytest.raises(SpeechVQError, match="outside"):
        extract_archive(evil, tmp_path / "out3")
    assert not (tmp_path / "out3" / "fine.txt").exists() and not (tmp_path / "escape.txt").exists()
