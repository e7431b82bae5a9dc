"""Strided convolutional encoder: wav [B, 1, T] -> z_e [B, D, F], one latent vector per `hop_length` samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import EncoderConfig


def init_relu_stack(stack: nn.Sequential) -> None:
    """He initialisation of the convolutions of a conv/ReLU stack (the last conv, not followed by a ReLU, as linear).

    PyTorch's default init shrinks the signal about 2.5x per conv + ReLU layer, so after seven layers the
    encoder's outputs were ~1e-4 of the input scale; Adam then moves the codebook and the last layer by a
    fixed step that is large relative to that scale, and the codes collapsed within tens of steps (seen on
    real speech). With He init the latents start at the input's scale.
    """
    modules = list(stack)
    for index, module in enumerate(modules):
        if isinstance(module, nn.Conv1d):
            followed_by_relu = index + 1 < len(modules) and isinstance(modules[index + 1], nn.ReLU)
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu" if followed_by_relu else "linear")
            nn.init.zeros_(module.bias)


class Encoder(nn.Module):
    """The paper's encoder: strided Conv1d + ReLU layers, then a 1x1 convolution to `latent_dim`.

    Padding policy, which makes F = ceil(T / hop_length) exact for every T:

        input  |x0 x1 ... x(T-1)|0 ... 0|          right zero-padding up to F * hop_length samples
        layer  with stride s and kernel k = 2s pads (k - s) // 2 on the left and the rest of k - s on
               the right, so every layer maps n samples to exactly n / s (n is a multiple of s there):
               out = floor((n + (k - s) - k) / s) + 1 = n / s

    Frame f then summarises samples around [f * hop, (f + 1) * hop): each layer is centred on its
    stride, so the encoder looks slightly ahead and behind, as the paper's non-causal encoder does.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.hop_length = config.hop_length
        layers: list[nn.Module] = []
        in_channels = 1
        for stride, kernel in zip(config.strides, config.kernel_sizes):
            pad_left = (kernel - stride) // 2
            layers += [
                nn.ConstantPad1d((pad_left, kernel - stride - pad_left), 0.0),
                nn.Conv1d(in_channels, config.channels, kernel, stride=stride),
                nn.ReLU(),
            ]
            in_channels = config.channels
        layers.append(nn.Conv1d(config.channels, config.latent_dim, 1))
        self.layers = nn.Sequential(*layers)
        init_relu_stack(self.layers)

    @property
    def receptive_field(self) -> int:
        """Input samples that can influence one output frame: 1 + sum_i (k_i - 1) * prod_{j<i} s_j."""
        field, jump = 1, 1
        for stride, kernel in zip(self.config.strides, self.config.kernel_sizes):
            field += (kernel - 1) * jump
            jump *= stride
        return field

    @property
    def reach(self) -> tuple[int, int]:
        """Samples (before, after) a frame's own hop that can influence it: frame f reads samples
        [f * hop - before, (f + 1) * hop + after) of the signal (zeros outside [0, T)), nothing else."""
        first, last = 0, 0  # of frame 0, in the input samples of each layer, from the top layer down
        for stride, kernel in reversed(list(zip(self.config.strides, self.config.kernel_sizes))):
            pad_left = (kernel - stride) // 2
            first, last = first * stride - pad_left, last * stride + kernel - 1 - pad_left
        return -first, last + 1 - self.hop_length

    def num_frames(self, n_samples: int) -> int:
        """Number of latent frames for `n_samples` input samples: ceil(n_samples / hop_length)."""
        return -(-n_samples // self.hop_length)

    def forward(self, wav: Tensor) -> Tensor:
        """Encode a waveform.

        Args:
            wav: float32 `[B, 1, T]`, T >= 1.

        Returns:
            z_e: float32 `[B, latent_dim, F]` with F = `num_frames(T)`.
        """
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"expected wav of shape [B, 1, T], got {tuple(wav.shape)}")
        return self.layers(self.pad(wav))

    def pad(self, wav: Tensor) -> Tensor:
        """Right zero-padding of `[..., T]` up to num_frames(T) * hop_length samples (the padding policy)."""
        n_samples = wav.shape[-1]
        return F.pad(wav, (0, self.num_frames(n_samples) * self.hop_length - n_samples))

    def forward_chunked(self, wav: Tensor, chunk_frames: int) -> Tensor:
        """`forward` computed `chunk_frames` frames at a time, with memory bounded by one chunk.

        Each chunk is encoded with enough real samples on both sides (the receptive field) that its
        frames equal those of the whole-signal pass; only the chunk's own frames are kept.

        Args:
            wav: float32 `[B, 1, T]`.
            chunk_frames: frames per chunk (>= 1).

        Returns:
            the same as `forward(wav)`, up to floating-point rounding of the convolutions.
        """
        padded = self.pad(wav)
        total = padded.shape[-1] // self.hop_length
        margin = -(-self.receptive_field // self.hop_length) + 1  # frames of context on each side
        pieces = []
        for start in range(0, total, chunk_frames):
            stop = min(total, start + chunk_frames)
            left, right = max(0, start - margin), min(total, stop + margin)
            z_e = self.layers(padded[..., left * self.hop_length:right * self.hop_length])
            pieces.append(z_e[..., start - left:stop - left])
        return torch.cat(pieces, dim=-1)
