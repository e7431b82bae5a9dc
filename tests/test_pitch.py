"""The pitch stream (model.pitch): the YIN tracker, its symbols, the model's conditioning, code files, conversion."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import zlib

import numpy as np
import pytest
import torch

from speechvq import bitstream
from speechvq.checkpoint import init_from_checkpoint, save_checkpoint
from speechvq.codec import Codec, measure_code_statistics, save_code_statistics
from speechvq.config import ConfigError, PitchConfig, load_config
from speechvq.errors import SpeechVQError
from speechvq.audio import mu_law_silence
from speechvq.generation import DecodeOptions
from speechvq.inference import Encoded, Voice, decode_codes, resolve_voice, voice_pitch
from speechvq.models import SpeechVQ
from speechvq.pitch import mean_voiced_bin, pitch_symbols, shift_symbols, symbol_f0_hz, track_pitch
from tests.helpers import voiced_signal

SR = 16000
HOP = 256  # the default pitch hop: 4 codes of 64 samples
CONFIG = PitchConfig(bits=6)


def harmonic_tone(f0_hz: float, seconds: float = 0.5, level: float = 0.1) -> torch.Tensor:
    """Seven harmonics of a steady f0 with 1/k amplitudes, float32 `[T]`."""
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    wav = sum(torch.sin(2 * math.pi * k * f0_hz * t) / k for k in range(1, 8))
    return (level * wav).float()


@pytest.mark.parametrize("f0_hz", [65.0, 100.0, 147.0, 220.0, 310.0, 390.0])
def test_yin_finds_the_f0_of_harmonic_tones(f0_hz):
    track = track_pitch(harmonic_tone(f0_hz), SR, HOP, CONFIG.fmin_hz, CONFIG.fmax_hz)
    inner = slice(3, -3)  # away from the zero-padded edges
    assert track.f0_hz.shape == (math.ceil(0.5 * SR / HOP),)
    assert (track.f0_hz[inner] / f0_hz - 1).abs().max() < 2e-3
    assert track.aperiodicity[inner].max() < 0.05
    symbols = pitch_symbols(track, CONFIG)[inner]
    assert (symbols > 0).all()
    # the symbol's bin centre is within half a bin (half of ln(400/60)/62 in log-F0) of the truth
    half_bin = 0.5 * math.log(CONFIG.fmax_hz / CONFIG.fmin_hz) / (CONFIG.symbols - 2)
    assert (symbol_f0_hz(symbols, CONFIG).log() - math.log(f0_hz)).abs().max() <= half_bin + 1e-4


def test_yin_agrees_with_librosa_on_a_glide(librosa):
    f0 = np.linspace(90.0, 300.0, 2 * SR)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wav = (0.1 * np.sin(phase) + 0.05 * np.sin(2 * phase) + 0.03 * np.sin(3 * phase)).astype(np.float32)
    ours = track_pitch(torch.from_numpy(wav), SR, HOP, 60.0, 400.0).f0_hz.numpy()
    theirs = librosa.yin(wav, fmin=60.0, fmax=400.0, sr=SR, frame_length=1024, hop_length=HOP, center=True)
    n = min(len(ours), len(theirs))
    relative = np.abs(ours[2:n - 2] / theirs[2:n - 2] - 1)
    assert np.median(relative) < 2e-3 and relative.max() < 1e-2


def test_noise_and_silence_are_unvoiced():
    noise = 0.1 * torch.randn(SR, generator=torch.Generator().manual_seed(0))
    assert (pitch_symbols(track_pitch(noise, SR, HOP, 60.0, 400.0), CONFIG) == 0).float().mean() > 0.95
    silence = torch.zeros(SR)
    assert (pitch_symbols(track_pitch(silence, SR, HOP, 60.0, 400.0), CONFIG) == 0).all()
    quiet = harmonic_tone(150.0, level=1e-4)  # -83 dBFS: below silence_dbfs
    assert (pitch_symbols(track_pitch(quiet, SR, HOP, 60.0, 400.0), CONFIG) == 0).all()


def test_tracking_is_batched_and_blockwise_exact():
    batch = torch.stack([voiced_signal(5000, f0_hz=110.0 + 40 * i, seed=i) for i in range(3)])
    whole = track_pitch(batch, SR, HOP, 60.0, 400.0)
    blocks = track_pitch(batch, SR, HOP, 60.0, 400.0, block_frames=3)
    alone = track_pitch(batch[1], SR, HOP, 60.0, 400.0)
    for name in ("f0_hz", "aperiodicity", "level_dbfs"):
        torch.testing.assert_close(getattr(whole, name), getattr(blocks, name), rtol=0, atol=1e-5)
        torch.testing.assert_close(getattr(whole, name)[1], getattr(alone, name), rtol=0, atol=1e-5)
    assert whole.f0_hz.shape == (3, math.ceil(5000 / HOP))


def test_shift_keeps_unvoiced_and_clamps():
    symbols = torch.tensor([0, 1, 30, 62, 63, 0])
    assert shift_symbols(symbols, 2, CONFIG).tolist() == [0, 3, 32, 63, 63, 0]
    assert shift_symbols(symbols, -5, CONFIG).tolist() == [0, 1, 25, 57, 58, 0]
    assert mean_voiced_bin(symbols) == pytest.approx((1 + 30 + 62 + 63) / 4)
    assert mean_voiced_bin(torch.zeros(4, dtype=torch.long)) is None


def test_config_checks_and_bitrate():
    config = load_config("paper", ["model.pitch.bits=6"]).model
    assert config.pitch_bitrate_bps == 250.0 / 4 * 6
    assert config.bitrate_bps == 250.0 * 9 + 375.0
    assert load_config("paper").model.bitrate_bps == 250.0 * 9
    for bad in ("model.pitch.bits=1", "model.pitch.frame_codes=0", "model.pitch.fmin_hz=500",
                "model.pitch.voicing_threshold=1.5", "model.pitch.bits=9"):
        with pytest.raises(ConfigError, match="model.pitch"):
            load_config("tiny", [bad])


# ----------------------------------------------------------------------------- the model


def _models(speakers=("a", "b")):
    """A tiny plain model and its pitch-stream twin with the same weights (the pitch vectors at zero)."""
    config = load_config("tiny").model
    torch.manual_seed(0)
    plain = SpeechVQ(config, speakers=list(speakers)).eval()
    pitched = SpeechVQ(dataclasses.replace(config, pitch=CONFIG), speakers=list(speakers)).eval()
    missing, unexpected = pitched.load_state_dict(plain.state_dict(), strict=False)
    assert set(missing) == {"pitch_embedding.weight", "voice_pitch", "voice_pitch_updates"} and not unexpected
    return plain, pitched


def test_a_new_pitch_stream_changes_nothing_at_first(tmp_path):
    plain, pitched = _models()
    wav = voiced_signal(3000, seed=1).view(1, 1, -1)
    speaker = torch.tensor([1])
    with torch.no_grad():
        assert torch.equal(plain(wav, speaker).nll, pitched(wav, speaker).nll)
    # and --init from the plain model onto a pitch config copies everything else, keeping the zeros
    path = tmp_path / "plain.pt"
    save_checkpoint(path, plain, load_config("tiny"), step=7)
    torch.manual_seed(5)
    fresh = SpeechVQ(pitched.config, speakers=["a", "b"]).eval()
    report = init_from_checkpoint(fresh, path)
    assert "pitch_embedding.weight" in report.kept
    assert torch.equal(fresh.pitch_embedding.weight, torch.zeros_like(fresh.pitch_embedding.weight))
    with torch.no_grad():
        assert torch.equal(fresh(wav, speaker).nll, plain(wav, speaker).nll)


def test_the_training_pass_conditions_on_the_tracked_pitch():
    _, model = _models()
    torch.nn.init.normal_(model.pitch_embedding.weight, std=0.5)
    wav = voiced_signal(3000, seed=2).view(1, 1, -1)
    speaker = torch.tensor([0])
    with torch.no_grad():
        out = model(wav, speaker)
        pitch = model.encode_pitch(wav)
        assert pitch.shape == (1, model.num_pitch_frames(model.num_frames(3000)))
        local = model.local_conditioning(out.codes, pitch)
        expected = model.teacher_forced_nll(wav, local, model.speaker_vectors(speaker))
        unpitched = model.teacher_forced_nll(wav, model.quantizer.lookup(out.codes), model.speaker_vectors(speaker))
    torch.testing.assert_close(out.nll, expected, rtol=0, atol=1e-6)
    assert abs(float(out.nll - unpitched)) > 1e-6  # an untrained decoder: small, but not nothing
    # the gradient reaches the pitch vectors from the first step
    model.train()
    model(wav, speaker).loss.backward()
    assert model.pitch_embedding.weight.grad.abs().sum() > 0


def test_greedy_decoding_equals_the_teacher_forced_argmax_with_pitch():
    _, model = _models()
    torch.nn.init.normal_(model.pitch_embedding.weight, std=0.5)
    codes = torch.randint(0, 16, (1, 9), generator=torch.Generator().manual_seed(3))
    pitch = torch.tensor([[0, 17, 40]])
    speaker = torch.tensor([1])
    n = 9 * model.hop_length - 10
    wav = model.decode(codes, speaker, n, temperature=0.0, pitch=pitch)
    # decode returns waveform values; teacher forcing on those (through mu-law) must pick the same classes
    targets = model.mu_law_targets(wav[:, 0])
    with torch.no_grad():
        inputs = torch.nn.functional.pad(targets[:, :-1], (1, 0), value=mu_law_silence(model.classes))
        logits = model.decoder(inputs, model.local_conditioning(codes, pitch), model.speaker_vectors(speaker))
    assert torch.equal(logits.argmax(1), targets)
    other = model.decode(codes, speaker, n, temperature=0.0, pitch=torch.tensor([[0, 50, 3]]))
    assert not torch.equal(wav, other)


def test_pitch_shape_and_presence_are_checked():
    plain, model = _models()
    codes = torch.zeros(1, 9, dtype=torch.long)
    with pytest.raises(ValueError, match="needs|pitch stream"):
        model.local_conditioning(codes)
    with pytest.raises(ValueError, match="3 pitch symbols"):
        model.local_conditioning(codes, torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 64\)"):
        model.local_conditioning(codes, torch.full((1, 3), 64))
    with pytest.raises(ValueError, match="no pitch stream"):
        plain.local_conditioning(codes, torch.zeros(1, 3, dtype=torch.long))


def test_training_keeps_each_voices_mean_pitch():
    _, model = _models()
    model.train()
    low, high = harmonic_tone(100.0, 0.25), harmonic_tone(250.0, 0.25)
    model(torch.stack([low, high]).unsqueeze(1), torch.tensor([0, 1]))
    expected = [mean_voiced_bin(model.encode_pitch(w.view(1, 1, -1))) for w in (low, high)]
    assert model.voice_pitch_updates.tolist() == [1, 1]
    assert model.voice_pitch.tolist() == pytest.approx(expected)
    assert model.voice_pitch_bin(0) < model.voice_pitch_bin(1)


def test_voice_pitch_is_the_mean_over_every_batch_not_a_running_one():
    # a continuation must not drift from the means measured before it (tools/add_pitch_stream.py): every
    # batch counts as much as each of the utterances already folded in
    _, model = _models()
    model.train()
    model.voice_pitch.copy_(torch.tensor([30.0, 30.0]))
    model.voice_pitch_updates.copy_(torch.tensor([3, 0]))
    tones = [harmonic_tone(f0, 0.25) for f0 in (100.0, 120.0, 140.0)]
    bins = [mean_voiced_bin(model.encode_pitch(w.view(1, 1, -1))) for w in tones]
    for tone in tones:
        model(tone.view(1, 1, -1), torch.tensor([0]))
    assert model.voice_pitch_updates.tolist() == [6, 0]
    assert model.voice_pitch[0].item() == pytest.approx((3 * 30.0 + sum(bins)) / 6, abs=1e-4)
    assert model.voice_pitch[1].item() == 30.0  # a voice missing from every batch keeps its mean


def test_held_voice_pitch_means_stay_while_the_others_update():
    _, model = _models()
    model.train()
    model.voice_pitch.copy_(torch.tensor([30.0, 30.0]))
    model.voice_pitch_updates.copy_(torch.tensor([3, 3]))
    model.hold_voice_pitch(["a"])
    tone = harmonic_tone(120.0, 0.25).view(1, 1, -1)
    model(torch.cat([tone, tone]), torch.tensor([0, 1]))
    assert model.voice_pitch[0].item() == 30.0 and model.voice_pitch_updates[0].item() == 3
    assert model.voice_pitch[1].item() != 30.0 and model.voice_pitch_updates[1].item() == 4
    assert "voice_pitch_held" not in model.state_dict()  # the run decides, not the checkpoint


def test_conversion_moves_the_pitch_to_the_target_voice():
    _, model = _models()
    model.voice_pitch.copy_(torch.tensor([20.0, 40.0]))
    model.voice_pitch_updates.fill_(1)
    encoded = Encoded(codes=torch.zeros(8, dtype=torch.long), n_samples=500, gain=1.0, speaker="a",
                      pitch=torch.tensor([0, 18, 22]))
    own = voice_pitch(model, encoded, Voice(None, "a"))
    assert torch.equal(own, encoded.pitch)  # its recorded voice: unchanged
    converted = resolve_voice(model, encoded, "b")
    assert converted.pitch_bin == 40.0
    assert voice_pitch(model, encoded, converted).tolist() == [0, 38, 42]  # mean 20 -> 40, unvoiced kept
    assert resolve_voice(model, encoded, "a").pitch_bin is None and resolve_voice(model, encoded).pitch_bin is None


# ----------------------------------------------------------------------------- the pitch-lag input


def _lag_models():
    """A tiny pitch-stream model and its twin with the pitch-lag input, same weights (the lag taps at zero)."""
    _, pitched = _models()
    torch.nn.init.normal_(pitched.pitch_embedding.weight, std=0.5)
    config = dataclasses.replace(pitched.config,
                                 decoder=dataclasses.replace(pitched.config.decoder, pitch_lag_taps=5))
    lagged = SpeechVQ(config, speakers=["a", "b"]).eval()
    missing, unexpected = lagged.load_state_dict(pitched.state_dict(), strict=False)
    assert missing == ["decoder.lag_embedding.weight"] and not unexpected
    return pitched, lagged


def test_a_new_pitch_lag_input_changes_nothing_at_first(tmp_path):
    pitched, lagged = _lag_models()
    wav = voiced_signal(3000, seed=1).view(1, 1, -1)
    speaker = torch.tensor([1])
    with torch.no_grad():
        assert torch.equal(pitched(wav, speaker).nll, lagged(wav, speaker).nll)
    path = tmp_path / "pitched.pt"
    save_checkpoint(path, pitched, dataclasses.replace(load_config("tiny"), model=pitched.config), step=3)
    fresh = SpeechVQ(lagged.config, speakers=["a", "b"]).eval()
    report = init_from_checkpoint(fresh, path)
    assert "decoder.lag_embedding.weight" in report.kept
    assert not fresh.decoder.lag_embedding.weight.any()


def test_the_training_pass_reads_one_period_back():
    _, model = _lag_models()
    torch.nn.init.normal_(model.decoder.lag_embedding.weight, std=0.5)
    wav = voiced_signal(3000, f0_hz=125.0, seed=2).view(1, 1, -1)
    speaker = torch.tensor([0])
    with torch.no_grad():
        out = model(wav, speaker)
        pitch = model.encode_pitch(wav)
        local = model.local_conditioning(out.codes, pitch)
        period = model.lag_periods(pitch, local.shape[-1])
        # each code frame's period is its symbol's bin centre in whole samples (about 125 Hz: 128 at 16 kHz)
        f0 = symbol_f0_hz(pitch, model.config.pitch).repeat_interleave(4, dim=1)[:, :local.shape[-1]]
        assert torch.equal(period, torch.where(f0 > 0, (16000 / f0).round(), 0).long())
        assert (period > 0).float().mean() > 0.5 and ((period == 0) | ((period - 128).abs() <= 10)).all()
        vector = model.speaker_vectors(speaker)
        expected = model.teacher_forced_nll(wav, local, vector, period)
        without = model.teacher_forced_nll(wav, local, vector, torch.zeros_like(period))
    torch.testing.assert_close(out.nll, expected, rtol=0, atol=1e-6)
    assert abs(float(out.nll - without)) > 1e-4
    model.train()
    model(wav, speaker).loss.backward()
    grad = model.decoder.lag_embedding.weight.grad.view(5, model.classes, -1)
    assert (grad.abs().sum(dim=(1, 2)) > 0).all()  # every tap learns from the first step


def test_greedy_decoding_equals_the_teacher_forced_argmax_with_the_pitch_lag():
    _, model = _lag_models()
    torch.nn.init.normal_(model.decoder.lag_embedding.weight, std=0.5)
    codes = torch.randint(0, 16, (1, 12), generator=torch.Generator().manual_seed(3))
    pitch = torch.tensor([[0, 17, 40]])
    speaker = torch.tensor([1])
    n = 12 * model.hop_length - 10
    wav = model.decode(codes, speaker, n, temperature=0.0, pitch=pitch)
    targets = model.mu_law_targets(wav[:, 0])
    local = model.local_conditioning(codes, pitch)
    with torch.no_grad():
        inputs = torch.nn.functional.pad(targets[:, :-1], (1, 0), value=mu_law_silence(model.classes))
        logits = model.decoder(inputs, local, model.speaker_vectors(speaker), period=model.lag_periods(pitch, 12))
    assert torch.equal(logits.argmax(1), targets)
    # and the fast CPU engines decode what the reference decodes
    encoded = Encoded(codes=codes[0], n_samples=n, gain=1.0, pitch=pitch[0])
    decoded = {engine: decode_codes(model, encoded, "b", temperature=1.0, seed=4,
                                    options=DecodeOptions(engine=engine, mode="sequential", postfilter=0.0))
               for engine in ("reference", "native", "numba", "torch")}
    for engine in ("native", "numba", "torch"):
        assert torch.equal(decoded[engine], decoded["reference"]), engine


def test_the_pitch_lag_needs_the_pitch_stream_and_odd_taps():
    for bad in (["model.decoder.pitch_lag_taps=5"], ["model.pitch.bits=6", "model.decoder.pitch_lag_taps=4"],
                ["model.pitch.bits=6", "model.decoder.pitch_lag_taps=-1"],
                ["model.pitch.bits=6", "model.decoder.pitch_lag_taps=81"]):
        with pytest.raises(ConfigError, match="pitch_lag_taps"):
            load_config("tiny", bad)
    assert load_config("tiny", ["model.pitch.bits=6", "model.decoder.pitch_lag_taps=5"]).model.decoder.pitch_lag_taps == 5


# ----------------------------------------------------------------------------- code files


def _pitch_codec() -> Codec:
    _, model = _models()
    torch.nn.init.normal_(model.pitch_embedding.weight, std=0.5)
    return Codec(model)


def test_pitch_symbols_round_trip_through_a_code_file():
    codec = _pitch_codec()
    wav = voiced_signal(5000, f0_hz=130.0, seed=4)
    encoded = codec.encode(wav)
    assert encoded.pitch.shape == (codec.model.num_pitch_frames(encoded.codes.numel()),)
    assert (encoded.pitch > 0).float().mean() > 0.5
    data = codec.to_bytes(encoded)
    plain_size = len(Codec(_models()[0]).compress(wav))
    assert len(data) - plain_size == 1 + math.ceil(encoded.pitch.numel() * 6 / 8)  # length varint + symbols
    read, info = codec.read(data)
    assert torch.equal(read.pitch, encoded.pitch) and torch.equal(read.codes, encoded.codes)
    rates = info.bitrates(len(data))
    assert rates["nominal_bps"] == pytest.approx(250 * 4 + 375)
    assert info.pitch_bits == 6 and info.pitch_rate_hz == 62.5
    torch.testing.assert_close(codec.decompress(data)[0], decode_codes(codec.model, read), rtol=0, atol=0)


def _voiced_utterances(count: int = 6):
    """Voiced signals of several f0s: pitch symbols that mostly repeat or step to a neighbouring bin."""
    return [voiced_signal(8000, f0_hz=100.0 + 25.0 * k, seed=10 + k) for k in range(count)]


def test_markov1_files_range_code_the_pitch_stream_under_its_own_counts(tmp_path):
    codec = _pitch_codec()
    statistics = measure_code_statistics(codec, _voiced_utterances())
    assert statistics.pitch is not None and statistics.pitch.codebook_size == 64
    assert statistics.pitch.utterances == statistics.utterances == 6
    coded = Codec(codec.model, statistics)
    wav = voiced_signal(8000, f0_hz=150.0, seed=10)
    encoded = coded.encode(wav)
    data = coded.to_bytes(encoded, coding="markov1")
    header, _ = bitstream.parse(data)
    packed_bytes = math.ceil(encoded.pitch.numel() * 6 / 8)
    assert len(header.pitch) % 4 == 0 and len(header.pitch) < packed_bytes  # 32-bit words, fewer bytes
    read, info = coded.read(data)
    assert torch.equal(read.pitch, encoded.pitch) and torch.equal(read.codes, encoded.codes)
    torch.testing.assert_close(coded.decompress(data)[0], decode_codes(coded.model, read), rtol=0, atol=0)
    # packed files of the same model keep the bit-packed pitch stream
    assert len(bitstream.parse(coded.to_bytes(encoded, coding="packed"))[0].pitch) == packed_bytes
    # the counts travel in the checkpoint and come back whole
    path = tmp_path / "pitched.pt"
    save_checkpoint(path, codec.model, dataclasses.replace(load_config("tiny"), model=codec.model.config))
    save_code_statistics(path, statistics)
    loaded = Codec.from_checkpoint(path)
    assert loaded.statistics.fingerprint == statistics.fingerprint
    assert np.array_equal(loaded.statistics.pitch.bigram, statistics.pitch.bigram)
    assert torch.equal(loaded.read(data)[0].pitch, encoded.pitch)


def test_code_stats_reports_the_pitch_streams_bits(tmp_path, capsys):
    import soundfile

    from speechvq.cli import main
    from speechvq.data.manifest import Utterance, write_manifest

    codec = _pitch_codec()
    path = tmp_path / "pitched.pt"
    save_checkpoint(path, codec.model, dataclasses.replace(load_config("tiny"), model=codec.model.config))
    entries = []
    for k, wav in enumerate(_voiced_utterances(3)):
        soundfile.write(tmp_path / f"u{k}.wav", wav.numpy(), SR)
        entries.append(Utterance(f"u{k}", str(tmp_path / f"u{k}.wav"), "a", wav.numel() / SR))
    write_manifest(tmp_path / "train.jsonl", entries)
    assert main(["code-stats", "--model", str(path), "--manifest", str(tmp_path / "train.jsonl"), "--device", "cpu"]) == 0
    assert re.search(r"\d+ pitch symbols: \d\.\d\d bits/symbol \(nominal 6\)", capsys.readouterr().err)
    assert Codec.from_checkpoint(path).statistics.pitch.utterances == 3


def test_statistics_without_pitch_counts_keep_their_fingerprint_and_bit_pack_the_pitch():
    # counts measured before pitch streams were range-coded: same fingerprint as then, files as then
    codec = _pitch_codec()
    statistics = measure_code_statistics(codec, _voiced_utterances(3))
    old = dataclasses.replace(statistics, pitch=None)
    digest = hashlib.sha256(old.unigram.astype("<i8").tobytes() + old.bigram.astype("<i8").tobytes())
    assert old.fingerprint == digest.hexdigest()[:16] != statistics.fingerprint
    coded = Codec(codec.model, old)
    encoded = coded.encode(voiced_signal(6000, seed=12))
    data = coded.to_bytes(encoded, coding="markov1")
    assert bitstream.parse(data)[0].pitch == bitstream.pack_codes(encoded.pitch.tolist(), 64)
    assert torch.equal(coded.read(data)[0].pitch, encoded.pitch)
    # a file coded with the pitch counts names other statistics: refused, not misread
    with pytest.raises(SpeechVQError, match="different model"):
        coded.read(Codec(codec.model, statistics).to_bytes(encoded, coding="markov1"))


def test_a_damaged_range_coded_pitch_stream_is_refused_with_one_line():
    codec = _pitch_codec()
    coded = Codec(codec.model, measure_code_statistics(codec, _voiced_utterances(3)))
    header, payload = bitstream.parse(coded.to_bytes(coded.encode(voiced_signal(6000, seed=13)), coding="markov1"))
    damaged = bitstream.serialize(dataclasses.replace(header, pitch=header.pitch[:-1]), payload)  # not whole words
    with pytest.raises(SpeechVQError, match="pitch stream that does not fit this model"):
        coded.read(damaged)


def test_files_and_codes_without_the_models_pitch_stream_are_refused():
    plain_codec, codec = Codec(_models()[0]), _pitch_codec()
    wav = voiced_signal(3000, seed=5)
    encoded = codec.encode(wav)
    with pytest.raises(SpeechVQError, match="no pitch symbols"):
        codec.to_bytes(dataclasses.replace(encoded, pitch=None))
    with pytest.raises(SpeechVQError, match="version 1 cannot hold a pitch stream"):
        codec.to_bytes(encoded, version=1)
    with pytest.raises(SpeechVQError, match="pitch symbols"):
        decode_codes(plain_codec.model, encoded)
    # a file whose pitch stream was dropped, or cut short: one line each
    header, payload = bitstream.parse(codec.to_bytes(encoded))
    for pitch, message in ((None, "carries no pitch stream"), (header.pitch[:-1], "does not fit this model")):
        data = bitstream.serialize(dataclasses.replace(header, pitch=pitch), payload)
        with pytest.raises(SpeechVQError, match=message):
            codec.read(data)
    with pytest.raises(SpeechVQError, match="has none"):
        plain_codec.read(bitstream.serialize(dataclasses.replace(header, model_fingerprint=plain_codec.file_fingerprint(
            header.coding)), payload))


def test_a_pitch_stream_header_round_trips_and_unknown_flags_are_refused():
    header = bitstream.Header(coding="packed", model_fingerprint="0123abcd", samples=1000, frames=16, gain=1.0,
                              pitch=bytes([1, 2, 3]))
    data = bitstream.serialize(header, b"\x00" * 8)
    assert bitstream.parse(data)[0] == header
    mutated = bytearray(data)
    mutated[4] |= 0x40
    body = bytes(mutated[:-4])
    with pytest.raises(SpeechVQError, match="flags"):
        bitstream.parse(body + zlib.crc32(body).to_bytes(4, "little"))

