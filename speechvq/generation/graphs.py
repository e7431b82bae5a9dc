"""The packed step on a GPU, a block of samples at a time, captured once as a CUDA graph and replayed.

A generation step is ~130 small kernels (six per layer); launched one by one from Python, the launch cost is
most of the time. A CUDA graph records a fixed sequence of kernels on fixed buffers and replays it with one
call. The sequence must not depend on the step, but the ring-buffer slot of a layer does (t mod dilation), so
the graph covers a whole block of S steps, S a multiple of every dilation and of the hop: a block that starts
at a multiple of S then reads and writes the same slots, and the same frame rows, every time.

Per block the host fills the static inputs (the block's frame vectors, its Gumbel noise, or teacher inputs
in tests), replays the graph, and reads the classes back; the ring buffers and the last class stay on the
device between blocks. Off CUDA the same block runs eagerly (what the CPU tests check), with nothing captured.

The pitch-lag input (`WaveNet.lag_classes`) needs the samples one period back, and the period changes per
frame: the block keeps a ring of the last H classes per stream and the absolute time as device tensors, and
the host fills each step's period into a static buffer, so the captured sequence stays the same every block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from .packed import PackedWaveNet

MAX_BLOCK_STEPS = 4096  # a longer block means a huge graph; decoders whose dilations need one are not supported


def block_length(dilations: np.ndarray, hop: int) -> int:
    """Steps per block: the least common multiple of the dilations and the hop.

    Raises:
        ValueError: when it exceeds MAX_BLOCK_STEPS (e.g. dilations that are not powers of two).
    """
    steps = math.lcm(hop, *(int(d) for d in dilations))
    if steps > MAX_BLOCK_STEPS:
        raise ValueError(f"the graph engine needs dilations and hop with a common multiple of at most "
                         f"{MAX_BLOCK_STEPS} steps; this decoder's is {steps}")
    return steps


@dataclass(frozen=True)
class LagInput:
    """A decoder's pitch-lag input for the device engines, the graph block and the triton kernel
    (`WaveNet.lag_classes`, `WaveNet.lag_input`).

    Attributes:
        table: float32 `[taps * Q, R]`, `WaveNet.lag_embedding.weight` (tap j's class c is row j * Q + c).
        taps: n, odd; silence: the class read before the first sample and where the period is <= n // 2.
        history: H, classes kept per stream: more than the longest period + n // 2.
    """

    table: Tensor
    taps: int
    silence: int
    history: int

    @classmethod
    def of(cls, decoder, period: Tensor) -> "LagInput":
        """The input of a WaveNet with pitch-lag taps, its ring long enough for the periods int `[B, F]` given."""
        return cls(decoder.lag_embedding.weight.detach(), decoder.lag_taps, decoder.lag_silence,
                   lag_history_length(int(period.max()), decoder.lag_taps))


def lag_history_length(longest_period: int, taps: int) -> int:
    """H for `LagInput`: a power of two (so that few lengths, and few captured graphs, serve every file) above
    the longest period + taps, at least 256."""
    return max(256, 1 << int(longest_period + taps).bit_length())


class GraphBlockRunner:
    """Runs blocks of `steps` generation steps for `batch` streams with buffers that never move.

    Args:
        weights: `engine.torch_layout(packed)`.
        packed: the packed decoder (for the ring layout).
        hop: samples per conditioning frame.
        batch: streams.
        device: where everything lives; graphs are captured only on CUDA.
        temperature: > 0 adds `temperature` x the static noise to the logits (fixed at capture).
        teacher: read each step's input from the static `teacher` buffer instead of the last class
            (and keep every step's logits): the tests' teacher-forced mode.
        lag: the decoder's pitch-lag input, or None for a decoder without it.

    Attributes (static buffers the caller fills or reads between `run` calls):
        frames: float32 `[S / hop, B, L, G]` frame vectors of the block (see `packed.frame_vectors`).
        noise: float32 `[S, B, Q]` standard Gumbel noise (temperature > 0 only).
        teacher: int64 `[S, B]` inputs (teacher mode only).
        out: int64 `[S, B]` the classes chosen; logits: float32 `[S, B, Q]` (teacher mode only).
        periods: int64 `[S, B]` each step's pitch period in samples, 0 unvoiced (with `lag` only).
    """

    def __init__(self, weights: dict, packed: PackedWaveNet, hop: int, batch: int, device: torch.device,
                 temperature: float, teacher: bool, lag: Optional[LagInput] = None):
        self.steps = block_length(packed.dilations, hop)
        self.hop, self.batch, self.device, self.temperature = hop, batch, device, float(temperature)
        tensor = lambda value: value.to(device) if isinstance(value, Tensor) else value  # noqa: E731
        self.w = {name: tensor(value) for name, value in weights.items()}
        n_layers, residual, gate = self.w["w_cur"].shape
        classes, skip = self.w["w_logits"].shape[1], self.w["w_hidden"].shape[0]
        zeros = lambda *shape, dtype=torch.float32: torch.zeros(*shape, dtype=dtype, device=device)  # noqa: E731
        self.ring = zeros(packed.ring_slots, batch, gate)
        self.previous = zeros(batch, dtype=torch.long)
        self.frames = zeros(self.steps // hop, batch, n_layers, gate)
        self.noise = zeros(self.steps, batch, classes) if self.temperature > 0 else None
        self.teacher = zeros(self.steps, batch, dtype=torch.long) if teacher else None
        self.out = zeros(self.steps, batch, dtype=torch.long)
        self.logits = zeros(self.steps, batch, classes) if teacher else None
        half = gate // 2
        self._h = zeros(batch, gate)
        self._z = torch.ones(batch, n_layers, half + 1, device=device)  # last column 1: the folded biases
        self._xs = [zeros(batch, residual), zeros(batch, residual)]
        self._skips, self._hidden = zeros(batch, skip), zeros(batch, skip)
        self._logit = zeros(batch, classes)
        self.lag = lag
        if lag is not None:
            self.lag_table = lag.table.to(device, torch.float32)
            self.periods = zeros(self.steps, batch, dtype=torch.long)
            self._history = zeros(batch, lag.history, dtype=torch.long)  # x[t] in column t mod H
            self._time = zeros(1, dtype=torch.long)  # t of the next step, on the device: no host sync per step
            half_taps = lag.taps // 2
            self._tap_offsets = torch.arange(-half_taps, half_taps + 1, device=device)
            self._tap_rows = torch.arange(lag.taps, device=device) * classes
        self._graph: Optional[torch.cuda.CUDAGraph] = None
        if device.type == "cuda":
            self._capture()

    def reset(self, first_input: int) -> None:
        """Start new streams: empty ring buffers, and `first_input` as every stream's previous class."""
        self.ring.zero_()
        self.previous.fill_(first_input)
        if self.lag is not None:
            self._history.zero_()
            self._time.zero_()

    def select_streams(self, source: Tensor) -> None:
        """Stream i continues from where stream source[i] is (int64 `[B]` on the device): its ring buffers,
        last class and pitch-lag history, copied in place (the captured graph reads these very tensors)."""
        self.ring.copy_(self.ring[:, source])
        self.previous.copy_(self.previous[source])
        if self.lag is not None:
            self._history.copy_(self._history[source])

    def run(self) -> None:
        """Advance every stream by one block (asynchronous on CUDA)."""
        if self._graph is not None:
            self._graph.replay()
        else:
            with torch.inference_mode():
                self._block(self.steps)

    def _capture(self) -> None:
        # cuBLAS and the caching allocator must be warmed up outside the capture, on a side stream.
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.inference_mode():
            self._block(2)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph), torch.inference_mode():
            self._block(self.steps)
        self.reset(0)

    def _block(self, n_steps: int) -> None:
        # The step of `engine.run_block_torch`, on device buffers; step s of the block is t = s (mod every
        # dilation), since blocks start at multiples of self.steps.
        w = self.w
        n_layers, _, gate = w["w_cur"].shape
        half = gate // 2
        h, z, xs = self._h, self._z, self._xs
        h_filter, h_gate = h[:, :half], h[:, half:]
        z_flat = z.view(self.batch, -1)
        dilations, offsets, scale = w["dilations"], w["offsets"], w["scale"]
        for step in range(n_steps):
            frame = self.frames[step // self.hop]
            tokens = self.teacher[step] if self.teacher is not None else self.previous
            x = xs[0]
            torch.index_select(w["embedding"], 0, tokens, out=x)
            if self.lag is not None:
                x.add_(self._lag_input(tokens, self.periods[step]))
            for layer in range(n_layers):
                slot = self.ring[offsets[layer] + step % dilations[layer]]
                torch.addmm(frame[:, layer], x, w["w_cur"][layer], out=h)
                h.add_(slot).tanh_()  # the past tap's product, read before this step overwrites the slot
                torch.mm(x, w["w_past"][layer], out=slot)
                torch.addcmul(h_filter, h_filter, h_gate, out=z[:, layer, :half])
                if layer < n_layers - 1:
                    x_next = xs[(layer + 1) % 2]
                    torch.addmm(x, z[:, layer], w["w_res_aug"][layer], beta=scale, out=x_next)
                    x = x_next
            torch.mm(z_flat, w["w_skip_aug"], out=self._skips).relu_()
            torch.addmm(w["b_hidden"], self._skips, w["w_hidden"], out=self._hidden).relu_()
            torch.addmm(w["b_logits"], self._hidden, w["w_logits"], out=self._logit)
            if self.logits is not None:
                self.logits[step].copy_(self._logit)
            if self.noise is not None:
                self._logit.add_(self.noise[step], alpha=self.temperature)
            torch.argmax(self._logit, dim=1, out=self.out[step])
            self.previous.copy_(self.out[step])

    def _lag_input(self, tokens: Tensor, period: Tensor) -> Tensor:
        """One step's pitch-lag input, float32 `[B, R]`, for inputs `tokens` int64 `[B]` (= x[t - 1]) and
        periods int64 `[B]`; remembers the input and advances the time. Device operations only."""
        lag, history = self.lag, self._history
        # the input of step t is x[t - 1]: keep it (at t = 0 the slot of "x[-1]" is read as silence, then
        # overwritten at t = H before any tap reaches it)
        history.index_copy_(1, (self._time - 1).remainder(lag.history), tokens.unsqueeze(1))
        index = (self._time - period).unsqueeze(1) + self._tap_offsets  # [B, n]: t - T + j
        valid = (period.unsqueeze(1) > lag.taps // 2) & (index >= 0)
        lagged = torch.where(valid, history.gather(1, index.remainder(lag.history)), lag.silence)
        self._time.add_(1)
        return self.lag_table[lagged + self._tap_rows].sum(1)
