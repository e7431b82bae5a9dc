"""Small synthetic signals for tests: no corpus or download is ever needed."""

from __future__ import annotations

import math

import torch


def voiced_signal(n_samples: int, sample_rate: int = 16000, f0_hz: float = 140.0, seed: int = 0) -> torch.Tensor:
    """A vowel-like test signal: harmonics of a slowly gliding f0 with a formant-like spectral tilt.

    Returns float32 `[n_samples]` with peak about 0.5.
    """
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(n_samples, dtype=torch.float64) / sample_rate
    f0 = f0_hz * (1.0 + 0.05 * torch.sin(2 * math.pi * 3.0 * t))
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
    wav = torch.zeros(n_samples, dtype=torch.float64)
    for k in range(1, 12):
        amplitude = math.exp(-((k * f0_hz - 700.0) / 600.0) ** 2) + 0.2 / k
        wav += amplitude * torch.sin(k * phase + float(torch.rand(1, generator=gen)) * 2 * math.pi)
    wav += 0.01 * torch.randn(n_samples, generator=gen, dtype=torch.float64)
    return (0.5 * wav / wav.abs().max()).float()
