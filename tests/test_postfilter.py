"""The pitch post-filter: what it keeps, what it removes, and where decoding applies it."""

from __future__ import annotations

import math

import pytest
import torch

from speechvq.cli import main
from speechvq.generation import DecodeOptions
from speechvq.inference import Encoded, decode_many
from speechvq.pitch import symbol_f0_hz
from speechvq.postfilter import pitch_postfilter
from tests.test_pitch import CONFIG, HOP, SR, _models, harmonic_tone


def white_noise(n_samples: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(n_samples, generator=torch.Generator().manual_seed(seed))


def peak_to_valley(wav: torch.Tensor, f0_hz: float) -> float:
    """Mean magnitude at the harmonics of f0 over the mean half-way between them (one FFT of the whole)."""
    spectrum = torch.fft.rfft(wav.double()).abs()
    per_hz = wav.numel() / SR
    harmonics = [round(k * f0_hz * per_hz) for k in range(1, 30)]
    between = [round((k + 0.5) * f0_hz * per_hz) for k in range(1, 30)]
    return float(spectrum[harmonics].mean() / spectrum[between].mean())


def test_off_or_unvoiced_returns_the_input():
    wav = white_noise(4000)
    voiced = torch.full((16,), 200.0)
    assert torch.equal(pitch_postfilter(wav, voiced, HOP, SR, gain=0.0), wav)
    assert torch.equal(pitch_postfilter(wav, torch.zeros(16), HOP, SR, gain=0.7), wav)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            pitch_postfilter(wav, voiced, HOP, SR, gain=bad)


def test_noise_comes_out_harmonic_at_the_given_f0_and_as_loud():
    wav = white_noise(SR)
    out = pitch_postfilter(wav, torch.full((math.ceil(SR / HOP),), 200.0), HOP, SR, gain=0.7)
    assert out.shape == wav.shape and out.dtype == torch.float32
    assert peak_to_valley(wav, 200.0) < 1.5
    # one tap at g = 0.7: |1 + 2 g cos(w T)| / (1 + 2 g) peaks at 1 and falls to 0.17 half-way between harmonics
    assert peak_to_valley(out, 200.0) > 4.0
    inner = slice(HOP * 4, -HOP * 4)  # away from the ends, where fewer neighbours exist
    assert float(out[inner].square().mean() / wav[inner].square().mean()) == pytest.approx(1.0, abs=0.05)


def test_a_tone_at_the_given_f0_passes_unchanged():
    tone = harmonic_tone(100.0, seconds=1.0)  # period 160 samples, exactly
    out = pitch_postfilter(tone, torch.full((math.ceil(SR / HOP),), 100.0), HOP, SR, gain=0.7)
    inner = slice(HOP * 4, -HOP * 4)
    torch.testing.assert_close(out[inner], tone[inner], rtol=0, atol=2e-3 * float(tone.abs().max()))


def test_only_voiced_frames_and_their_fades_change():
    wav = white_noise(40 * HOP, seed=1)
    f0 = torch.zeros(40)
    f0[10:20] = 150.0
    out = pitch_postfilter(wav, f0, HOP, SR, gain=0.5)
    # the gain fades over one frame either side, the loudness match looks one frame further
    assert torch.equal(out[: 7 * HOP], wav[: 7 * HOP])
    assert torch.equal(out[23 * HOP:], wav[23 * HOP:])
    assert not torch.allclose(out[12 * HOP:18 * HOP], wav[12 * HOP:18 * HOP], atol=1e-3)
    # F0 values beyond the waveform are ignored, missing ones are unvoiced
    torch.testing.assert_close(pitch_postfilter(wav, torch.cat([f0, torch.full((5,), 300.0)]), HOP, SR, 0.5), out)
    assert torch.equal(pitch_postfilter(wav, f0[:9], HOP, SR, 0.5), wav)


def test_decoding_applies_it_with_the_symbols_it_decodes_with():
    plain, pitched = _models()
    torch.manual_seed(4)
    codes = torch.randint(0, 16, (12,))
    symbols = torch.tensor([0, 30, 31, 0] * 4)[: pitched.num_pitch_frames(12)]
    n_samples = 12 * pitched.hop_length
    encoded = Encoded(codes=codes, n_samples=n_samples, gain=2.0, speaker="a", pitch=symbols)
    engine = DecodeOptions(engine="torch", postfilter=0.0)  # gain 2: the output is halved, never clamped
    raw = decode_many(pitched, [encoded], [None], temperature=0.6, seed=3, options=engine)[0]
    # the pitch vectors are zero: without the post-filter the pitch model decodes what the plain model does
    plain_codes = Encoded(codes=codes, n_samples=n_samples, gain=2.0, speaker="a")
    torch.testing.assert_close(decode_many(plain, [plain_codes], [None], 0.6, 3, options=engine)[0], raw,
                               rtol=0, atol=0)
    filtered = decode_many(pitched, [encoded], [None], 0.6, 3, options=DecodeOptions(engine="torch", postfilter=0.5))[0]
    expected = (pitch_postfilter(raw * encoded.gain, symbol_f0_hz(symbols, CONFIG), HOP, SR, 0.5)
                / encoded.gain).clamp(-1.0, 1.0)
    torch.testing.assert_close(filtered, expected, rtol=0, atol=1e-5)
    assert not torch.allclose(filtered, raw, atol=1e-4)
    # a plain model's codes carry no pitch: the option changes nothing there
    torch.testing.assert_close(decode_many(plain, [plain_codes], [None], 0.6, 3,
                                           options=DecodeOptions(engine="torch", postfilter=0.5))[0], raw,
                               rtol=0, atol=0)


def test_a_bad_postfilter_gain_is_one_line_and_exit_1(tmp_path, capsys):
    import soundfile

    soundfile.write(tmp_path / "in.wav", harmonic_tone(120.0, 0.2).numpy(), SR)
    assert main(["encode", str(tmp_path / "in.wav"), "-o", str(tmp_path / "in.svq")]) == 0
    capsys.readouterr()
    assert main(["decode", str(tmp_path / "in.svq"), "-o", str(tmp_path / "out.wav"), "--postfilter", "1.5"]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "post-filter gain" in error
    assert not (tmp_path / "out.wav").exists()
