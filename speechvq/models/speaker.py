"""The speaker vector of an utterance, computed from the utterance itself (any speaker, seen or not).

    wav [B, 1, T], z_e [B, D, F], z_q [B, D, F]  --source-->  [B, C]  --linear, tanh-->  vector [B, S] in (-1, 1)
    vector  --quantize (bits per dimension)-->  levels int64 [B, S]  --dequantize-->  what the decoder sees

Sources (`model.speaker_source`):
    residual  the time-average of the quantizer residual z_e - z_q, as in VQVC (Wu and Lee 2020): what the
              codes leave out of z_e, averaged over the utterance, is mostly who is speaking; no extra network
              besides the projection, and the encoder learns to put the voice there.
    mel       a small convolutional encoder over the log-mel spectrogram (three layers), mean-pooled over time.

The vector travels in the code file as `speaker_bits` bits per dimension, so the decoder is trained on the
quantized vector (straight-through: the forward pass uses it, gradients pass as if it were not rounded).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..audio import log_mel_batch
from ..config import ModelConfig

MEL_BANDS = 80
MEL_CHANNELS = 128


class UtteranceSpeakerEncoder(nn.Module):
    """Maps an utterance to its speaker vector.

    Args:
        config: the model config (speaker_dim, speaker_source, speaker_bits, the encoder's latent_dim).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.source = config.speaker_source
        self.sample_rate = config.sample_rate
        self.levels = 2 ** config.speaker_bits
        if self.source == "residual":
            width = config.encoder.latent_dim
            self.mel_net = None
        else:
            width = MEL_CHANNELS
            layers: list[nn.Module] = []
            for index in range(3):
                layers += [nn.Conv1d(MEL_BANDS if index == 0 else width, width, 5, padding=2), nn.ReLU()]
            self.mel_net = nn.Sequential(*layers)
        self.project = nn.Linear(width, config.speaker_dim)

    def forward(self, wav: Tensor, z_e: Tensor, z_q: Tensor) -> Tensor:
        """The continuous speaker vector.

        Args:
            wav: float `[B, 1, T]` (level-normalised, as the encoder sees it).
            z_e, z_q: float `[B, D, F]`, the encoder output and its quantized form (z_q's own gradient is not
                used: the residual's gradient reaches the encoder through z_e).

        Returns:
            float `[B, speaker_dim]` in (-1, 1).
        """
        if self.mel_net is None:
            pooled = (z_e - z_q.detach()).mean(dim=-1)  # (B, D)
        else:
            mel = log_mel_batch(wav[:, 0].float(), self.sample_rate, MEL_BANDS)  # (B, 80, frames)
            pooled = self.mel_net(mel.to(wav.dtype)).mean(dim=-1)  # (B, C)
        return torch.tanh(self.project(pooled))

    def quantize(self, vector: Tensor) -> Tensor:
        """float `[..., S]` in [-1, 1] -> int64 levels `[..., S]` in [0, 2**bits)."""
        return torch.round((vector.clamp(-1.0, 1.0) + 1.0) * (self.levels - 1) / 2).long()

    def dequantize(self, levels: Tensor) -> Tensor:
        """int levels `[..., S]` -> float32 `[..., S]` in [-1, 1] (the grid points)."""
        return levels.float() * (2.0 / (self.levels - 1)) - 1.0

    def straight_through(self, vector: Tensor) -> Tensor:
        """`vector` rounded to the grid in the forward pass, unchanged in the backward pass."""
        return vector + (self.dequantize(self.quantize(vector)).to(vector.dtype) - vector).detach()
