"""The .svq container: packing, round trips, and every kind of damage a reader must refuse."""

from __future__ import annotations

import json
import struct
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from speechvq import bitstream
from speechvq.bitstream import FORMAT_VERSION, MAGIC, Header, pack_codes, parse, serialize, unpack_codes
from speechvq.errors import SpeechVQError


def header(**changes) -> Header:
    values = dict(sample_rate=16000, hop_length=64, codebook_size=512, frames=3, samples=150, gain=1.5,
                  model_fingerprint="0123456789abcdef", speaker="p225", speechvq_version="0.1.0", coding="packed",
                  entropy_model=None, code_entropy_bits=1.58)
    values.update(changes)
    return Header(**values)


@given(st.integers(2, 5000).flatmap(lambda k: st.tuples(st.just(k), st.lists(st.integers(0, k - 1), max_size=70))))
@settings(max_examples=200, deadline=None)
def test_pack_unpack_round_trip(size_and_codes):
    size, codes = size_and_codes
    data = pack_codes(codes, size)
    assert len(data) == (bitstream.bits_per_code(size) * len(codes) + 7) // 8
    assert unpack_codes(data, len(codes), size) == codes


def test_packing_is_msb_first():
    assert pack_codes([1, 2, 3], 4) == bytes([0b01101100])  # 01 10 11, then two zero padding bits
    assert bitstream.bits_per_code(2) == 1 and bitstream.bits_per_code(512) == 9 and bitstream.bits_per_code(513) == 10


def test_unpack_rejects_bad_payloads():
    with pytest.raises(SpeechVQError, match="bytes"):
        unpack_codes(b"\x00\x00\x00", 1, 512)  # one 9-bit code needs 2 bytes
    with pytest.raises(SpeechVQError, match="padding"):
        unpack_codes(bytes([0b01101101]), 3, 4)
    with pytest.raises(SpeechVQError, match="outside"):
        unpack_codes(bytes([0xFF, 0x80]), 1, 300)  # 9-bit value 511 >= 300


def test_serialize_parse_round_trip():
    h = header()
    payload = pack_codes([1, 2, 511], 512)
    data = serialize(h, payload)
    assert data.startswith(MAGIC) and struct.unpack_from("<H", data, 8)[0] == FORMAT_VERSION
    assert parse(data) == (h, payload)
    assert zlib.crc32(data[:-4]) == struct.unpack("<I", data[-4:])[0]
    assert h.duration_s == pytest.approx(150 / 16000)


def rebuild(header_bytes: bytes, payload: bytes = b"\x00" * 4, version: int = FORMAT_VERSION, magic=MAGIC) -> bytes:
    body = struct.pack("<8sHI", magic, version, len(header_bytes)) + header_bytes + struct.pack("<I", len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("damage, message", [
    (lambda d: b"", "empty"),
    (lambda d: b"RIFF\x00\x00\x00\x00WAVEfmt ", "wrong magic"),
    (lambda d: d[:5], "truncated"),
    (lambda d: d[:12], "truncated"),
    (lambda d: d[:-1], "truncated"),
    (lambda d: d + b"\x00", "unexpected bytes"),
    (lambda d: d[:-6] + bytes([d[-6] ^ 0x01]) + d[-5:], "CRC-32 mismatch"),
    (lambda d: d[:8] + struct.pack("<H", 7) + d[10:], "format version 7"),
    (lambda d: rebuild(b"not json"), "not JSON"),
    (lambda d: rebuild(json.dumps({"sample_rate": 1}).encode()), "missing or unknown keys"),
    (lambda d: rebuild(json.dumps({**json.loads(d[14:14 + struct.unpack_from("<I", d, 10)[0]]),
                                   "frames": 9}).encode()), "inconsistent"),
    (lambda d: rebuild(json.dumps({**json.loads(d[14:14 + struct.unpack_from("<I", d, 10)[0]]),
                                   "coding": "zstd"}).encode()), "coding 'zstd'"),
    (lambda d: rebuild(json.dumps({**json.loads(d[14:14 + struct.unpack_from("<I", d, 10)[0]]),
                                   "gain": "loud"}).encode()), "gain"),
])
def test_damaged_files_are_refused(damage, message):
    good = serialize(header(), pack_codes([1, 2, 3], 512))
    with pytest.raises(SpeechVQError, match=message):
        parse(damage(good), "x.svq")


def test_read_file_errors(tmp_path):
    with pytest.raises(SpeechVQError, match="no such code file"):
        bitstream.read_file(tmp_path / "missing.svq")
    with pytest.raises(SpeechVQError, match="is a folder"):
        bitstream.read_file(tmp_path)
    path = tmp_path / "a.svq"
    size = bitstream.write_file(path, header(), pack_codes([4, 5, 6], 512))
    assert path.stat().st_size == size and bitstream.read_file(path)[0] == header()
