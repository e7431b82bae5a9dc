"""Generation on a GPU as one persistent Triton kernel per block of steps: no launch per layer or per sample.

Streams are independent, so each program (one streaming multiprocessor) owns `block_b` streams and runs
them through every step of the block and every layer of each step, keeping the residual vector in
registers. Per layer and step it does small matrix products on the tensor cores (filter and gate halves of
the current and the past tap, the residual); the past-tap products go to the ring buffers in global memory
(read back `d` steps later), each layer's gated output z to a per-stream scratch row, and the head (all
layers' skip products as one, hidden, logits, Gumbel-max) runs from that scratch in 64-wide tiles, which
keeps the register tiles small enough not to spill. A whole block of steps is one launch, so even one
stream is bound by how fast one multiprocessor streams the weights from L2, not by launch overhead (CUDA
graphs replay ~100 kernels per sample).

The arithmetic is the packed step of `packed.py` (the same as `engine.run_block_torch`). Channel counts are
zero-padded to powers of two of at least 16 (what `tl.dot` and `tl.arange` need); zero weights keep the
padded channels at zero and a -1e30 bias keeps padded classes from being chosen.

The pitch-lag input (`WaveNet.lag_classes`), as the graph engine carries it: each stream keeps its last HL
classes in a ring in global memory (x[t] at column t mod HL, HL a power of two above the longest period + the
taps), each step first writes its input x[t - 1] there and then reads its taps x[t - T + j] (T >= 3 reads only
the past), and the rows of the lag table they name are added to the input embedding.

Without a GPU the kernel can run in Triton's interpreter (numpy; TRITON_INTERPRET=1 set before triton is
imported, as tests/conftest.py does), which the CPU tests use to check it against the reference; that is
slow and for tests only. Import this module only where triton is wanted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import triton
import triton.language as tl
from torch import Tensor

from .graphs import LagInput
from .packed import TRITON_PRECISIONS as PRECISIONS
from .packed import PackedWaveNet, PaddedWaveNet, pad_packed


def power_of_two(n: int) -> int:
    """The channel count the kernel uses for n channels: the next power of two, at least 16."""
    return max(16, 1 << (n - 1).bit_length())


@dataclass
class TritonWeights:
    """`packed.PaddedWaveNet` (sizes rounded by `power_of_two`) as tensors on the kernel's device; the two taps
    are split into w_cur and w_past `[L, R, 2H]`, and dilations and offsets are int32."""

    tensors: dict
    sizes: PaddedWaveNet


def layout(packed: PackedWaveNet, device: torch.device) -> TritonWeights:
    """Pad and move the packed weights for the kernel (see TritonWeights)."""
    weights = pad_packed(packed, power_of_two)
    arrays = {name: getattr(weights, name) for name in ("embedding", "w_res", "b_res", "w_skip", "b_skip",
                                                         "w_hidden", "b_hidden", "w_logits", "b_logits")}
    gate = 2 * weights.half
    arrays["w_cur"], arrays["w_past"] = weights.w_taps[..., :gate], weights.w_taps[..., gate:]
    tensors = {name: torch.from_numpy(np.ascontiguousarray(a)).to(device) for name, a in arrays.items()}
    tensors["dilations"] = torch.from_numpy(packed.dilations.astype(np.int32)).to(device)
    tensors["offsets"] = torch.from_numpy(packed.offsets.astype(np.int32)).to(device)
    return TritonWeights(tensors, weights)


@triton.jit
def _steps_kernel(embedding, w_cur, w_past, w_res, b_res, w_skip, b_skip, w_hidden, b_hidden, w_logits, b_logits,
                  dilations, offsets, frames, frame_stride, ring, slots, previous, noise, teacher, out, logits_out,
                  scratch, lag_table, history, periods,
                  n_steps, t0, hop, batch, temperature, silence,
                  L: tl.constexpr, R: tl.constexpr, H: tl.constexpr, S: tl.constexpr, Q: tl.constexpr,
                  BLOCK_B: tl.constexpr, CHUNK: tl.constexpr, HAS_NOISE: tl.constexpr, TEACHER: tl.constexpr,
                  PRECISION: tl.constexpr, TAPS: tl.constexpr, HL: tl.constexpr, QT: tl.constexpr):
    G: tl.constexpr = 2 * H
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < batch
    cr, ch, cc = tl.arange(0, R), tl.arange(0, H), tl.arange(0, CHUNK)
    kr, kh, kc = cr[:, None], ch[:, None], cc[:, None]  # row indices of weight tiles
    mask_h = row_ok[:, None] & (ch[None, :] < H)
    mask_c = row_ok[:, None] & (cc[None, :] < CHUNK)
    token = tl.load(previous + rows, mask=row_ok, other=0)
    # per stream in the scratch buffer: every layer's z (L * H), then the skip (S) and hidden (S) vectors
    z_rows = scratch + rows[:, None] * (L * H + 2 * S)
    # ring buffers stream-major, [B, slots, G]: a program's memory is one contiguous region (tried against
    # slot-major for wide batches on an H100: no measurable change either way)
    ring_streams = ring + rows[:, None].to(tl.int64) * (slots * G) + ch[None, :]
    skip_rows = z_rows + L * H
    for step in range(n_steps):
        t = t0 + step
        if TEACHER:
            token = tl.load(teacher + step * batch + rows, mask=row_ok, other=0)
        x = tl.load(embedding + token[:, None] * R + cr[None, :])
        if TAPS > 0:  # the pitch-lag input: write x[t - 1], then read x[t - T + j] for |j| <= TAPS // 2
            history_rows = history + rows.to(tl.int64) * HL
            tl.store(history_rows + ((t - 1) & (HL - 1)), token, mask=row_ok)
            period = tl.load(periods + step * batch + rows, mask=row_ok, other=0)
            tl.debug_barrier()  # the writes before any thread's reads
            for j in tl.static_range(TAPS):
                index = t - period + (j - TAPS // 2)
                valid = row_ok & (period > TAPS // 2) & (index >= 0)
                lagged = tl.load(history_rows + (index & (HL - 1)), mask=valid, other=0)
                lagged = tl.where(valid, lagged, silence)
                x += tl.load(lag_table + (j * QT + lagged)[:, None] * R + cr[None, :])
        cond_rows = frames + (step // hop) * frame_stride + rows[:, None] * (L * G) + ch[None, :]
        for layer in range(L):
            slot = tl.load(offsets + layer) + t % tl.load(dilations + layer)
            tap = layer * R * G + kr * G + ch[None, :]
            ring_rows = ring_streams + slot * G
            cond = cond_rows + layer * G
            h_filter = tl.dot(x, tl.load(w_cur + tap), input_precision=PRECISION)
            h_filter += tl.load(cond, mask=mask_h, other=0.0) + tl.load(ring_rows, mask=mask_h, other=0.0)
            h_gate = tl.dot(x, tl.load(w_cur + tap + H), input_precision=PRECISION)
            h_gate += tl.load(cond + H, mask=mask_h, other=0.0) + tl.load(ring_rows + H, mask=mask_h, other=0.0)
            past_filter = tl.dot(x, tl.load(w_past + tap), input_precision=PRECISION)
            past_gate = tl.dot(x, tl.load(w_past + tap + H), input_precision=PRECISION)
            # every thread's read of this slot happens before any thread overwrites it
            tl.debug_barrier()
            tl.store(ring_rows, past_filter, mask=mask_h)
            tl.store(ring_rows + H, past_gate, mask=mask_h)
            # tanh(v) = 2 sigmoid(2v) - 1 (Triton has sigmoid, not tanh)
            a = 2.0 * tl.sigmoid(2.0 * h_filter) - 1.0
            z = a + a * (2.0 * tl.sigmoid(2.0 * h_gate) - 1.0)  # 2 tanh(a) sigmoid(b): 1/2 folded into w_res, w_skip
            tl.store(z_rows + layer * H + ch[None, :], z, mask=mask_h)
            x = 0.7071067811865476 * x + tl.load(b_res + layer * R + cr)[None, :] + tl.dot(
                z, tl.load(w_res + layer * H * R + kh * R + cr[None, :]), input_precision=PRECISION)
        tl.debug_barrier()
        # the head: skip = relu(z_all @ w_skip + b), hidden = relu(skip @ w_hidden + b), in CHUNK-wide tiles
        # (w_skip is [L * H, S]: every layer's skip product deferred to one product, as in the CPU engines)
        for n in range(0, S, CHUNK):
            acc = tl.zeros([BLOCK_B, CHUNK], tl.float32)
            for k in range(0, L * H, CHUNK):
                a_in = tl.load(z_rows + k + cc[None, :], mask=mask_c, other=0.0)
                acc += tl.dot(a_in, tl.load(w_skip + (k + kc) * S + n + cc[None, :]), input_precision=PRECISION)
            acc = tl.maximum(acc + tl.load(b_skip + n + cc)[None, :], 0.0)
            tl.store(skip_rows + n + cc[None, :], acc, mask=mask_c)
        tl.debug_barrier()
        for n in range(0, S, CHUNK):
            acc = tl.zeros([BLOCK_B, CHUNK], tl.float32)
            for k in range(0, S, CHUNK):
                a_in = tl.load(skip_rows + k + cc[None, :], mask=mask_c, other=0.0)
                acc += tl.dot(a_in, tl.load(w_hidden + (k + kc) * S + n + cc[None, :]), input_precision=PRECISION)
            acc = tl.maximum(acc + tl.load(b_hidden + n + cc)[None, :], 0.0)
            tl.store(skip_rows + S + n + cc[None, :], acc, mask=mask_c)
        tl.debug_barrier()
        best_value = tl.full([BLOCK_B], -float("inf"), tl.float32)
        best = tl.zeros([BLOCK_B], tl.int32)
        for n in range(0, Q, CHUNK):  # logits, and the running Gumbel-max over the chunks
            acc = tl.zeros([BLOCK_B, CHUNK], tl.float32)
            for k in range(0, S, CHUNK):
                a_in = tl.load(skip_rows + S + k + cc[None, :], mask=mask_c, other=0.0)
                acc += tl.dot(a_in, tl.load(w_logits + (k + kc) * Q + n + cc[None, :]), input_precision=PRECISION)
            acc += tl.load(b_logits + n + cc)[None, :]
            if TEACHER:
                tl.store(logits_out + (step * batch + rows[:, None]) * Q + n + cc[None, :], acc, mask=mask_c)
            if HAS_NOISE:
                acc += temperature * tl.load(noise + (rows[:, None].to(tl.int64) * n_steps + step) * Q + n
                                             + cc[None, :], mask=mask_c, other=0.0)
            chunk_best = tl.argmax(acc, axis=1).to(tl.int32)
            chunk_value = tl.max(acc, axis=1)
            better = chunk_value > best_value  # strict: the first maximum wins, as in torch.argmax
            best = tl.where(better, chunk_best + n, best)
            best_value = tl.where(better, chunk_value, best_value)
        tl.store(out + step * batch + rows, best.to(tl.int64), mask=row_ok)
        if not TEACHER:
            token = best.to(tl.int64)
        tl.debug_barrier()  # this step's reads of the scratch rows before the next step's writes
    tl.store(previous + rows, token, mask=row_ok)


def kernel_constants(sizes: PaddedWaveNet, block_b: int, precision: str, has_noise: bool, teacher: bool,
                     lag_taps: int = 0, lag_history: int = 1) -> dict:
    """The kernel's compile-time arguments for a padded decoder (one compiled kernel per distinct set);
    lag_taps, lag_history: the pitch-lag input's taps and ring length (0 and 1: none)."""
    return dict(L=sizes.n_layers, R=sizes.residual, H=sizes.half, S=sizes.skip, Q=sizes.classes, BLOCK_B=block_b,
                CHUNK=min(64, sizes.half, sizes.skip, sizes.classes), HAS_NOISE=has_noise, TEACHER=teacher,
                PRECISION=precision, TAPS=lag_taps, HL=lag_history, QT=sizes.true_classes)


