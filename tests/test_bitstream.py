"""The .svq container: packing, varints, round trips of both format versions, and every kind of damage a
reader must refuse."""

from __future__ import annotations

import json
import struct
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from speechvq import bitstream
from speechvq.bitstream import (FORMAT_VERSION, MAGIC, MAGIC_V1, Header, decode_varint, encode_varint, pack_codes,
                                parse, serialize, serialize_v1, unpack_codes)
from speechvq.errors import SpeechVQError

V1_FIELDS = {"sample_rate": 16000, "hop_length": 64, "codebook_size": 512, "speechvq_version": "0.1.0",
             "entropy_model": None, "code_entropy_bits": 1.58}


def header(**changes) -> Header:
    values = dict(coding="packed", model_fingerprint="0123abcd", samples=150, frames=3, gain=1.5, speaker_voice=2)
    values.update(changes)
    return Header(**values)


def v1_header(**changes) -> Header:
    values = dict(coding="packed", model_fingerprint="0123456789abcdef", samples=150, frames=3, gain=1.5,
                  speaker_name="p225", metadata=dict(V1_FIELDS), version=1)
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


@given(st.integers(0, (1 << 35) - 1))
@settings(max_examples=300, deadline=None)
def test_varints_round_trip_and_are_minimal(value):
    data = encode_varint(value)
    assert decode_varint(data + b"\xff", 0, "x", "n") == (value, len(data))
    assert len(data) == max(1, -(-value.bit_length() // 7))


def test_varint_layout():
    assert encode_varint(0) == b"\x00" and encode_varint(127) == b"\x7f" and encode_varint(128) == b"\x80\x01"
    assert encode_varint(32000) == b"\x80\xfa\x01"  # 2 s at 16 kHz: three bytes


def test_v2_round_trip_and_layout():
    payload = pack_codes([1, 2, 511], 512)
    data = serialize(header(), payload)
    assert data[:3] == MAGIC and data[3] == FORMAT_VERSION == 2
    assert data[4] == 0b0100  # packed, a named voice, no metadata
    assert data[5:9] == bytes.fromhex("0123abcd")
    parsed, body = parse(data)
    assert body == payload and parsed == header(gain=parsed.gain)
    assert parsed.gain == pytest.approx(1.5, rel=2e-4)  # 1/256 dB steps
    assert zlib.crc32(data[:-4]) == struct.unpack("<I", data[-4:])[0]
    assert parsed.speaker_kind == "voice" and parsed.version == 2


@pytest.mark.parametrize("seconds", [2, 10])
def test_fixed_header_and_framing_stay_within_16_bytes(seconds):
    samples = seconds * 16000
    frames = -(-samples // 64)
    plain = serialize(header(samples=samples, frames=frames, speaker_voice=None), b"")
    varints = len(encode_varint(samples)) + len(encode_varint(frames))
    assert len(plain) - varints <= 16  # magic, version, flags, fingerprint, gain, CRC
    assert len(plain) <= 21
    vector = bytes(range(32))  # 64 dimensions x 4 bits
    with_vector = serialize(header(samples=samples, frames=frames, speaker_voice=None, speaker_vector=vector), b"")
    assert len(with_vector) == len(plain) + 1 + 32
    assert parse(with_vector)[0].speaker_vector == vector


@given(st.sampled_from(["packed", "markov1"]), st.integers(1, 10 ** 7), st.floats(1e-5, 1e5),
       st.one_of(st.none(), st.integers(0, 10 ** 6)), st.one_of(st.none(), st.binary(min_size=1, max_size=80)),
       st.one_of(st.none(), st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=3)),
       st.binary(max_size=60))
@settings(max_examples=200, deadline=None)
def test_v2_round_trips_every_field(coding, samples, gain, voice, vector, metadata, payload):
    if voice is not None and vector is not None:
        vector = None
    h = Header(coding=coding, model_fingerprint="deadbeef", samples=samples, frames=max(1, samples // 64),
               gain=gain, speaker_voice=voice, speaker_vector=vector, metadata=metadata)
    parsed, body = parse(serialize(h, payload))
    assert body == payload
    assert parsed == Header(coding=coding, model_fingerprint="deadbeef", samples=samples, frames=h.frames,
                            gain=parsed.gain, speaker_voice=voice, speaker_vector=vector, metadata=metadata)
    assert parsed.gain == pytest.approx(gain, rel=2.5e-4)


def test_v1_files_are_still_read():
    payload = pack_codes([1, 2, 511], 512)
    data = serialize_v1(v1_header(), payload)
    assert data.startswith(MAGIC_V1) and struct.unpack_from("<H", data, 8)[0] == 1
    parsed, body = parse(data)
    assert (parsed, body) == (v1_header(), payload)
    assert parsed.speaker_kind == "voice" and parsed.metadata["sample_rate"] == 16000


def test_writers_refuse_what_their_version_cannot_hold():
    with pytest.raises(ValueError, match="32-bit"):
        serialize(header(model_fingerprint="0123456789abcdef"), b"")
    with pytest.raises(ValueError, match="by its row"):
        serialize(header(speaker_voice=None, speaker_name="p225"), b"")
    with pytest.raises(ValueError, match="not both"):
        serialize(header(speaker_vector=b"\x01"), b"")
    with pytest.raises(ValueError, match="finite and positive"):
        serialize(header(gain=float("inf")), b"")
    with pytest.raises(ValueError, match="impossible sizes"):
        serialize(header(frames=200), b"")
    with pytest.raises(ValueError, match="by name only"):
        serialize_v1(v1_header(speaker_name=None, speaker_vector=b"\x01"), b"")
    with pytest.raises(ValueError, match="needs"):
        serialize_v1(v1_header(metadata={}), b"")


def crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def v2(flags: int = 0, fingerprint: bytes = b"\x01\x23\xab\xcd", rest: bytes = b"\x96\x01\x03\x00\x00") -> bytes:
    """A v2 file from parts, with a correct CRC (default rest: 150 samples, 3 frames, gain 0 dB)."""
    return crc(MAGIC + bytes([2, flags]) + fingerprint + rest)


@pytest.mark.parametrize("damage, message", [
    (lambda d: b"", "empty"),
    (lambda d: b"RIFF\x00\x00\x00\x00WAVEfmt ", "wrong magic"),
    (lambda d: d[:2], "truncated"),
    (lambda d: d[:10], "truncated"),
    (lambda d: d[:-1], r"CRC-32 mismatch\), or truncated"),
    (lambda d: d + b"\x00", "CRC-32 mismatch"),
    (lambda d: d[:12] + bytes([d[12] ^ 0x01]) + d[13:], "CRC-32 mismatch"),
    (lambda d: crc(d[:3] + b"\x07" + d[4:-4]), "format version 7"),
    (lambda d: v2(flags=0x40), "flags"),
    (lambda d: v2(flags=0x80), "flags"),
    (lambda d: v2(flags=0x20, rest=b"\x96\x01\x03\x00\x00\x00"), "pitch stream of impossible length"),
    (lambda d: v2(flags=0x20, rest=b"\x96\x01\x03\x00\x00\x09\x01"), "pitch stream of impossible length"),
    (lambda d: v2(flags=0x03), "flags"),
    (lambda d: v2(flags=0x0C), "flags"),
    (lambda d: v2(rest=b"\x80\x80\x80\x80\x80\x01"), "over 5 bytes"),
    (lambda d: v2(rest=b"\x96\x00\x03\x00\x00"), "needless zero"),
    (lambda d: v2(rest=b"\x03\x96\x01\x00\x00"), "impossible sizes"),  # 3 samples, 150 frames
    (lambda d: v2(rest=b"\x00\x00\x00\x00"), "impossible sizes"),
    (lambda d: v2(rest=b"\x96\x01\x03\x00"), "truncated"),
    (lambda d: v2(rest=b"\x96\x01\x03" + struct.pack("<h", 121 * 256)), "absurd level gain"),
    (lambda d: v2(rest=b"\x96\x01\x03" + struct.pack("<h", -32768)), "absurd level gain"),
    (lambda d: v2(flags=0x08, rest=b"\x96\x01\x03\x00\x00\x40\x01"), "speaker vector of impossible length"),
    (lambda d: v2(flags=0x08, rest=b"\x96\x01\x03\x00\x00\x00"), "speaker vector of impossible length"),
    (lambda d: v2(flags=0x04, rest=b"\x96\x01\x03\x00\x00"), "truncated"),
    (lambda d: v2(flags=0x10, rest=b"\x96\x01\x03\x00\x00\x05{oops"), "not JSON"),
    (lambda d: v2(flags=0x10, rest=b"\x96\x01\x03\x00\x00\x02[]"), "not a JSON object"),
    (lambda d: v2(flags=0x10, rest=b"\x96\x01\x03\x00\x00\x09{}"), "metadata of impossible length"),
])
def test_damaged_v2_files_are_refused(damage, message):
    good = serialize(header(), pack_codes([1, 2, 3], 512))
    with pytest.raises(SpeechVQError, match=message):
        parse(damage(good), "x.svq")


def rebuild_v1(header_bytes: bytes, payload: bytes = b"\x00" * 4, version: int = 1, magic=MAGIC_V1) -> bytes:
    body = struct.pack("<8sHI", magic, version, len(header_bytes)) + header_bytes + struct.pack("<I", len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body))


def v1_json(data: bytes, **changes) -> bytes:
    values = json.loads(data[14:14 + struct.unpack_from("<I", data, 10)[0]])
    return rebuild_v1(json.dumps({**values, **changes}).encode())


@pytest.mark.parametrize("damage, message", [
    (lambda d: d[:5], "truncated"),
    (lambda d: d[:12], "truncated"),
    (lambda d: d[:-1], "truncated"),
    (lambda d: d + b"\x00", "unexpected bytes"),
    (lambda d: d[:-6] + bytes([d[-6] ^ 0x01]) + d[-5:], "CRC-32 mismatch"),
    (lambda d: d[:8] + struct.pack("<H", 7) + d[10:], "format version 7"),
    (lambda d: b"\x89SVQ\r\n\x1a\x00" + d[8:], "wrong magic"),
    (lambda d: rebuild_v1(b"not json"), "not JSON"),
    (lambda d: rebuild_v1(json.dumps({"sample_rate": 1}).encode()), "missing or unknown keys"),
    (lambda d: v1_json(d, frames=9), "inconsistent"),
    (lambda d: v1_json(d, coding="zstd"), "coding 'zstd'"),
    (lambda d: v1_json(d, gain="loud"), "gain"),
    (lambda d: v1_json(d, gain=0.0), "inconsistent"),
    (lambda d: v1_json(d, gain=1e300), "inconsistent"),
    (lambda d: v1_json(d, gain=float("inf")), "not finite"),  # json writes Infinity, which Python reads
])
def test_damaged_v1_files_are_refused(damage, message):
    good = serialize_v1(v1_header(), pack_codes([1, 2, 3], 512))
    with pytest.raises(SpeechVQError, match=message):
        parse(damage(good), "x.svq")


def test_read_file_errors(tmp_path):
    with pytest.raises(SpeechVQError, match="no such code file"):
        bitstream.read_file(tmp_path / "missing.svq")
    with pytest.raises(SpeechVQError, match="is a folder"):
        bitstream.read_file(tmp_path)
    path = tmp_path / "a.svq"
    size = bitstream.write_file(path, header(), pack_codes([4, 5, 6], 512))
    assert path.stat().st_size == size and bitstream.read_file(path)[0] == header(gain=bitstream.read_file(path)[0].gain)
