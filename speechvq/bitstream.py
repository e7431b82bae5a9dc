"""The .svq code file: a self-describing, versioned, checksummed container (standard library only).

Layout, all integers unsigned little-endian:

    offset        size  field
    0             8     magic: 89 53 56 51 0D 0A 1A 0A  ("\\x89SVQ\\r\\n\\x1a\\n", PNG-style: catches text-mode
                        transfers and truncation at the first bytes)
    8             2     format version (this module writes and reads FORMAT_VERSION = 1)
    10            4     H: length of the header in bytes
    14            H     header: a UTF-8 JSON object (keys below)
    14 + H        4     P: length of the payload in bytes
    18 + H        P     payload: the codes, as the header's "coding" says
    18 + H + P    4     CRC-32 (ISO-HDLC, as zlib.crc32) of bytes [0, 18 + H + P)

Header keys (all required):

    sample_rate        int    Hz of the decoded audio
    hop_length         int    samples per code frame
    codebook_size      int    K; every code is in [0, K)
    frames             int    F, number of codes
    samples            int    T, samples of the decoded audio (ceil(T / hop_length) == F)
    gain               float  level gain applied before encoding; decoders divide by it
    model_fingerprint  str    identifies the model weights that made the codes (hex)
    speaker            str|null  the voice to decode in by default
    speechvq_version   str    the writer's version
    coding             str    "packed" or "markov1"
    entropy_model      str|null  fingerprint of the code statistics "markov1" needs (null for "packed")
    code_entropy_bits  float  empirical zeroth-order entropy of the codes, bits per code

Codings:

    packed    each code in B = max(1, ceil(log2 K)) bits, most significant bit first, codes in order, the
              last byte padded with zero bits: P = ceil(F * B / 8).
    markov1   range coding (the `constriction` library's RangeEncoder, 32-bit words, little-endian) of the
              codes under a first-order Markov model whose counts the model checkpoint carries; see
              speechvq/entropy.py. Decoding needs the same checkpoint.

A reader rejects a wrong magic, an unknown version, a truncated or overlong file, a CRC mismatch, a header
that is not the JSON above, and a packed payload of the wrong length or with codes >= K; each raises
SpeechVQError with one line. Whether the codes belong to a given model is the caller's check (fingerprint).
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

from .atomic import write_bytes_atomic
from .errors import SpeechVQError

MAGIC = b"\x89SVQ\r\n\x1a\n"
FORMAT_VERSION = 1
CODINGS = ("packed", "markov1")
_PREFIX = struct.Struct("<8sHI")  # magic, version, header length
_U32 = struct.Struct("<I")
_MAX_HEADER_BYTES = 1 << 20


@dataclass(frozen=True)
class Header:
    """The JSON header of a .svq file (see the module docstring for each field)."""

    sample_rate: int
    hop_length: int
    codebook_size: int
    frames: int
    samples: int
    gain: float
    model_fingerprint: str
    speaker: Optional[str]
    speechvq_version: str
    coding: str
    entropy_model: Optional[str]
    code_entropy_bits: float

    @property
    def duration_s(self) -> float:
        """Seconds of audio the file decodes to."""
        return self.samples / self.sample_rate

    @property
    def bits_per_code(self) -> int:
        """Width of one packed code: max(1, ceil(log2 K))."""
        return bits_per_code(self.codebook_size)


_TYPES = {"sample_rate": int, "hop_length": int, "codebook_size": int, "frames": int, "samples": int,
          "gain": float, "model_fingerprint": str, "speaker": (str, type(None)), "speechvq_version": str,
          "coding": str, "entropy_model": (str, type(None)), "code_entropy_bits": float}


def bits_per_code(codebook_size: int) -> int:
    """Bits of one packed code for a codebook of `codebook_size` entries."""
    return max(1, math.ceil(math.log2(codebook_size)))


def pack_codes(codes: Sequence[int], codebook_size: int) -> bytes:
    """Bit-pack codes at bits_per_code(K) bits each, most significant bit first, zero-padded to a byte."""
    width = bits_per_code(codebook_size)
    out = bytearray()
    # Eight codes of `width` bits fill exactly `width` bytes: pack group by group (linear time).
    for start in range(0, len(codes), 8):
        group = codes[start:start + 8]
        value = 0
        for code in group:
            if not 0 <= code < codebook_size:
                raise ValueError(f"code {code} outside [0, {codebook_size})")
            value = (value << width) | code
        n_bits = width * len(group)
        n_bytes = (n_bits + 7) // 8
        out += (value << (8 * n_bytes - n_bits)).to_bytes(n_bytes, "big")
    return bytes(out)


def unpack_codes(data: bytes, n_codes: int, codebook_size: int) -> list[int]:
    """Inverse of `pack_codes`.

    Raises:
        SpeechVQError: wrong payload length, non-zero padding bits, or a code >= K.
    """
    width = bits_per_code(codebook_size)
    expected = (width * n_codes + 7) // 8
    if len(data) != expected:
        raise SpeechVQError(f"packed payload holds {len(data)} bytes, {expected} expected for {n_codes} codes")
    mask = (1 << width) - 1
    codes: list[int] = []
    for start in range(0, n_codes, 8):
        count = min(8, n_codes - start)
        n_bytes = (width * count + 7) // 8
        offset = width * (start // 8)
        value = int.from_bytes(data[offset:offset + n_bytes], "big")
        padding = 8 * n_bytes - width * count
        if value & ((1 << padding) - 1):
            raise SpeechVQError("packed payload has non-zero padding bits")
        value >>= padding
        codes += [(value >> (width * (count - 1 - i))) & mask for i in range(count)]
    if any(code >= codebook_size for code in codes):
        raise SpeechVQError(f"packed payload holds a code outside [0, {codebook_size})")
    return codes


def serialize(header: Header, payload: bytes) -> bytes:
    """The bytes of a .svq file."""
    if header.coding not in CODINGS:
        raise ValueError(f"unknown coding {header.coding!r}")
    header_bytes = json.dumps(asdict(header), sort_keys=True, separators=(",", ":")).encode("utf-8")
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes)) + header_bytes + _U32.pack(len(payload)) + payload
    return body + _U32.pack(zlib.crc32(body))


def parse(data: bytes, source: str = "code file") -> tuple[Header, bytes]:
    """Check and split the bytes of a .svq file into header and payload.

    Args:
        data: the whole file.
        source: how to name the file in error messages.

    Raises:
        SpeechVQError: see the module docstring.
    """
    if not data:
        raise SpeechVQError(f"{source} is empty")
    if not (data.startswith(MAGIC) or MAGIC.startswith(data)):
        raise SpeechVQError(f"{source} is not a speechvq code file (wrong magic bytes)")
    if len(data) < _PREFIX.size:
        raise SpeechVQError(f"{source} is truncated ({len(data)} bytes)")
    _, version, header_length = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise SpeechVQError(f"{source} has format version {version}; this speechvq reads version {FORMAT_VERSION}")
    if header_length > _MAX_HEADER_BYTES:
        raise SpeechVQError(f"{source} declares a {header_length}-byte header: corrupt")
    payload_at = _PREFIX.size + header_length + _U32.size
    if len(data) < payload_at:
        raise SpeechVQError(f"{source} is truncated ({len(data)} bytes)")
    (payload_length,) = _U32.unpack_from(data, payload_at - _U32.size)
    end = payload_at + payload_length
    if len(data) < end + _U32.size:
        raise SpeechVQError(f"{source} is truncated ({len(data)} bytes, {end + _U32.size} expected)")
    if len(data) > end + _U32.size:
        raise SpeechVQError(f"{source} has {len(data) - end - _U32.size} unexpected bytes after its checksum")
    (crc,) = _U32.unpack_from(data, end)
    if zlib.crc32(data[:end]) != crc:
        raise SpeechVQError(f"{source} is corrupt (CRC-32 mismatch)")
    header = _parse_header(data[_PREFIX.size:_PREFIX.size + header_length], source)
    return header, data[payload_at:end]


def _parse_header(raw: bytes, source: str) -> Header:
    try:
        values = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SpeechVQError(f"{source} has a header that is not JSON") from None
    if not isinstance(values, dict) or set(values) != set(_TYPES):
        raise SpeechVQError(f"{source} has a header with missing or unknown keys")
    for key, kind in _TYPES.items():
        value = values[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = value = float(value)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise SpeechVQError(f"{source} has a header whose {key} is {value!r}")
    header = Header(**values)
    if header.coding not in CODINGS:
        raise SpeechVQError(f"{source} uses coding {header.coding!r}, unknown to this speechvq")
    if min(header.sample_rate, header.hop_length, header.codebook_size - 1, header.frames, header.samples) < 1:
        raise SpeechVQError(f"{source} has a header with impossible sizes")
    if -(-header.samples // header.hop_length) != header.frames or not header.gain > 0:
        raise SpeechVQError(f"{source} has an inconsistent header (frames, samples, hop or gain)")
    return header


def write_file(path: str | os.PathLike, header: Header, payload: bytes) -> int:
    """Write a .svq file atomically; returns its size in bytes."""
    data = serialize(header, payload)
    write_bytes_atomic(path, data)
    return len(data)


def read_bytes(path: str | os.PathLike) -> bytes:
    """The raw bytes of a code file.

    Raises:
        SpeechVQError: a missing path, a folder, or an unreadable file.
    """
    if os.path.isdir(path):
        raise SpeechVQError(f"{path} is a folder, not a code file")
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise SpeechVQError(f"no such code file: {path}") from None
    except OSError as err:
        raise SpeechVQError(f"cannot read {path}: {err.strerror}") from None


def read_file(path: str | os.PathLike) -> tuple[Header, bytes]:
    """Read and check a .svq file.

    Raises:
        SpeechVQError: see `read_bytes` and `parse`.
    """
    return parse(read_bytes(path), source=str(path))
