"""Any speaker through the codec: an utterance model's vector in the code file, named voices, `like=` a
reference recording, and the damage cases of speaker fields."""

from __future__ import annotations

import pytest
import torch

from speechvq import bitstream
from speechvq.codec import Codec
from speechvq.errors import SpeechVQError
from speechvq.inference import Voice, decode_codes, reference_voice, resolve_voice
from tests.helpers import check_mutations_decode_or_refuse, voiced_signal
from tests.models.test_speaker import utterance_model


@pytest.fixture(scope="module")
def codec():
    return Codec(utterance_model().eval())


def test_the_file_carries_the_utterances_own_vector(codec):
    wav = 0.2 * voiced_signal(3000, seed=2)
    encoded = codec.encode(wav)
    assert encoded.speaker is None and encoded.speaker_levels.shape == (8,) and encoded.voice_scores is None
    data = codec.compress(wav)
    read, info = codec.read(data)
    assert info.header.speaker_kind == "vector" and len(info.header.speaker_vector) == 4  # 8 x 4 bits
    assert torch.equal(read.speaker_levels, encoded.speaker_levels) and torch.equal(read.codes, encoded.codes)
    assert info.voice.startswith("its own voice")
    decoded, _ = codec.decompress(data, temperature=0.0)
    vector = codec.model.speaker_from_levels(encoded.speaker_levels.view(1, -1))[0]
    assert torch.equal(decoded, decode_codes(codec.model, read, Voice(vector, "x"), temperature=0.0))


def test_a_named_voice_instead_of_the_vector(codec):
    wav = 0.2 * voiced_signal(2000, seed=3)
    data = codec.compress(wav, speaker="b")
    read, info = codec.read(data)
    assert info.header.speaker_kind == "voice" and info.header.speaker_voice == 1 and read.speaker == "b"
    voice = resolve_voice(codec.model, read)
    assert voice.label == "b" and torch.equal(voice.vector, codec.model.voice_vectors[1])
    with pytest.raises(SpeechVQError, match="unknown speaker"):
        codec.compress(wav, speaker="zed")


def test_decoding_like_a_reference_recording(codec):
    source = 0.2 * voiced_signal(2000, seed=4)
    reference = 0.3 * voiced_signal(4000, f0_hz=230.0, seed=8)
    data = codec.compress(source)
    like, _ = codec.decompress(data, like=reference, temperature=0.0)
    voice = reference_voice(codec.model, reference, "ref.wav")
    assert voice.label == "like ref.wav"
    assert torch.equal(voice.vector, codec.model.speaker_from_levels(codec.encode(reference).speaker_levels.view(1, -1))[0])
    encoded, _ = codec.read(data)
    assert torch.equal(like, decode_codes(codec.model, encoded, voice, temperature=0.0))
    assert not torch.equal(voice.vector, resolve_voice(codec.model, encoded).vector)  # another voice indeed


def test_a_table_model_takes_its_closest_row_for_a_reference(tiny_config):
    from speechvq.models import SpeechVQ

    torch.manual_seed(0)
    model = SpeechVQ(tiny_config.model, speakers=["a", "b", "c"]).eval()
    reference = 0.3 * voiced_signal(3000, seed=8)
    voice = reference_voice(model, reference, "ref.wav")
    chosen = Codec(model).encode(reference).speaker
    assert voice.label.startswith(f"{chosen} (the training voice closest to ref.wav)")
    assert torch.equal(voice.vector, model.speaker_embedding.weight[model.speaker_index(chosen)])


def test_version_1_cannot_hold_a_vector(codec):
    wav = 0.2 * voiced_signal(1000)
    with pytest.raises(SpeechVQError, match="version 1 cannot hold a speaker vector"):
        codec.compress(wav, version=1)
    old = codec.compress(wav, speaker="c", version=1)  # a named voice it can
    assert codec.read(old)[0].speaker == "c"


def test_speaker_fields_that_do_not_fit_the_model_are_refused(codec):
    wav = 0.2 * voiced_signal(1000)
    encoded = codec.encode(wav)
    payload = bitstream.pack_codes(encoded.codes.tolist(), codec.model.quantizer.codebook_size)
    common = dict(coding="packed", model_fingerprint=codec.file_fingerprint("packed"), samples=1000,
                  frames=encoded.codes.numel(), gain=1.0)
    for header, message in [
        (bitstream.Header(speaker_vector=b"\x01\x02", **common), "does not fit this model"),
        (bitstream.Header(speaker_vector=b"\x01\x02\x03\x04\x05", **common), "does not fit this model"),
        (bitstream.Header(speaker_voice=3, **common), "names voice 3; this model has 3 named voices"),
        (bitstream.Header(**{**common, "samples": 5000}), "frames for 5000 samples"),
    ]:
        with pytest.raises(SpeechVQError, match=message):
            codec.read(bitstream.serialize(header, payload))
    table = Codec(utterance_model().eval())
    table.model.speaker_encoder = None  # a model that takes no vector, with the same fingerprint
    table.model.speaker_mode = "table"
    with pytest.raises(SpeechVQError, match="carries a speaker vector; this model takes none"):
        table.read(codec.compress(wav))


def test_mutated_vector_files_decode_to_the_original_or_raise_our_error(codec):
    data = codec.compress(0.2 * voiced_signal(1500, seed=4))
    original = codec.read(data)[0]
    check_mutations_decode_or_refuse(
        data, lambda d: codec.read(d)[0],
        lambda read: torch.equal(read.codes, original.codes) and torch.equal(read.speaker_levels, original.speaker_levels))
