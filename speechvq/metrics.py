"""Objective quality measures of a decoded waveform against its input.

    align            the decoder may shift its output: find the lag that best matches the reference
    si_sdr           scale-invariant signal-to-distortion ratio (Le Roux et al. 2019), dB
    mel_cepstral_distortion   MCD over mel-cepstra c1..c24 (Kubichek 1993's formula), dB

The mel-cepstra here are cepstra of an 80-band mel filterbank's log amplitude (`speechvq.audio.mel_cepstrum`),
not SPTK's all-pass-warped mel-cepstra: MCD values compare models and codecs measured by this module with
each other, and only roughly with figures from papers.

An autoregressive decoder samples its waveform, so its phase need not follow the input's: SI-SDR of a
VQ-VAE resynthesis is usually low even when it sounds right, and MCD (spectral envelope) is the more
telling number. Both are reported, with the lag that was applied.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .audio import mel_cepstrum

MCD_SCALE = 10.0 * math.sqrt(2.0) / math.log(10.0)  # dB per unit of Euclidean mel-cepstral distance


def align(reference: Tensor, estimate: Tensor, max_shift: int) -> tuple[Tensor, Tensor, int]:
    """Shift `estimate` against `reference` by the lag (|lag| <= max_shift) of maximum cross-correlation.

    Args:
        reference, estimate: float `[T]` (lengths may differ).
        max_shift: largest lag searched, in samples.

    Returns:
        (reference, estimate) cut to their overlap after the shift, and the lag in samples (positive:
        the estimate is late).
    """
    n = min(reference.numel(), estimate.numel())
    ref, est = reference[:n].double().numpy(), estimate[:n].double().numpy()
    size = 1 << int(math.ceil(math.log2(2 * n)))
    correlation = np.fft.irfft(np.fft.rfft(est, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.concatenate([np.arange(0, max_shift + 1), np.arange(-max_shift, 0)])
    lag = int(lags[np.argmax(correlation[lags])])
    if lag >= 0:
        return reference[: n - lag], estimate[lag:n], lag
    return reference[-lag:n], estimate[: n + lag], lag


def si_sdr(reference: Tensor, estimate: Tensor) -> float:
    """Scale-invariant SDR in dB of two equal-length float `[T]` signals."""
    ref, est = reference.double(), estimate.double()
    ref, est = ref - ref.mean(), est - est.mean()
    target = (est @ ref) / (ref @ ref).clamp_min(1e-12) * ref
    noise = est - target
    return float(10.0 * torch.log10((target @ target).clamp_min(1e-12) / (noise @ noise).clamp_min(1e-12)))


def mel_cepstral_distortion(reference: Tensor, estimate: Tensor, sample_rate: int) -> float:
    """Mean MCD in dB over frames, coefficients 1..24, of two time-aligned float `[T]` signals."""
    ref = mel_cepstrum(reference, sample_rate)[:, 1:]
    est = mel_cepstrum(estimate, sample_rate)[:, 1:]
    frames = min(ref.shape[0], est.shape[0])
    distance = (ref[:frames] - est[:frames]).double().pow(2).sum(dim=1).sqrt()
    return float(MCD_SCALE * distance.mean())
