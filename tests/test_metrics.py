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


class CountingSession:
    """An ONNX session that counts its runs."""

    def __init__(self, session):
        self.session, self.runs = session, 0

    def run(self, *args, **kwargs):
        self.runs += 1
        return self.session.run(*args, **kwargs)


# speechmos doubles a clip under 9.01 s until it is not and scores 9.01-s windows every second: 1 s -> 16 s,
# 7 windows, all the same samples; 2 s -> 16 s, 7 windows starting 0 or 1 s into the clip; 1.5 s -> 12 s, 3 windows
# (0, 1, 0.5 s in); 9.5 s -> 1 window
@pytest.mark.parametrize("seconds, distinct", [(1.0, 1), (2.0, 2), (1.5, 3), (9.5, 1)])
def test_dnsmos_equals_speechmos_and_scores_each_distinct_window_once(seconds, distinct, monkeypatch):
    pytest.importorskip("speechmos")
    from speechmos import dnsmos as speechmos_dnsmos

    from speechvq import metrics

    gen = torch.Generator().manual_seed(0)
    n_samples = int(seconds * 16000)
    wav = 0.3 * voiced_signal(n_samples) + 0.01 * torch.randn(n_samples, generator=gen)
    reference = speechmos_dnsmos.run(wav.numpy().astype("float32"), 16000)
    scorer = metrics._dnsmos_models()
    counting = CountingSession(scorer.onnx_sess)
    monkeypatch.setattr(scorer, "onnx_sess", counting)
    scores = metrics.dnsmos(wav, 16000)
    assert counting.runs == distinct  # windows a whole number of clip lengths apart: scored once
    for ours, theirs in (("dnsmos_ovrl", "ovrl_mos"), ("dnsmos_sig", "sig_mos"), ("dnsmos_bak", "bak_mos"),
                         ("dnsmos_p808", "p808_mos")):
        assert scores[ours] == pytest.approx(float(reference[theirs]), abs=1e-9)


def test_dnsmos_of_an_empty_waveform_is_an_error():
    pytest.importorskip("speechmos")
    from speechvq.errors import SpeechVQError
    from speechvq.metrics import dnsmos

    with pytest.raises(SpeechVQError, match="empty"):
        dnsmos(torch.zeros(0), 16000)
