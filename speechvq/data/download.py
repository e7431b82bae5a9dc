"""Corpus downloads: official URLs with known sizes and checksums, resumable, verified, safely extracted.

    download_archive(archive, folder)   # folder/<name>.part grows until complete, then is verified and renamed
    extract_archive(path, folder)       # refuses members that would land outside `folder` or link out of it

Both are idempotent: a verified archive is not fetched again (a `<name>.verified` marker records the check)
and an extracted one is not unpacked again (`.<name>.extracted`). A wrong size or checksum deletes the bad
download and raises; nothing is extracted from it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..atomic import write_bytes_atomic
from ..errors import SpeechVQError

_CHUNK = 1 << 20
_TIMEOUT_S = 60


@dataclass(frozen=True)
class Archive:
    """A file to download: where from, and how to know it arrived intact."""

    name: str
    url: str
    size: int
    sha256: str


_OPENSLR = "https://www.openslr.org/resources/12/"
# Sizes and SHA-256 sums as published for the final LibriSpeech release (openslr.org/12; the same sums
# torchaudio's LIBRISPEECH dataset checks) and for VCTK 0.92 (datashare.ed.ac.uk/handle/10283/3443).
ARCHIVES: dict[str, dict[str, Archive]] = {
    "librispeech": {
        subset: Archive(f"{subset}.tar.gz", f"{_OPENSLR}{subset}.tar.gz", size, sha256)
        for subset, size, sha256 in [
            ("dev-clean", 337926286, "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3"),
            ("dev-other", 314305928, "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365"),
            ("test-clean", 346663984, "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23"),
            ("test-other", 328757843, "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29"),
            ("train-clean-100", 6387309499, "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2"),
            ("train-clean-360", 23049477885, "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf"),
            ("train-other-500", 30593501606, "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2"),
        ]
    },
    "vctk": {
        "0.92": Archive("VCTK-Corpus-0.92.zip",
                        "https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip",
                        11747302977, "f96258be9fdc2cbff6559541aae7ea4f59df3fcaf5cf963aae5ca647357e359c"),
    },
}


def with_mirror(archive: Archive, mirror: Optional[str]) -> Archive:
    """The same archive fetched from `mirror` (a base URL ending in a folder) instead of its official host."""
    if not mirror:
        return archive
    return Archive(archive.name, mirror.rstrip("/") + "/" + archive.name, archive.size, archive.sha256)


def download_archive(archive: Archive, folder: str | os.PathLike,
                     progress: Optional[Callable[[int], None]] = None) -> Path:
    """Download `archive` into `folder`, resuming a partial download, and verify size and SHA-256.

    Args:
        archive: what to fetch.
        folder: where `archive.name` ends up.
        progress: called with the number of bytes received (also with the bytes already on disk when resuming).

    Returns:
        the path of the verified archive.

    Raises:
        SpeechVQError: the host cannot be reached, or the file has the wrong size or checksum (the bad file
            is deleted so that the next attempt starts over).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target, partial, marker = folder / archive.name, folder / f"{archive.name}.part", folder / f"{archive.name}.verified"
    if target.is_file() and marker.is_file() and target.stat().st_size == archive.size:
        return target
    if target.is_file():  # present but never verified (e.g. copied in by hand): check it, do not refetch
        os.replace(target, partial)
    if not (partial.is_file() and partial.stat().st_size == archive.size):
        _fetch(archive, partial, progress)
    _verify(archive, partial)
    os.replace(partial, target)
    write_bytes_atomic(marker, f"{archive.sha256}  {archive.name}\n".encode())
    return target


def _fetch(archive: Archive, partial: Path, progress: Optional[Callable[[int], None]]) -> None:
    offset = partial.stat().st_size if partial.is_file() else 0
    if offset > archive.size:
        partial.unlink()
        offset = 0
    request = urllib.request.Request(archive.url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset == archive.size:  # nothing left to fetch
            return
        raise SpeechVQError(f"download of {archive.url} failed: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise SpeechVQError(f"cannot reach {archive.url}: {getattr(err, 'reason', err)}") from None
    with response:
        if offset and response.status != 206:  # the server ignored the range: start over
            offset = 0
        if progress is not None and offset:
            progress(offset)
        with open(partial, "ab" if offset else "wb") as handle:
            received = offset
            while chunk := response.read(_CHUNK):
                received += len(chunk)
                if received > archive.size:
                    break
                handle.write(chunk)
                if progress is not None:
                    progress(len(chunk))


def _verify(archive: Archive, path: Path) -> None:
    size = path.stat().st_size
    if size != archive.size:
        path.unlink()
        raise SpeechVQError(f"{archive.name}: got {size} bytes, expected {archive.size}; deleted, run again to retry")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != archive.sha256:
        path.unlink()
        raise SpeechVQError(f"{archive.name}: SHA-256 mismatch (got {digest.hexdigest()[:16]}..., expected "
                            f"{archive.sha256[:16]}...); deleted, nothing extracted")


def extract_archive(path: str | os.PathLike, folder: str | os.PathLike) -> None:
    """Unpack a .tar.gz/.tar or .zip into `folder`, once.

    Members with absolute paths, `..` components, or links pointing outside `folder` are refused (tar:
    the standard library's `data` filter; zip: checked here), and so is the whole archive with them.

    Raises:
        SpeechVQError: an unsafe member, or an archive that cannot be read.
    """
    path, folder = Path(path), Path(folder)
    marker = folder / f".{path.name}.extracted"
    if marker.is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(path):
            _extract_zip(path, folder)
        else:
            with tarfile.open(path) as tar:
                # Check every member before writing any, so an unsafe archive leaves nothing behind.
                for member in tar.getmembers():
                    tarfile.data_filter(member, str(folder))
                tar.extractall(folder, filter="data")
    except tarfile.FilterError as err:
        raise SpeechVQError(f"refusing to extract {path.name}: {err}") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise SpeechVQError(f"cannot extract {path.name}: {err}") from None
    write_bytes_atomic(marker, b"")


def _extract_zip(path: Path, folder: Path) -> None:
    root = folder.resolve()
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        for member in members:
            destination = (root / member.filename).resolve()
            if os.path.isabs(member.filename) or (destination != root and root not in destination.parents):
                raise SpeechVQError(f"refusing to extract {path.name}: {member.filename!r} would land outside "
                                    f"{folder}")
            if stat.S_ISLNK(member.external_attr >> 16):
                raise SpeechVQError(f"refusing to extract {path.name}: {member.filename!r} is a symbolic link")
        for member in members:
            destination = root / member.filename
            if member.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(destination, "wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
