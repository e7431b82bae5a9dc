"""The decoder's weights refolded for one-sample-at-a-time generation (kernel size 2 only).

Per layer l, with R residual, G gate, G2 = G/2 and S skip channels, the reference step computes

    h  = W_cur x_t + W_past x_(t-d) + b + cond_l(frame)               (G)
    z  = tanh(h[:G2]) * sigmoid(h[G2:])                                (G2)
    x' = (x + W_res z + b_res) / sqrt(2),      skip_l = W_skip z + b_skip

The packed form gives the same numbers with fewer operations per sample:

    * both taps in one product: x_t @ [W_cur | W_past]^T -> (2G); the W_past half is stored in a ring
      buffer of d slots and read back d samples later, so the past input itself is never kept;
    * one tanh: sigmoid(b) = (1 + tanh(b / 2)) / 2, so the gate half of the rows is halved and
      z2 = tanh(a) + tanh(a) tanh(b / 2) = 2 z; the 1/2 is folded into the residual and skip weights;
    * bias and conditioning (cond_l of the frame, its speaker term and b) added as one precomputed
      vector per frame, never per sample;
    * every layer's skip product deferred to one (L * G2 -> S) product per sample, with the sum of the
      skip biases and the 1 / sqrt(L) scale folded in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from ..models.wavenet import WaveNet


# The triton engine's tl.dot input precision: tf32 (tensor cores, 10-bit mantissa inputs), tf32x3 (three tf32
# products: about fp32 accuracy), ieee (fp32 on the FMA units: 28x slower than tf32 at batch 1 on an H100)
TRITON_PRECISIONS = ("tf32", "tf32x3", "ieee")


@dataclass
class PackedWaveNet:
    """float32 arrays (C-contiguous) of a WaveNet with kernel size 2, ready for a fast step.

    Attributes:
        dilations: int64 `[L]`; offsets: int64 `[L]`, start of each layer's slots in the ring buffer.
        w_taps: `[L, R, 2G]` (current tap | past tap, gate half pre-scaled by 1/2).
        w_res: `[L, G2, R]`, b_res: `[L, R]` (the 1/2 of z2 folded in).
        w_skip: `[L * G2, S]`, b_skip: `[S]` (1/2 and 1/sqrt(L) folded in, biases summed).
        w_hidden: `[S, S]`, b_hidden: `[S]`; w_logits: `[S, Q]`, b_logits: `[Q]`.
        embedding: `[Q, R]`; gate_scale: `[G]` (1 for the tanh half, 1/2 for the sigmoid half).
    """

    dilations: np.ndarray
    offsets: np.ndarray
    w_taps: np.ndarray
    w_res: np.ndarray
    b_res: np.ndarray
    w_skip: np.ndarray
    b_skip: np.ndarray
    w_hidden: np.ndarray
    b_hidden: np.ndarray
    w_logits: np.ndarray
    b_logits: np.ndarray
    embedding: np.ndarray
    gate_scale: np.ndarray
    conv_bias: np.ndarray  # [L, G], unscaled: part of each frame's conditioning vector

    @property
    def ring_slots(self) -> int:
        """Ring-buffer slots over all layers: sum of the dilations."""
        return int(self.dilations.sum())


def can_pack(decoder: WaveNet) -> bool:
    """Whether the fast paths support this decoder (they implement kernel size 2, the paper's)."""
    return decoder.config.kernel_size == 2


@torch.no_grad()
def pack(decoder: WaveNet) -> PackedWaveNet:
    """Fold a WaveNet's weights (see the module docstring). Raises ValueError for kernel size != 2."""
    if not can_pack(decoder):
        raise ValueError("the fast generation paths support kernel_size 2 only")
    layers = decoder.layers
    n_layers, residual = len(layers), decoder.config.residual_channels
    gate = decoder.config.gate_channels
    half = gate // 2
    scale = np.ones(gate, np.float32)
    scale[half:] = 0.5

    def numpy(t: Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float32).numpy()

    w_taps, w_res, b_res, w_skip, conv_bias = [], [], [], [], []
    b_skip = np.zeros(decoder.config.skip_channels, np.float64)
    for layer in layers:
        weight = numpy(layer.dilated.weight)  # (G, 2R): columns [:R] the past tap, [R:] the current one
        w_taps.append(np.concatenate([(weight[:, residual:] * scale[:, None]).T,
                                      (weight[:, :residual] * scale[:, None]).T], axis=1))
        out_w, out_b = numpy(layer.out.weight)[:, :, 0], numpy(layer.out.bias)
        w_res.append(0.5 * out_w[:residual].T)
        b_res.append(out_b[:residual])
        w_skip.append(0.5 * out_w[residual:].T)
        b_skip += out_b[residual:]
        conv_bias.append(numpy(layer.dilated.bias))
    skip_scale = math.sqrt(1.0 / n_layers)
    dilations = np.asarray(decoder.config.dilations, np.int64)

    def f32(a) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float32)

    return PackedWaveNet(
        dilations=dilations, offsets=np.concatenate([[0], np.cumsum(dilations)[:-1]]).astype(np.int64),
        w_taps=f32(np.stack(w_taps)), w_res=f32(np.stack(w_res)), b_res=f32(np.stack(b_res)),
        w_skip=f32(np.concatenate(w_skip) * skip_scale), b_skip=f32(b_skip * skip_scale),
        w_hidden=f32(numpy(decoder.post_hidden.weight)[:, :, 0].T), b_hidden=f32(numpy(decoder.post_hidden.bias)),
        w_logits=f32(numpy(decoder.post_logits.weight)[:, :, 0].T), b_logits=f32(numpy(decoder.post_logits.bias)),
        embedding=f32(numpy(decoder.input_embedding.weight)), gate_scale=scale, conv_bias=f32(np.stack(conv_bias)))


def frame_vectors(packed: PackedWaveNet, frame_cond: Optional[Tensor], batch_size: int) -> np.ndarray:
    """Each layer's per-frame additive term of the packed gate: (cond + conv bias) * gate_scale.

    Args:
        frame_cond: float `[B, n, L, G]` from `WaveNet.layer_conditioning` / `frame_conditions`, or None.

    Returns:
        float32 `[n, B, L, G]` (n = 1 for an unconditioned model).
    """
    bias = packed.conv_bias[None, None]  # (1, 1, L, G)
    if frame_cond is None:
        vectors = np.broadcast_to(bias, (1, batch_size) + bias.shape[2:])
    else:
        vectors = frame_cond.detach().to("cpu", torch.float32).numpy().transpose(1, 0, 2, 3) + bias
    return np.ascontiguousarray(vectors * packed.gate_scale, dtype=np.float32)
