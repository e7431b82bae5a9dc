"""Quality measures: alignment, SI-SDR, mel-cepstral distortion."""

from __future__ import annotations

import pytest
import torch

from speechvq.metrics import align, mel_cepstral_distortion, si_sdr
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
