"""The .svq code file: a compact, versioned, checksummed container (standard library only).

Format version 2 (written by default), all fixed-width integers little-endian:

    offset  size  field
    0       3     magic 89 53 56 ("\x89SV"; a version-1 file has 51 "Q" at offset 3, a v2 file its version)
    3       1     format version: 2
    4       1     flags: bits 0-1 coding (0 packed, 1 markov1), bits 2-3 speaker (0 none, 1 a named voice,
                  2 a speaker vector), bit 4 metadata present, bit 5 pitch stream present; bits 6-7 are 0
    5       4     model fingerprint: 32 bits of the model's fingerprint (for markov1 files, of the model's and
                  its code statistics' together), big-endian as in its hex form
    9       var   samples T (unsigned LEB128 varint, at most 5 bytes)
    .       var   frames F (varint); F = ceil(T / hop) for the model's hop
    .       2     level gain in dB, signed, in 1/256 dB (|gain| <= 120 dB); decoders divide by it
    .       var   speaker: a named voice: its row in the model's speaker list (varint); a vector: its length n
                  in bytes (varint), then n bytes: one level per dimension at the model's speaker_bits bits,
                  packed as codes are
    .       var   metadata, when flagged: its length (varint), then a UTF-8 JSON object
    .       var   pitch stream, when flagged (models with `model.pitch.bits` > 0): its length n in bytes
                  (varint), then n bytes: ceil(F / frame_codes) symbols, range-coded as markov1 codes are
                  under the code statistics' pitch counts in a markov1 file whose statistics have them,
                  otherwise of `bits` bits each, packed as codes are
    .       P     payload: the codes, as the coding says (runs to the CRC)
    end-4   4     CRC-32 (ISO-HDLC, as zlib.crc32) of every byte before it

Fixed header and framing: 15 bytes; a 2 s or 10 s file adds 5 bytes of varints (and 1 byte for a named
voice, or 1 + 32 for a 64-dimensional vector at 4 bits). A pitch stream of 6-bit symbols every 4 codes adds
47 bytes per second of audio at 250 codes/s bit-packed (375 bit/s), less range-coded. Readers older than the
pitch stream refuse such files by their flags; whether its pitch stream is range-coded, a file's fingerprint
(which covers the statistics, pitch counts included) tells a reader that has the right statistics. What
the codes need besides (sample rate, hop, codebook size, the code statistics) the model that the fingerprint
names supplies.

Codings:

    packed    each code in B = max(1, ceil(log2 K)) bits, most significant bit first, codes in order, the
              last byte padded with zero bits: P = ceil(F * B / 8).
    markov1   range coding (the `constriction` library's RangeEncoder, 32-bit words, little-endian) of the
              codes under a first-order Markov model whose counts the model checkpoint carries; see
              speechvq/entropy.py. Decoding needs the same checkpoint.

Format version 1 (read, and written on request): 8-byte magic "\x89SVQ\r\n\x1a\n", a 2-byte version, a
4-byte header length H, H bytes of UTF-8 JSON (sample_rate, hop_length, codebook_size, frames, samples, gain,
model_fingerprint (16 hex digits), speaker (a name or null), speechvq_version, coding, entropy_model,
code_entropy_bits), a 4-byte payload length P, the payload, and the CRC-32. It cost about 300 bytes per file.

A reader rejects a wrong magic, an unknown version, a truncated or overlong file, a CRC mismatch, reserved
bits set, overlong varints, non-finite or absurd values (sizes, gain), a header that is not what its version
says, and a packed payload of the wrong length or with codes >= K; each raises SpeechVQError with one line.
Whether the codes belong to a given model is the caller's check (fingerprint).
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .atomic import write_bytes_atomic
from .errors import SpeechVQError

MAGIC = b"\x89SV"
MAGIC_V1 = b"\x89SVQ\r\n\x1a\n"
_CHECKPOINT_MAGICS = (b"PK\x03\x04", b"\x80\x02")  # torch.save: zip archive; legacy pickle (protocol 2)
FORMAT_VERSION = 2
VERSIONS = (1, 2)
CODINGS = ("packed", "markov1")
SPEAKER_KINDS = ("none", "voice", "vector")
MAX_GAIN_DB = 120.0
GAIN_STEPS_PER_DB = 256
_MAX_VARINT_BYTES = 5  # 35 bits: 34 billion samples, 25 days at 16 kHz
_MAX_METADATA_BYTES = 1 << 16
_V1_PREFIX = struct.Struct("<8sHI")  # magic, version, header length
_U32 = struct.Struct("<I")
_MAX_HEADER_BYTES = 1 << 20
_V1_KEYS = {"sample_rate": int, "hop_length": int, "codebook_size": int, "frames": int, "samples": int,
            "gain": float, "model_fingerprint": str, "speaker": (str, type(None)), "speechvq_version": str,
            "coding": str, "entropy_model": (str, type(None)), "code_entropy_bits": float}


@dataclass(frozen=True)
class Header:
    """What a code file says besides its payload (see the module docstring).

    Attributes:
        coding: "packed" or "markov1".
        model_fingerprint: hex digits of the fingerprint the file carries (8 in v2 files, 16 in v1 files).
        samples: T, samples of the decoded audio; frames: F, number of codes.
        gain: linear level gain applied before encoding (> 0); decoders divide by it.
        speaker_voice: a named voice, as its row in the model's speaker list (v2), or None.
        speaker_name: the speaker's name (v1 files name it), or None.
        speaker_vector: the bit-packed levels of a speaker vector (v2), or None.
        pitch: a pitch stream's bytes (v2; bit-packed or range-coded, see the format above), or None.
        metadata: free-form JSON object the writer was asked to add (v2); for v1 files, the fields of its
            JSON header that v2 leaves to the model (sample_rate, hop_length, codebook_size, ...).
        version: the format version of the file.
    """

    coding: str
    model_fingerprint: str
    samples: int
    frames: int
    gain: float
    speaker_voice: Optional[int] = None
    speaker_name: Optional[str] = None
    speaker_vector: Optional[bytes] = None
    pitch: Optional[bytes] = None
    metadata: Optional[dict[str, Any]] = field(default=None, compare=True)
    version: int = FORMAT_VERSION

    @property
    def speaker_kind(self) -> str:
        """"none", "voice" (a named voice: a v2 row or a v1 name) or "vector"."""
        if self.speaker_vector is not None:
            return "vector"
        return "voice" if self.speaker_voice is not None or self.speaker_name is not None else "none"


def gain_to_field(gain: float) -> int:
    """The stored form of a linear gain: round(dB x 256), clamped to +-120 dB (int16)."""
    if not (math.isfinite(gain) and gain > 0):
        raise ValueError(f"the level gain must be finite and positive, got {gain}")
    db = min(MAX_GAIN_DB, max(-MAX_GAIN_DB, 20.0 * math.log10(gain)))
    return int(round(db * GAIN_STEPS_PER_DB))


def gain_from_field(value: int) -> float:
    """The linear gain of a stored value (1/256 dB steps: within 0.02% of what was written)."""
    return 10.0 ** (value / GAIN_STEPS_PER_DB / 20.0)


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, least significant group first, high bit set on all but the last."""
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def decode_varint(data: bytes, offset: int, source: str, name: str) -> tuple[int, int]:
    """(value, next offset) of the varint at `offset`.

    Raises:
        SpeechVQError: the file ends inside it, it is longer than 5 bytes, or it is not minimal.
    """
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if offset + index >= len(data):
            raise SpeechVQError(f"{source} is truncated (inside its {name})")
        byte = data[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index > 0:
                raise SpeechVQError(f"{source} has a malformed {name} (a varint with a needless zero byte)")
            return value, offset + index + 1
    raise SpeechVQError(f"{source} has an absurd {name} (a varint over {_MAX_VARINT_BYTES} bytes)")


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
    """The bytes of a version-2 .svq file.

    Raises:
        ValueError: a header that version 2 cannot hold (unknown coding, a v1-only speaker name, sizes or
            gain out of range).
    """
    if header.coding not in CODINGS:
        raise ValueError(f"unknown coding {header.coding!r}")
    if header.speaker_name is not None:
        raise ValueError("format version 2 records a named voice by its row (speaker_voice), not by name")
    if header.speaker_voice is not None and header.speaker_vector is not None:
        raise ValueError("a file records a named voice or a speaker vector, not both")
    if not 1 <= header.frames <= header.samples < 1 << (7 * _MAX_VARINT_BYTES):
        raise ValueError(f"impossible sizes: {header.frames} frames for {header.samples} samples")
    fingerprint = bytes.fromhex(header.model_fingerprint)
    if len(fingerprint) != 4:
        raise ValueError("a version-2 file carries a 32-bit (8 hex digit) model fingerprint")
    kind = SPEAKER_KINDS.index(header.speaker_kind)
    flags = CODINGS.index(header.coding) | kind << 2 | (0x10 if header.metadata is not None else 0) \
        | (0x20 if header.pitch is not None else 0)
    out = bytearray(MAGIC + bytes([FORMAT_VERSION, flags]) + fingerprint)
    out += encode_varint(header.samples) + encode_varint(header.frames)
    out += struct.pack("<h", gain_to_field(header.gain))
    if header.speaker_voice is not None:
        out += encode_varint(header.speaker_voice)
    elif header.speaker_vector is not None:
        out += encode_varint(len(header.speaker_vector)) + header.speaker_vector
    if header.metadata is not None:
        text = json.dumps(header.metadata, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")
        if len(text) > _MAX_METADATA_BYTES:
            raise ValueError(f"metadata over {_MAX_METADATA_BYTES} bytes")
        out += encode_varint(len(text)) + text
    if header.pitch is not None:
        out += encode_varint(len(header.pitch)) + header.pitch
    out += payload
    return bytes(out) + _U32.pack(zlib.crc32(out))


def serialize_v1(header: Header, payload: bytes) -> bytes:
    """The bytes of a version-1 .svq file (for readers of speechvq 0.1).

    `header.metadata` must hold the v1 fields v2 leaves to the model: sample_rate, hop_length, codebook_size,
    speechvq_version, entropy_model and code_entropy_bits; the speaker is `speaker_name` or none.

    Raises:
        ValueError: a header version 1 cannot hold (a speaker vector, missing fields).
    """
    if header.coding not in CODINGS:
        raise ValueError(f"unknown coding {header.coding!r}")
    if header.speaker_vector is not None or header.speaker_voice is not None:
        raise ValueError("format version 1 records a speaker by name only")
    if header.pitch is not None:
        raise ValueError("format version 1 cannot hold a pitch stream")
    extra = dict(header.metadata or {})
    values = {"frames": header.frames, "samples": header.samples, "gain": header.gain,
              "model_fingerprint": header.model_fingerprint, "speaker": header.speaker_name,
              "coding": header.coding}
    missing = set(_V1_KEYS) - set(values) - set(extra)
    if missing:
        raise ValueError(f"a version-1 header needs {', '.join(sorted(missing))}")
    values.update({key: extra[key] for key in set(_V1_KEYS) - set(values)})
    header_bytes = json.dumps(values, sort_keys=True, separators=(",", ":")).encode("utf-8")
    body = _V1_PREFIX.pack(MAGIC_V1, 1, len(header_bytes)) + header_bytes + _U32.pack(len(payload)) + payload
    return body + _U32.pack(zlib.crc32(body))


def parse(data: bytes, source: str = "code file") -> tuple[Header, bytes]:
    """Check and split the bytes of a .svq file (either version) into header and payload.

    Args:
        data: the whole file.
        source: how to name the file in error messages.

    Raises:
        SpeechVQError: see the module docstring.
    """
    if not data:
        raise SpeechVQError(f"{source} is empty")
    if not (data.startswith(MAGIC) or MAGIC.startswith(data)):
        # torch.save writes a zip archive (a pickle before torch 1.6): a checkpoint given where a code file goes
        hint = "; it looks like a model checkpoint: pass it with --model" if data.startswith(_CHECKPOINT_MAGICS) else ""
        raise SpeechVQError(f"{source} is not a speechvq code file (wrong magic bytes{hint})")
    if len(data) < 4:
        raise SpeechVQError(f"{source} is truncated ({len(data)} bytes)")
    if data[3] == MAGIC_V1[3]:
        return _parse_v1(data, source)
    if data[3] != FORMAT_VERSION:
        raise SpeechVQError(f"{source} has format version {data[3]}; this speechvq reads versions "
                            f"{', '.join(map(str, VERSIONS))}")
    return _parse_v2(data, source)


def _parse_v2(data: bytes, source: str) -> tuple[Header, bytes]:
    if len(data) < 15:
        raise SpeechVQError(f"{source} is truncated ({len(data)} bytes)")
    (crc,) = _U32.unpack_from(data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise SpeechVQError(f"{source} is corrupt (CRC-32 mismatch), or truncated")
    body = data[:-4]
    flags = body[4]
    coding, kind = flags & 0x03, (flags >> 2) & 0x03
    if flags & 0xC0 or coding >= len(CODINGS) or kind >= len(SPEAKER_KINDS):
        raise SpeechVQError(f"{source} has flags this speechvq does not know (0x{flags:02x})")
    fingerprint = body[5:9].hex()
    samples, offset = decode_varint(body, 9, source, "sample count")
    frames, offset = decode_varint(body, offset, source, "frame count")
    if not 1 <= frames <= samples:
        raise SpeechVQError(f"{source} has impossible sizes ({frames} frames for {samples} samples)")
    if offset + 2 > len(body):
        raise SpeechVQError(f"{source} is truncated (inside its gain)")
    (gain_field,) = struct.unpack_from("<h", body, offset)
    offset += 2
    if abs(gain_field) > MAX_GAIN_DB * GAIN_STEPS_PER_DB:
        raise SpeechVQError(f"{source} has an absurd level gain ({gain_field / GAIN_STEPS_PER_DB:.1f} dB)")
    voice = vector = metadata = pitch = None
    if SPEAKER_KINDS[kind] == "voice":
        voice, offset = decode_varint(body, offset, source, "speaker")
    elif SPEAKER_KINDS[kind] == "vector":
        length, offset = decode_varint(body, offset, source, "speaker vector length")
        if length == 0 or offset + length > len(body):
            raise SpeechVQError(f"{source} has a speaker vector of impossible length ({length} bytes)")
        vector, offset = bytes(body[offset:offset + length]), offset + length
    if flags & 0x10:
        length, offset = decode_varint(body, offset, source, "metadata length")
        if length > _MAX_METADATA_BYTES or offset + length > len(body):
            raise SpeechVQError(f"{source} has metadata of impossible length ({length} bytes)")
        try:
            metadata = json.loads(body[offset:offset + length].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise SpeechVQError(f"{source} has metadata that is not JSON") from None
        if not isinstance(metadata, dict):
            raise SpeechVQError(f"{source} has metadata that is not a JSON object")
        offset += length
    if flags & 0x20:
        length, offset = decode_varint(body, offset, source, "pitch stream length")
        if length == 0 or offset + length > len(body):
            raise SpeechVQError(f"{source} has a pitch stream of impossible length ({length} bytes)")
        pitch, offset = bytes(body[offset:offset + length]), offset + length
    header = Header(coding=CODINGS[coding], model_fingerprint=fingerprint, samples=samples, frames=frames,
                    gain=gain_from_field(gain_field), speaker_voice=voice, speaker_vector=vector, pitch=pitch,
                    metadata=metadata, version=2)
    return header, bytes(body[offset:])


def _parse_v1(data: bytes, source: str) -> tuple[Header, bytes]:
    if not (data.startswith(MAGIC_V1) or MAGIC_V1.startswith(data)):
        raise SpeechVQError(f"{source} is not a speechvq code file (wrong magic bytes)")
    if len(data) < _V1_PREFIX.size:
        raise SpeechVQError(f"{source} is truncated ({len(data)} bytes)")
    _, version, header_length = _V1_PREFIX.unpack_from(data)
    if version != 1:
        raise SpeechVQError(f"{source} has format version {version}; this speechvq reads versions "
                            f"{', '.join(map(str, VERSIONS))}")
    if header_length > _MAX_HEADER_BYTES:
        raise SpeechVQError(f"{source} declares a {header_length}-byte header: corrupt")
    payload_at = _V1_PREFIX.size + header_length + _U32.size
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
    header = _parse_v1_header(data[_V1_PREFIX.size:_V1_PREFIX.size + header_length], source)
    return header, data[payload_at:end]


def _parse_v1_header(raw: bytes, source: str) -> Header:
    try:
        values = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SpeechVQError(f"{source} has a header that is not JSON") from None
    if not isinstance(values, dict) or set(values) != set(_V1_KEYS):
        raise SpeechVQError(f"{source} has a header with missing or unknown keys")
    for key, kind in _V1_KEYS.items():
        value = values[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = value = float(value)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise SpeechVQError(f"{source} has a header whose {key} is {value!r}")
        if kind is float and not math.isfinite(value):
            raise SpeechVQError(f"{source} has a header whose {key} is not finite ({value!r})")
    if values["coding"] not in CODINGS:
        raise SpeechVQError(f"{source} uses coding {values['coding']!r}, unknown to this speechvq")
    if min(values["sample_rate"], values["hop_length"], values["codebook_size"] - 1, values["frames"],
           values["samples"]) < 1:
        raise SpeechVQError(f"{source} has a header with impossible sizes")
    gain_db = 20.0 * math.log10(values["gain"]) if values["gain"] > 0 else math.inf
    if -(-values["samples"] // values["hop_length"]) != values["frames"] or abs(gain_db) > MAX_GAIN_DB:
        raise SpeechVQError(f"{source} has an inconsistent header (frames, samples, hop or gain)")
    metadata = {key: values[key] for key in ("sample_rate", "hop_length", "codebook_size", "speechvq_version",
                                             "entropy_model", "code_entropy_bits")}
    return Header(coding=values["coding"], model_fingerprint=values["model_fingerprint"], samples=values["samples"],
                  frames=values["frames"], gain=values["gain"], speaker_name=values["speaker"], metadata=metadata,
                  version=1)


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