class TritonRunner:
    """Runs blocks of steps for `batch` streams with the kernel; holds the ring buffers between blocks.

    Args:
        weights: `layout(packed, device)`.
        batch: streams.
        precision: one of PRECISIONS.
        block_b: streams per program (a power of two, at least 16); None picks by batch size.
        num_warps: warps per program (None: 8).
        lag: the decoder's pitch-lag input (`graphs.LagInput`: its table, taps, silence class and the ring
            length HL, a power of two), or None for a decoder without it.
    """

    def __init__(self, weights: TritonWeights, ring_slots: int, batch: int, precision: str = "tf32",
                 block_b: int | None = None, num_warps: int | None = None, lag: LagInput | None = None):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.w, self.batch, self.precision = weights, batch, precision
        device = weights.tensors["embedding"].device
        if device.type != "cuda" and not triton.knobs.runtime.interpret:
            raise ValueError("the triton engine runs on CUDA, or in Triton's interpreter (TRITON_INTERPRET=1 "
                             "set before triton is imported)")
        if block_b is None:  # enough programs to fill the GPU's multiprocessors before widening them
            block_b = 16 if batch <= 16 * 132 else 32
        self.block_b = block_b
        self.num_warps = num_warps or 8  # 4 warps spill registers at 16 streams (ptxas, sm_90)
        self.ring = torch.zeros(batch, ring_slots, 2 * weights.sizes.half, device=device)
        self.previous = torch.zeros(batch, dtype=torch.long, device=device)
        self.scratch = torch.zeros(batch, weights.sizes.n_layers * weights.sizes.half + 2 * weights.sizes.skip,
                                   device=device)
        self.lag = lag
        if lag is not None:
            if lag.history & (lag.history - 1):
                raise ValueError(f"the pitch-lag ring length must be a power of two, got {lag.history}")
            # the table's columns padded like the embedding's: the padded residual channels stay zero
            self.lag_table = torch.zeros(lag.table.shape[0], weights.sizes.residual, device=device)
            self.lag_table[:, :lag.table.shape[1]] = lag.table.to(device, torch.float32)
            self.history = torch.zeros(batch, lag.history, dtype=torch.long, device=device)  # x[t] at t mod HL

    def reset(self, first_input: int) -> None:
        """Start new streams: empty ring buffers, `first_input` as every stream's previous class."""
        self.ring.zero_()
        self.previous.fill_(first_input)
        if self.lag is not None:
            self.history.zero_()

    def select_streams(self, source: Tensor) -> None:
        """Stream i continues from where stream source[i] is (int64 `[B]` on the device): its ring buffers,
        last class and pitch-lag history."""
        self.ring.copy_(self.ring[source])
        self.previous.copy_(self.previous[source])
        if self.lag is not None:
            self.history.copy_(self.history[source])

    def run(self, n_steps: int, t0: int, hop: int, frames: Tensor, noise: Tensor | None, temperature: float,
            teacher: Tensor | None = None, periods: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Advance every stream by `n_steps` samples starting at absolute step `t0` (a multiple of hop).

        Args:
            frames: float32 `[F, B, L, 2H]` padded frame vectors (F = 1: the same for every step).
            noise: float32 `[n_steps, B, classes]` Gumbel noise, or None for argmax (copied stream-major for the
                kernel, like the ring buffers).
            teacher: int64 `[n_steps, B]` inputs to feed instead of the generated classes.
            periods: int `[n_steps, B]` each step's pitch period in samples (0: unvoiced), with `lag` only; every
                period + taps // 2 must be below the ring length.

        Returns:
            (int64 `[n_steps, B]` classes, float32 `[n_steps, B, classes]` logits when teacher forcing, else None).
        """
        w, device = self.w.sizes, self.ring.device
        out = torch.empty(n_steps, self.batch, dtype=torch.long, device=device)
        logits = None
        if teacher is not None:
            logits = torch.empty(n_steps, self.batch, w.classes, device=device)
        if noise is not None and noise.shape[-1] != w.classes:
            noise = torch.nn.functional.pad(noise, (0, w.classes - noise.shape[-1]))
        dummy = out  # stands for the pointers the constexpr flags leave unused
        if (periods is not None) != (self.lag is not None):
            raise ValueError("periods go with a runner that has the pitch-lag input, and only with one")
        lag_args = (self.scratch, dummy, dummy)
        if self.lag is not None:
            periods = periods.to(device, torch.long).contiguous()
            if periods.shape != (n_steps, self.batch):
                raise ValueError(f"periods must be [{n_steps}, {self.batch}], got {list(periods.shape)}")
            lag_args = (self.lag_table, self.history, periods)
        grid = (triton.cdiv(self.batch, self.block_b),)
        t = self.w.tensors
        _steps_kernel[grid](
            t["embedding"], t["w_cur"], t["w_past"], t["w_res"], t["b_res"], t["w_skip"], t["b_skip"], t["w_hidden"],
            t["b_hidden"], t["w_logits"], t["b_logits"], t["dilations"], t["offsets"],
            frames, 0 if frames.shape[0] == 1 else frames[0].numel(), self.ring, self.ring.shape[1], self.previous,
            dummy if noise is None else noise.transpose(0, 1).contiguous(),
            dummy if teacher is None else teacher.contiguous(), out, dummy if logits is None else logits,
            self.scratch, *lag_args, n_steps, t0, hop, self.batch, float(temperature),
            0 if self.lag is None else self.lag.silence,
            **kernel_constants(w, self.block_b, self.precision, noise is not None, teacher is not None,
                               *(() if self.lag is None else (self.lag.taps, self.lag.history))),
            num_warps=self.num_warps)
        if logits is not None:
            logits = logits[..., :w.true_classes]
        return out, logits


# Shared memory one program may use on an H100 or H200 (227 KiB, opted in past the 48 KiB default).
SHARED_MEMORY_LIMIT_SM90 = 232_448


def compile_ahead(sizes: PaddedWaveNet, block_b: int = 16, precision: str = "tf32", has_noise: bool = True,
                  teacher: bool = False, num_warps: int = 8, capability: int = 90, lag_taps: int = 0,
                  lag_history: int = 1):
    """Compile the kernel for an NVIDIA GPU that need not be here (triton's own ptxas; no driver), as
    `TritonRunner.run` would launch it: to learn before a GPU lease that the kernel builds, and how much
    shared memory a program needs (`.metadata.shared`, bytes; more than the GPU has fails only at launch).

    Args:
        sizes: the padded decoder (`layout(...).sizes` or `pad_packed(packed, power_of_two)`).
        block_b, precision, num_warps: as TritonRunner's.
        has_noise, teacher: sampling with Gumbel noise / teacher forcing, the two flags `run` sets.
        capability: compute capability x 10 (90: H100/H200, 80: A100).
        lag_taps, lag_history: the pitch-lag input's taps and ring length (`kernel_constants`; 0: none).

    Returns:
        triton's CompiledKernel (`.asm["cubin"]`, `.metadata`).

    Raises:
        RuntimeError: when Triton's interpreter is on (TRITON_INTERPRET=1): it patches the language, so
            compile in a process without it.
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    if not isinstance(_steps_kernel, JITFunction):
        raise RuntimeError("compile_ahead needs Triton's compiler: unset TRITON_INTERPRET")
    pointers = {"dilations": "*i32", "offsets": "*i32", "previous": "*i64", "out": "*i64",
                "noise": "*fp32" if has_noise else "*i64", "teacher": "*i64",  # unused pointers are `out`
                "logits_out": "*fp32" if teacher else "*i64", "history": "*i64", "periods": "*i64"}
    scalars = {"frame_stride": "i32", "slots": "i32", "n_steps": "i32", "t0": "i32", "hop": "i32", "batch": "i32",
               "temperature": "fp32", "silence": "i32"}
    constants = kernel_constants(sizes, block_b, precision, has_noise, teacher, lag_taps, lag_history)
    signature = {name: "constexpr" if name in constants else pointers.get(name, scalars.get(name, "*fp32"))
                 for name in _steps_kernel.arg_names}
    return triton.compile(ASTSource(_steps_kernel, signature, constants), target=GPUTarget("cuda", capability, 32),
                          options={"num_warps": num_warps})

