"""Audio I/O, resampling, level normalisation and mu-law."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile
import torch

from speechvq.audio import (load_audio, log_mel_spectrogram, loudest_frame_dbfs, mu_law_decode, mu_law_encode,
                            mu_law_silence, normalize_level, read_audio_file, resample, rms_dbfs, save_audio)
from speechvq.errors import SpeechVQError


def sine(n_samples: int, rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(n_samples) / rate)).astype(np.float32)


@pytest.mark.parametrize("suffix, subtype", [(".wav", "PCM_16"), (".flac", "PCM_24"), (".ogg", "VORBIS")])
def test_load_downmixes_and_resamples(tmp_path, suffix, subtype):
    rate = 48000
    left, right = sine(rate, rate, 440.0, 0.6), sine(rate, rate, 440.0, 0.2)
    path = tmp_path / f"stereo{suffix}"
    soundfile.write(path, np.stack([left, right], axis=1), rate, subtype=subtype)
    wav = load_audio(path, 16000)
    assert wav.dtype == torch.float32 and wav.shape[0] == 1
    assert abs(wav.shape[1] - 16000) <= 1
    # the mono mix of two in-phase sines of 0.6 and 0.2 is a sine of 0.4: RMS 0.4 / sqrt(2)
    middle = wav[0, 1000:-1000]
    assert abs(middle.pow(2).mean().sqrt().item() - 0.4 / math.sqrt(2)) < 0.01


def test_save_then_load_round_trip(tmp_path):
    wav = torch.from_numpy(sine(8000, 16000)).unsqueeze(0)
    path = tmp_path / "out" / "tone.wav"
    save_audio(path, wav, 16000)
    back = load_audio(path, 16000)
    torch.testing.assert_close(back, wav, rtol=0, atol=1.0 / 32768 + 1e-6)  # 16-bit PCM
    assert read_audio_file(path)[1] == 16000
    assert [p.name for p in path.parent.iterdir()] == ["tone.wav"]  # no temporary file left behind


def test_save_clips_and_rejects_unknown_extension(tmp_path):
    save_audio(tmp_path / "loud.wav", torch.tensor([[2.0, -2.0, 0.5]]), 16000)
    assert load_audio(tmp_path / "loud.wav", 16000).abs().max() <= 1.0
    with pytest.raises(SpeechVQError, match="extension"):
        save_audio(tmp_path / "x.mp4", torch.zeros(1, 10), 16000)
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".x.mp4*"))


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.wav"
    save_audio(path, torch.full((1, 100), 0.25), 16000)
    before = path.read_bytes()

    def broken_write(file, *args, **kwargs):
        with open(file, "wb") as handle:
            handle.write(b"RIFF half a file")
        raise OSError("disk full")

    monkeypatch.setattr(soundfile, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        save_audio(path, torch.zeros(1, 100), 16000)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.wav"]


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(SpeechVQError, match="no such audio file"):
        load_audio(tmp_path / "missing.wav", 16000)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(SpeechVQError, match="cannot read audio file"):
        load_audio(garbage, 16000)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros((0,), np.float32), 16000)
    with pytest.raises(SpeechVQError, match="holds no samples"):
        load_audio(empty, 16000)
    with pytest.raises(SpeechVQError, match="no such audio file"):
        load_audio(tmp_path, 16000)  # a folder


def test_resample_length_and_identity():
    wav = torch.randn(1, 44100)
    assert resample(wav, 44100, 16000).shape == (1, 16000)
    assert resample(wav, 16000, 16000) is wav


def test_loudest_frame_level_finds_a_short_burst_in_silence():
    wav = torch.zeros(16000)
    wav[6400:6720] = 0.1  # one whole 20 ms frame at -20 dBFS, the rest silent
    assert loudest_frame_dbfs(wav, 320) == pytest.approx(-20.0, abs=1e-4)
    assert rms_dbfs(wav) < -30.0  # the whole file's RMS hides it
    assert loudest_frame_dbfs(torch.zeros(1000), 320) == -200.0 and loudest_frame_dbfs(torch.zeros(0), 320) == -200.0
    tail = torch.zeros(2, 700)
    tail[:, 640:] = 0.5  # a 60-sample tail is a frame of its own; channels are averaged
    assert loudest_frame_dbfs(tail, 320) == pytest.approx(-6.0206, abs=1e-3)


def test_normalize_level_hits_target_and_limits_peaks():
    quiet = torch.from_numpy(sine(16000, 16000, amplitude=0.01))
    loud, gain = normalize_level(quiet, -23.0)
    assert abs(rms_dbfs(loud) - (-23.0)) < 0.01
    torch.testing.assert_close(loud / gain, quiet)
    # a spiky signal would clip at the target RMS: the peak limit wins
    spiky = torch.zeros(16000)
    spiky[::1000] = 0.5
    limited, _ = normalize_level(spiky, -10.0)
    assert limited.abs().max().item() == pytest.approx(0.99)
    silence = torch.zeros(100)
    assert normalize_level(silence, -23.0) == (silence, 1.0)
    assert normalize_level(quiet, None) == (quiet, 1.0)


def test_mu_law_round_trip():
    wav = torch.linspace(-1, 1, 10001)
    codes = mu_law_encode(wav, 256)
    assert codes.dtype == torch.int64 and codes.min() == 0 and codes.max() == 255
    back = mu_law_decode(codes, 256)
    # mu-law steps are finest near zero: relative error bounded by the step size of the curve
    error = (back - wav).abs()
    assert error[(wav.abs() < 0.01)].max() < 0.001
    assert error.max() < 0.04
    assert mu_law_decode(torch.tensor(mu_law_silence(256)), 256).abs() < 1e-3
    assert mu_law_encode(torch.tensor([3.0, -3.0])).tolist() == [255, 0]  # clipped, not wrapped


@pytest.mark.parametrize("sample_rate,samples", [(16000, 8000), (16000, 150), (8000, 4001)])
def test_log_mel_spectrogram_matches_librosa(sample_rate, samples, librosa):
    # the torch version replaced librosa.feature.melspectrogram (whose import cost every evaluating process
    # about 7 s): the same frames and numbers, so MCD and the plots did not change
    torch.manual_seed(0)
    wav = 0.3 * torch.randn(samples) * torch.linspace(0.0, 1.0, samples)  # a ramp: bins near the floor too
    ours = log_mel_spectrogram(wav, sample_rate).numpy()
    power = librosa.feature.melspectrogram(y=wav.numpy(), sr=sample_rate, n_fft=int(sample_rate * 0.025),
                                           hop_length=int(sample_rate * 0.010), n_mels=80, power=2.0)
    theirs = 10.0 * np.log10(np.maximum(power, 1e-10))
    assert ours.shape == theirs.shape == (80, 1 + samples // int(sample_rate * 0.010))
    assert np.abs(ours - theirs).max() < 1e-3  # dB (8e-5 seen: float32 rounding)
