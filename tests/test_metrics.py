"""Quality measures: alignment, SI-SDR, mel-cepstral distortion, F0 frame error."""

from __future__ import annotations

import math

import pytest
import torch

from speechvq.metrics import align, f0_frame_error, mel_cepstral_distortion, si_sdr
from tests.helpers import voiced_signal


def test_align_finds_the_lag():
    reference = voiced_signal(8000) + 0.05 * torch.randn(8000)
    for lag in (0, 37, -21):
        late = torch.roll(reference, lag)
        ref, est, found = align(reference, late, max_shift=64)
        assert found == lag and ref.numel() == est.numel() == 8000 - abs(lag)
        torch.testing.assert_close(ref, est)


def test_si_sdr_values():
    reference = voiced_signal(4000)
    assert si_sdr(reference, 3.0 * reference) > 100  # scale does not matter
    noise = torch.randn(4000, generator=torch.Generator().manual_seed(0))
    noise = noise - noise.mean()
    noisy = reference + noise * (reference.std() / noise.std()) * 0.1  # 20 dB below the signal
    assert si_sdr(reference, noisy) == pytest.approx(20.0, abs=0.5)


def test_mcd_is_zero_for_identical_and_grows_with_distortion():
    reference = voiced_signal(16000)
    assert mel_cepstral_distortion(reference, reference, 16000) == pytest.approx(0.0, abs=1e-6)
    generator = torch.Generator().manual_seed(1)
    slightly = mel_cepstral_distortion(reference, reference + 0.003 * torch.randn(16000, generator=generator), 16000)
    very = mel_cepstral_distortion(reference, reference + 0.1 * torch.randn(16000, generator=generator), 16000)
    other_voice = mel_cepstral_distortion(reference, voiced_signal(16000, f0_hz=220.0, seed=3), 16000)
    assert 0 < slightly < very and slightly < other_voice
    assert mel_cepstral_distortion(reference, 0.5 * reference, 16000) == pytest.approx(0.0, abs=1e-3)  # c0 only


def _tone(f0_hz: float, seconds: float = 0.6) -> torch.Tensor:
    t = torch.arange(int(seconds * 16000), dtype=torch.float64) / 16000
    return (0.1 * sum(torch.sin(2 * math.pi * k * f0_hz * t) / k for k in range(1, 6))).float()


def test_f0_frame_error_counts_voicing_and_gross_pitch_errors():
    speech = voiced_signal(9600, f0_hz=150.0)
    same = f0_frame_error(speech, 0.5 * speech, 16000)  # level does not matter
    assert same == {"f0_vde": 0.0, "f0_gpe": 0.0, "ffe": 0.0}
    close = f0_frame_error(_tone(150.0), _tone(156.0), 16000)  # 4% off: not gross
    assert close["f0_gpe"] == 0.0 and close["ffe"] == 0.0
    octave = f0_frame_error(_tone(150.0), _tone(300.0), 16000)
    assert octave["f0_vde"] < 0.05 and octave["f0_gpe"] > 0.9 and octave["ffe"] > 0.9
    noise = 0.1 * torch.randn(9600, generator=torch.Generator().manual_seed(0))
    lost = f0_frame_error(_tone(150.0), noise, 16000)  # the harmonics gone: voicing errors in (nearly) every frame
    assert lost["f0_vde"] > 0.9 and lost["ffe"] == lost["f0_vde"] and math.isnan(lost["f0_gpe"])
