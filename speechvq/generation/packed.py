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
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from ..models.wavenet import WaveNet


# How the fast engines compute: "full" keeps float32 accuracy (the native engine's float32 weights, the
# triton engine's three-pass TF32 products); "reduced" trades about 1e-3 in the logits for speed (weights
# stored as IEEE halves on the CPU, single-pass TF32 on a GPU). The other engines always compute in float32.
PRECISIONS = ("full", "reduced")
# What each means per engine; an engine also takes its own names directly.
ENGINE_PRECISIONS = {"native": {"full": "fp32", "reduced": "fp16"}, "triton": {"full": "tf32x3", "reduced": "tf32"}}
# The triton engine's tl.dot input precision: tf32 (tensor cores, 10-bit mantissa inputs), tf32x3 (three tf32
# products: about fp32 accuracy), ieee (fp32 on the FMA units: 28x slower than tf32 at batch 1 on an H100)
TRITON_PRECISIONS = ("tf32", "tf32x3", "ieee")
NATIVE_PRECISIONS = ("fp32", "fp16")


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


@dataclass
class PaddedWaveNet:
    """A PackedWaveNet with every channel count rounded up (for kernels that work in fixed-width tiles).

    Padded weights are zero, so padded channels stay zero through every layer; padded classes get a -1e30
    bias so they never win an argmax. Shapes, with R, H, S, Q the padded residual, half-gate, skip and
    class counts and L layers (float32, C order):
        embedding `[Q, R]`; w_taps `[L, R, 4H]` (current filter | current gate | past filter | past gate);
        w_res `[L, H, R]`, b_res `[L, R]` (both x sqrt(1/2): x' = sqrt(1/2) x + z w_res + b_res);
        w_skip `[L * H, S]`, b_skip `[S]`; w_hidden `[S, S]`, b_hidden `[S]`; w_logits `[S, Q]`, b_logits `[Q]`.
    """

    embedding: np.ndarray
    w_taps: np.ndarray
    w_res: np.ndarray
    b_res: np.ndarray
    w_skip: np.ndarray
    b_skip: np.ndarray
    w_hidden: np.ndarray
    b_hidden: np.ndarray
    w_logits: np.ndarray
    b_logits: np.ndarray
    n_layers: int
    residual: int
    half: int
    skip: int
    classes: int
    true_half: int
    true_classes: int


def pad_packed(packed: PackedWaveNet, round_up: Callable[[int], int]) -> PaddedWaveNet:
    """The packed weights with each channel count n rounded to round_up(n) (see PaddedWaveNet)."""
    n_layers, residual, gate2x = packed.w_taps.shape
    half = gate2x // 4
    skip, classes = packed.w_hidden.shape[0], packed.w_logits.shape[1]
    rp, hp, sp, qp = round_up(residual), round_up(half), round_up(skip), round_up(classes)
    scale = np.float32(np.sqrt(0.5))

    def pad(array: np.ndarray, shape: tuple, fill: float = 0.0) -> np.ndarray:
        out = np.full(shape, fill, np.float32)
        out[tuple(slice(0, n) for n in array.shape)] = array
        return out

    quarters = [pad(packed.w_taps[:, :, k * half:(k + 1) * half], (n_layers, rp, hp)) for k in range(4)]
    return PaddedWaveNet(
        embedding=pad(packed.embedding, (qp, rp)), w_taps=np.ascontiguousarray(np.concatenate(quarters, 2)),
        w_res=pad(packed.w_res * scale, (n_layers, hp, rp)), b_res=pad(packed.b_res * scale, (n_layers, rp)),
        w_skip=pad(packed.w_skip.reshape(n_layers, half, skip), (n_layers, hp, sp)).reshape(n_layers * hp, sp),
        b_skip=pad(packed.b_skip, (sp,)), w_hidden=pad(packed.w_hidden, (sp, sp)), b_hidden=pad(packed.b_hidden, (sp,)),
        w_logits=pad(packed.w_logits, (sp, qp)), b_logits=pad(packed.b_logits, (qp,), fill=-1e30),
        n_layers=n_layers, residual=rp, half=hp, skip=sp, classes=qp, true_half=half, true_classes=classes)


def pad_gate_halves(frames, half: int, padded_half: int):
    """Frame vectors `[..., 2 * half]` (filter | gate half) as `[..., 2 * padded_half]`, each half zero-padded.

    Works on numpy arrays and torch tensors alike; returns the input itself when nothing needs padding.
    """
    if half == padded_half:
        return frames
    shape = tuple(frames.shape[:-1]) + (2 * padded_half,)
    out = frames.new_zeros(shape) if isinstance(frames, Tensor) else np.zeros(shape, frames.dtype)
    out[..., :half] = frames[..., :half]
    out[..., padded_half:padded_half + half] = frames[..., half:]
    return out


def frame_vectors(packed: PackedWaveNet, frame_cond: Optional[Tensor], batch_size: int,
                  device: torch.device | str = "cpu") -> Tensor:
    """Each layer's per-frame additive term of the packed gate: (cond + conv bias) * gate_scale.

    Args:
        frame_cond: float `[B, n, L, G]` from `WaveNet.layer_conditioning` / `frame_conditions`, or None.
        device: where the result is computed and kept (the CPU engines take `.numpy()` of it).

    Returns:
        float32 `[n, B, L, G]`, contiguous (n = 1 for an unconditioned model).
    """
    bias = torch.from_numpy(packed.conv_bias).to(device)  # (L, G)
    scale = torch.from_numpy(packed.gate_scale).to(device)
    if frame_cond is None:
        return (bias * scale).expand(1, batch_size, *bias.shape).contiguous()
    cond = frame_cond.detach().to(device, torch.float32).transpose(0, 1)
    return ((cond + bias) * scale).contiguous()
