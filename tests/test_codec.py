"""The codec: lossless code round trips (packed and entropy-coded), model checks, chunking, mutations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechvq import entropy
from speechvq.checkpoint import load_checkpoint, save_checkpoint
from speechvq.codec import Codec, measure_code_statistics, model_fingerprint, save_code_statistics
from speechvq.config import load_config
from speechvq.errors import SpeechVQError
from speechvq.models import SpeechVQ
from tests.helpers import check_mutations_decode_or_refuse, tiny_codec, voiced_signal


@pytest.fixture(scope="module")
def codec():
    return tiny_codec()


def test_packed_and_markov1_round_trip_the_codes(codec):
    wav = 0.2 * voiced_signal(3000, seed=9)
    packed = Codec(codec.model).compress(wav, speaker="b")
    coded = codec.compress(wav, speaker="b")
    (a, info_a), (b, info_b) = Codec(codec.model).read(packed), codec.read(coded)
    assert info_a.header.coding == "packed" and info_b.header.coding == "markov1"
    assert info_a.header.model_fingerprint == codec.fingerprint[:8] != info_b.header.model_fingerprint
    assert torch.equal(a.codes, b.codes) and a.codes.shape == (47,)
    assert a.n_samples == 3000 and a.speaker == "b" and a.gain == pytest.approx(info_a.header.gain)
    assert info_a.voice == "b" and info_a.duration_s == pytest.approx(3000 / 16000)
    assert codec.compress(wav, coding="packed") != coded


def test_version_1_files_decode_as_version_2_files_do(codec):
    wav = 0.2 * voiced_signal(2000, seed=3)
    for coding in ("packed", "markov1"):
        old = codec.compress(wav, speaker="a", coding=coding, version=1)
        new = codec.compress(wav, speaker="a", coding=coding)
        assert old.startswith(b"\x89SVQ\r\n\x1a\n") and len(old) > len(new) + 200
        (a, info_a), (b, info_b) = codec.read(old), codec.read(new)
        assert torch.equal(a.codes, b.codes) and a.speaker == b.speaker == "a"
        assert info_a.header.version == 1 and info_b.header.version == 2
        assert info_a.code_entropy_bits == info_b.code_entropy_bits
        wav_a, _ = codec.decompress(old, temperature=0.0)
        wav_b, _ = codec.decompress(new, temperature=0.0)
        torch.testing.assert_close(wav_a, wav_b, rtol=0, atol=1e-3 * wav_b.abs().max().item())  # gains: 1/256 dB


def test_metadata_only_when_asked_for(codec):
    wav = 0.2 * voiced_signal(1000)
    plain = codec.compress(wav, speaker="a")
    tagged = codec.compress(wav, speaker="a", metadata={"take": "3"})
    assert len(tagged) > len(plain) and codec.read(tagged)[1].header.metadata == {"take": "3"}
    assert codec.read(plain)[1].header.metadata is None
    with pytest.raises(SpeechVQError, match="no free-form metadata"):
        codec.compress(wav, speaker="a", version=1, metadata={"take": "3"})


def test_a_table_model_records_the_voice_that_explains_the_input_best(codec):
    encoded = codec.encode(0.2 * voiced_signal(3000, seed=5))
    scores = encoded.voice_scores
    assert list(scores) == sorted(scores, key=scores.get) and set(scores) == {"a", "b"}
    assert encoded.speaker == next(iter(scores))
    data = codec.to_bytes(encoded)
    assert codec.read(data)[0].speaker == encoded.speaker  # recorded in the file as a named voice


def test_decompress_restores_length_and_uses_the_recorded_speaker(codec):
    data = codec.compress(0.01 * voiced_signal(700), speaker="b")
    wav, info = codec.decompress(data, temperature=0.0)
    assert wav.shape == (700,) and info.voice == "b"
    encoded, _ = codec.read(data)
    from speechvq.inference import decode_codes

    assert torch.equal(wav, decode_codes(codec.model, encoded, "b", temperature=0.0))


def test_another_model_or_other_statistics_are_refused(codec):
    data = codec.compress(voiced_signal(1000), speaker="a")
    torch.manual_seed(123)
    other = SpeechVQ(load_config("tiny").model, speakers=["a", "b"]).eval()
    assert model_fingerprint(other) != codec.fingerprint
    with pytest.raises(SpeechVQError, match="different model"):
        Codec(other).read(data)
    with pytest.raises(SpeechVQError, match="code statistics"):
        Codec(codec.model).read(data)  # markov1 file, model without statistics
    different = entropy.CodeStatistics(codec.statistics.unigram + 1, codec.statistics.bigram, 1)
    with pytest.raises(SpeechVQError, match="code statistics"):
        Codec(codec.model, different).read(data)
    with pytest.raises(SpeechVQError, match="no code statistics"):
        Codec(codec.model).compress(voiced_signal(100), coding="markov1")
    old = codec.compress(voiced_signal(1000), speaker="a", version=1)
    with pytest.raises(SpeechVQError, match="different model"):
        Codec(other).read(old)
    with pytest.raises(SpeechVQError, match="code statistics"):
        Codec(codec.model, different).read(old)


def test_fingerprint_ignores_training_state_but_not_weights(codec, tiny_config):
    model = SpeechVQ(tiny_config.model).eval()
    before = model_fingerprint(model)
    model.quantizer.steps_unused += 5
    assert model_fingerprint(model) == before
    with torch.no_grad():
        model.quantizer.codebook[0, 0] += 1e-3
    assert model_fingerprint(model) != before


def test_chunked_encoding_gives_the_same_codes(tiny_config):
    torch.manual_seed(1)
    model = SpeechVQ(tiny_config.model).eval()
    wav = 0.3 * torch.randn(1, 1, 64 * 200 + 37)
    whole = model.encode(wav)
    for chunk in (1, 7, 64, 199):
        assert torch.equal(model.encode(wav, chunk_frames=chunk), whole), chunk
    z_whole, z_chunked = model.encoder(wav), model.encoder.forward_chunked(wav, 13)
    torch.testing.assert_close(z_chunked, z_whole, rtol=1e-5, atol=1e-6)


def test_blockwise_conditioning_equals_the_whole(tiny_config):
    model = SpeechVQ(tiny_config.model, speakers=["a"]).eval()
    local = torch.randn(2, tiny_config.model.encoder.latent_dim, 23)
    speaker = torch.randn(2, tiny_config.model.speaker_dim)
    whole = model.decoder.layer_conditioning(local, speaker)
    blocks = torch.stack(list(model.decoder.frame_conditions(local, speaker, 23, block_frames=4)), dim=1)
    torch.testing.assert_close(blocks, whole, rtol=1e-5, atol=1e-6)


def test_code_statistics_count_the_codes_a_compressed_file_holds(codec):
    # measuring skips the closest-voice scoring (10x faster on the shipped model): the codes must not change
    waveforms = [voiced_signal(3000, f0_hz=110.0 + 30 * s, seed=s) for s in range(3)]
    statistics = measure_code_statistics(codec, waveforms)
    with_voices = [codec.encode(wav) for wav in waveforms]
    assert all(encoded.voice_scores for encoded in with_voices)  # these did score the voices
    expected = entropy.CodeStatistics.from_sequences([e.codes.numpy() for e in with_voices],
                                                     codec.model.quantizer.codebook_size)
    assert statistics.fingerprint == expected.fingerprint


def test_markov1_beats_packing_on_repetitive_codes():
    rng = np.random.default_rng(0)

    def sequence(n):
        codes = [int(rng.integers(64))]
        for _ in range(n - 1):
            codes.append(codes[-1] if rng.random() < 0.7 else int(rng.integers(64)))
        return np.array(codes)

    statistics = entropy.CodeStatistics.from_sequences([sequence(3000) for _ in range(10)], 64)
    codes = sequence(5000)
    data = entropy.encode(codes, statistics)
    assert np.array_equal(entropy.decode(data, len(codes), statistics), codes)
    assert len(data) * 8 / len(codes) < 0.75 * 6  # well under 6 bits per code
    assert abs(len(data) * 8 - statistics.model_bits(codes)) < 64  # the coder reaches the model's ideal length
    restored = entropy.CodeStatistics.from_state(statistics.to_state())
    assert restored.fingerprint == statistics.fingerprint


def test_statistics_travel_in_the_checkpoint(tmp_path, codec, tiny_config):
    path = tmp_path / "model.pt"
    save_checkpoint(path, codec.model, tiny_config)
    save_code_statistics(path, codec.statistics)
    loaded = Codec.from_checkpoint(path)
    assert loaded.statistics.fingerprint == codec.statistics.fingerprint
    assert loaded.fingerprint == codec.fingerprint
    assert load_checkpoint(path).step == 0


@pytest.mark.parametrize("coding, version", [("packed", 2), ("markov1", 2), ("packed", 1), ("markov1", 1)])
def test_mutated_files_decode_to_the_original_or_raise_our_error(codec, coding, version):
    data = codec.compress(0.2 * voiced_signal(1500, seed=4), speaker="a", coding=coding, version=version)
    original = codec.read(data)[0].codes
    check_mutations_decode_or_refuse(data, lambda d: codec.read(d)[0], lambda read: torch.equal(read.codes, original))
