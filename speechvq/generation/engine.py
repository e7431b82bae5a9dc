"""Batched autoregressive generation with a packed decoder: on the CPU the C loop (native), the numba loop or
their eager-PyTorch twin; on a GPU the Triton kernel or CUDA graphs.

    engine = GenerationEngine(decoder, "auto")    # CPU: the engine measured fastest here (planner); CUDA: triton
    classes = engine.generate(n_samples, local, speaker, temperature=1.0, generator=g)

Every engine computes what `WaveNet.generate` (the plain reference path) computes, with the same Gumbel
noise drawn frame by frame from the same generator (`models.wavenet.frame_noise`), so the same generator
gives the same samples on every path (up to float rounding of near-ties; with precision "reduced", up to
the rounding of half-precision weights or TF32 products). Work is done in blocks of
`block_frames` frames: the conditioning and the noise of a block are prepared with torch, then the engine
runs all of the block's samples.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from ..models.wavenet import WaveNet, frame_noise
from .packed import (ENGINE_PRECISIONS, NATIVE_PRECISIONS, PRECISIONS, TRITON_PRECISIONS, PackedWaveNet, can_pack,
                     frame_vectors, pack)
from .planner import Choice, choose

ENGINES = ("auto", "native", "numba", "torch", "triton", "graph", "reference")
# choose(samples so far t, classes so far: () -> int64 [B, t]) -> int64 [B] source streams, or None
Chooser = Callable[[int, Callable[[], Tensor]], Optional[Tensor]]
CPU_ENGINES = ("native", "numba", "torch")  # each with a runner class: ring(batch) and run(block of steps)
_EMPTY3 = np.zeros((0, 0, 0), np.float32)
_EMPTY_TEACHER = np.zeros((0, 0), np.int64)


def numba_available() -> bool:
    """Whether the compiled engine can be used on this machine."""
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def triton_available() -> bool:
    """Whether the triton package is installed (the engine runs on CUDA, or in Triton's interpreter)."""
    import importlib.util

    return importlib.util.find_spec("triton") is not None


def triton_interpreting() -> bool:
    """Whether Triton kernels run in its interpreter (numpy, on the CPU): TRITON_INTERPRET=1, as in the tests."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def graph_supported(decoder: WaveNet) -> bool:
    """Whether the graph engine can run this decoder (kernel size 2, a block length it supports)."""
    from .graphs import MAX_BLOCK_STEPS

    steps = math.lcm(decoder.hop_length, *decoder.config.dilations)
    return can_pack(decoder) and steps <= MAX_BLOCK_STEPS


def resolve_engine(name: str, decoder: WaveNet, threads: Optional[int] = None, precision: str = "full",
                   march: Optional[str] = None, streams: Optional[int] = None) -> str:
    """The engine `name` stands for on the decoder's device (see `choose_engine`, which also gives its precision)."""
    return choose_engine(name, decoder, threads, precision, march, streams).engine


_log = logging.getLogger("speechvq.generation")


def choose_engine(name: str, decoder: WaveNet, threads: Optional[int] = None, precision: str = "full",
                  march: Optional[str] = None, streams: Optional[int] = None) -> Choice:
    """The engine `name` stands for on the decoder's device, and the kernel precision it runs at.

    auto: on the CPU the engine measured fastest here for this decoder, thread count and batch width, among
    native (the C loop; with half-precision weights too when `precision` is "reduced"), numba and fused torch
    (`planner`: timed once per machine and cached); on CUDA triton, else graph; the reference where the fast
    engines do not apply. native, numba and torch need a CPU decoder; graph runs anywhere (CUDA graphs on CUDA, eagerly
    elsewhere), and so does triton (compiled on CUDA, Triton's interpreter elsewhere: for tests).

    Args:
        threads: threads the CPU engines will use (default: torch's thread count).
        precision: "full" or "reduced", or the engine's own name (see `kernel_precision`).
        march: the C target of the native engine (default `native.default_march()`).
        streams: the batch width to choose for (default: a wide batch, as chunked decoding makes).

    Raises:
        ValueError: an unknown engine, or one that cannot run this decoder here (the message says why).
    """
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")
    device_type = decoder.input_embedding.weight.device.type
    if name == "auto":
        if device_type == "cuda":
            if can_pack(decoder) and triton_available():
                name = "triton"
            else:
                name = "graph" if graph_supported(decoder) else "reference"
        elif not can_pack(decoder) or device_type != "cpu":
            name = "reference"
        else:
            threads = max(1, threads or torch.get_num_threads())
            general = precision if precision in PRECISIONS else "full"
            return choose(decoder, threads, streams or 4 * threads, general, march, progress=_log.info)
        return Choice(name, kernel_precision(name, precision))
    if name == "graph" and not graph_supported(decoder):
        raise ValueError("the graph engine needs kernel size 2 and dilations whose common multiple with the hop "
                         "is at most 4096")
    if name == "triton" and not (can_pack(decoder) and triton_available()):
        raise ValueError("the triton engine needs kernel size 2 and the triton package")
    if name == "triton" and device_type != "cuda" and not triton_interpreting():
        raise ValueError("the triton engine needs a CUDA decoder (or TRITON_INTERPRET=1: Triton's interpreter)")
    if name in ("native", "numba", "torch") and (not can_pack(decoder) or device_type != "cpu"):
        raise ValueError(f"the {name} engine needs a CPU decoder with kernel size 2")
    if name == "native":
        from . import native

        try:
            native.load("fp32", march)
        except RuntimeError as error:
            raise ValueError(f"the native engine could not be built: {error}") from None
    if name == "numba" and not numba_available():
        raise ValueError("the numba engine needs the numba package")
    return Choice(name, kernel_precision(name, precision))


def kernel_precision(engine: str, precision: str) -> str:
    """What `precision` ("full", "reduced", or an engine's own name) means for a resolved engine.

    Raises:
        ValueError: a name neither general nor the engine's own.
    """
    own = {"native": NATIVE_PRECISIONS, "triton": TRITON_PRECISIONS}.get(engine, ())
    if precision in PRECISIONS:
        return ENGINE_PRECISIONS.get(engine, {}).get(precision, precision)
    if precision not in own:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS + own)} for the {engine} engine, "
                         f"got {precision!r}")
    return precision


class GenerationEngine:
    """Generates mu-law classes from a decoder, B streams at once.

    Args:
        decoder: the WaveNet (eval mode); its weights are packed once, here.
        engine: one of ENGINES ("auto": see `choose_engine`; on the CPU it is chosen again for each call's
            batch width, and `engine` / `precision` then say what the last call used).
        threads: worker threads of the native and numba engines (default: torch's thread count).
        block_frames: frames prepared and generated per engine call (None: 16 on the CPU, 64 per launch of the
            triton kernel, fewer when a block's noise would pass 256 MiB).
        precision: "full" or "reduced" (see `packed.PRECISIONS`), or the engine's own name: native "fp32" /
            "fp16" (matrix weights stored as halves), triton "tf32x3" / "tf32" / "ieee" (tl.dot's inputs).
        block_b, num_warps: streams and warps per program of the triton engine (None: chosen by batch size).
        march: the -march of the native engine's C build (None: $SPEECHVQ_MARCH, else "native"); e.g.
            "x86-64-v3" runs the AVX2 build on an AVX-512 machine.
    """

    def __init__(self, decoder: WaveNet, engine: str = "auto", threads: Optional[int] = None,
                 block_frames: Optional[int] = None, precision: str = "full", block_b: Optional[int] = None,
                 num_warps: Optional[int] = None, march: Optional[str] = None):
        self.decoder = decoder
        self.threads = max(1, threads or torch.get_num_threads())
        self.requested, self.requested_precision, self.march = engine, precision, march
        choice = choose_engine(engine, decoder, self.threads, precision, march)
        # `auto` on the CPU is chosen again per batch width in `generate`: engine and precision say what the
        # last call used (before any, what a wide batch uses)
        self.choose_per_width = engine == "auto" and choice.engine in CPU_ENGINES
        self.engine, self.precision = choice.engine, choice.precision
        self.block_frames = block_frames or (64 if self.engine == "triton" else 16)
        self.packed: Optional[PackedWaveNet] = pack(decoder) if self.engine != "reference" else None
        self._torch_weights = None
        self._graph_runners: dict = {}  # (batch, temperature, teacher) -> GraphBlockRunner
        self._cpu_runners: dict = {}  # Choice -> a runner of CPU_ENGINES
        self.block_b, self.num_warps = block_b, num_warps
        self._triton_weights = None
        if self.engine in CPU_ENGINES:
            self._cpu_runner()  # built now: a native build failure shows here, not mid-decode

    @property
    def label(self) -> str:
        """The engine and its precision as users see them, e.g. "native/fp16" or "numba" (for messages)."""
        return f"{self.engine}/{self.precision}" if self.engine in ENGINE_PRECISIONS else self.engine

    def _cpu_runner(self):
        """The runner of the current CPU engine and precision (built once per choice)."""
        key = Choice(self.engine, self.precision)
        if key not in self._cpu_runners:
            if self.engine == "native":
                runner = self._native_runner()
                self._cpu_runners[Choice(self.engine, self.precision)] = runner  # fp32 where halves failed
            elif self.engine == "numba":
                runner = NumbaRunner(self.packed, self.threads)
            else:
                runner = TorchRunner(self._weights(), self.packed)
            self._cpu_runners[key] = runner
        return self._cpu_runners[key]

    def _native_runner(self):
        from .native import NativeRunner

        try:
            runner = NativeRunner(self.packed, self.threads, self.precision, self.march)
        except RuntimeError as error:  # e.g. half-precision weights on a CPU without F16C or AVX-512
            if self.requested_precision != "reduced":  # fp16 asked for by name: say why it cannot be had
                raise ValueError(f"the native engine could not be built for {self.precision} weights: "
                                 f"{error}") from None
            self.precision = "fp32"  # "reduced" is a speed preference: float32 weights still work
            runner = NativeRunner(self.packed, self.threads, self.precision, self.march)
        decoder = self.decoder
        if decoder.lag_taps:  # the C loop reads the lag taps itself: whole blocks, no pieces
            runner.set_lag_table(decoder.lag_embedding.weight.detach().float().cpu().numpy(), decoder.lag_taps,
                                 decoder.lag_silence)
        return runner

    @torch.no_grad()
    def generate(self, n_samples: int, local: Optional[Tensor] = None, speaker: Optional[Tensor] = None,
                 batch_size: Optional[int] = None, temperature: float = 1.0, first_input: Optional[int] = None,
                 generator: Optional[torch.Generator] = None, progress: Optional[Callable[[int], None]] = None,
                 teacher: Optional[Tensor] = None, conditioning: Optional[Tensor] = None,
                 period: Optional[Tensor] = None, choose: Optional[Chooser] = None,
                 block_frames: Optional[int] = None) -> tuple[Tensor, Optional[Tensor]]:
        """Generate `n_samples` classes per stream (see `WaveNet.generate` for the arguments).

        Args:
            conditioning: float `[B, F, L, G]` per-layer conditioning instead of local and speaker.
            teacher: int64 `[B, T]` inputs to feed instead of the generated samples (tests: the logits
                then equal the teacher-forced pass); None to generate.
            period: int `[B, F]` pitch periods per frame, for a decoder with the pitch-lag input.
            choose: called after every block (`block_frames` frames on the CPU, the graph's or launch's block on
                a GPU) as choose(t, generated) with the samples generated per stream so far and a function that
                returns their classes int64 `[B, t]` (on the CPU a view: copy what you keep; on a GPU a copy
                gathered from the device, so call it only when choosing); it returns None, or int64 `[B]` source
                streams: stream i then continues from where stream source[i] is (its samples so far, buffers,
                last class and pitch-lag history), the way a search keeps its best candidates and drops the rest.
            block_frames: at most this many frames per block in this call (default and cap: the engine's
                `block_frames`; the graph engine keeps its captured block): a chooser passes the frames between
                its choices, so that they fall on time on the triton kernel's long launches too.

        Raises:
            ValueError: `choose` with the reference engine (plain `WaveNet.generate`).

        Returns:
            (int64 `[B, T]` classes, float32 `[B, classes, T]` logits when `teacher` is given, else None).
        """
        decoder = self.decoder
        if self.engine == "reference":
            if choose is not None:
                raise ValueError("the reference engine cannot choose among streams as they are generated")
            if teacher is not None:
                raise ValueError("the reference engine generates; use WaveNet.forward for teacher forcing")
            return decoder.generate(n_samples, local, speaker, batch_size, temperature, first_input, generator,
                                    progress, conditioning, period), None
        decoder._check_period(period)
        block_frames = min(self.block_frames, block_frames or self.block_frames)
        hop, classes = decoder.hop_length, decoder.classes
        n_frames = -(-n_samples // hop)
        batch, conditions = decoder.conditioning_stream(n_samples, local, speaker, batch_size, conditioning)
        if self.engine in ("graph", "triton"):
            if self.engine == "graph":
                return self._generate_graph(n_samples, batch, conditions, temperature, first_input, generator,
                                            progress, teacher, period, choose)
            return self._generate_triton(n_samples, batch, conditions, temperature, first_input, generator,
                                         progress, teacher, period, choose, block_frames)
        packed = self.packed
        if self.choose_per_width:
            choice = choose_engine("auto", decoder, self.threads, self.requested_precision, self.march, batch)
            self.engine, self.precision = choice.engine, choice.precision
        runner = self._cpu_runner()
        ring = runner.ring(batch)
        reads_lag = period is not None and self.engine == "native"
        lag_history = runner.lag_history(batch, int(period.max())) if reads_lag else None
        previous = np.full(batch, classes // 2 if first_input is None else first_input, np.int64)
        out = np.empty((batch, n_samples), np.int64)
        logits = np.empty((n_samples, batch, classes), np.float32) if teacher is not None else None
        constant = None
        if local is None and (conditioning is None or conditioning.shape[1] == 1):  # the same for every frame
            first_frame = next(conditions)
            constant = frame_vectors(packed, None if first_frame is None else first_frame.unsqueeze(1), batch).numpy()
        for first in range(0, n_frames, block_frames):
            last = min(n_frames, first + block_frames)
            if constant is None:
                cond = torch.stack([next(conditions) for _ in range(first, last)], 1)
                frames = frame_vectors(packed, cond, batch).numpy()
            else:
                frames = constant
            t0, t1 = first * hop, min(n_samples, last * hop)
            noise = _block_noise(generator, hop, batch, classes, last - first, t1 - t0).numpy() if temperature > 0 \
                else _EMPTY3
            step_teacher = _EMPTY_TEACHER if teacher is None else teacher[:, t0:t1].cpu().numpy().astype(np.int64)
            block_logits = _EMPTY3 if logits is None else logits[t0:t1]
            if period is None or reads_lag:  # the C loop reads the lag taps itself: one call per block
                lag = () if period is None else (decoder.sample_periods(period[:, first:last], t1 - t0).numpy(),
                                                 lag_history)
                runner.run(t1 - t0, t0, hop, first, frames, noise, float(temperature), ring, previous, out[:, t0:t1],
                           block_logits, step_teacher, *lag)
            else:  # numba, torch: in pieces whose lag taps all read samples generated before the piece
                sample_period = decoder.sample_periods(period[:, first:last], t1 - t0)
                # what the taps read: the samples generated so far, or with a teacher, the samples it feeds
                history = out if teacher is None else teacher[:, 1:].cpu().numpy()
                for s0, s1 in lag_pieces(sample_period, t0, decoder.lag_taps // 2):
                    extra = lag_extra(decoder, history, sample_period[:, s0 - t0:s1 - t0], s0, s1)
                    piece = slice(s0 - t0, s1 - t0)
                    runner.run(s1 - s0, s0, hop, first, frames, noise[piece] if noise.size else noise,
                               float(temperature), ring, previous, out[:, s0:s1],
                               block_logits[piece] if block_logits.size else block_logits,
                               step_teacher[:, piece] if step_teacher.size else step_teacher, extra)
            if progress is not None:
                progress(t1 - t0)
            source = None if choose is None else choose(t1, lambda: torch.from_numpy(out[:, :t1]))
            if source is not None:
                source = source.cpu().numpy()
                ring[...] = np.take(ring, source, axis=runner.ring_stream_axis)
                previous[...] = previous[source]
                out[:, :t1] = out[source, :t1]
                if lag_history is not None:
                    lag_history[...] = lag_history[source]
        classes_out = torch.from_numpy(out)
        return classes_out, None if logits is None else torch.from_numpy(logits).permute(1, 2, 0)

    def _device_blocks(self, n_samples: int, batch: int, conditions, temperature: float,
                       generator: Optional[torch.Generator], teacher: Optional[Tensor], frames_per_block: int,
                       device: torch.device):
        """The inputs of each block of a device engine, already on `device`: yields (first frame, frames in the
        block, t0, t1, frame vectors `[F, B, L, G]` (F = 1 when constant), noise `[t1 - t0, B, Q]` or None,
        teacher `[t1 - t0, B]` or None)."""
        hop, classes = self.decoder.hop_length, self.decoder.classes
        for first in range(0, -(-n_samples // hop), frames_per_block):
            n_frames = min(frames_per_block, -(-n_samples // hop) - first)
            t0, t1 = first * hop, min(n_samples, (first + n_frames) * hop)
            cond = [next(conditions) for _ in range(n_frames)]
            vectors = frame_vectors(self.packed, None if cond[0] is None else torch.stack(cond, 1), batch, device)
            noise = None
            if temperature > 0:
                noise = _to_device(_block_noise(generator, hop, batch, classes, n_frames, t1 - t0), device)
            step_teacher = None if teacher is None else _to_device(teacher[:, t0:t1].t(), device)
            yield first, n_frames, t0, t1, vectors, noise, step_teacher

    def _generate_graph(self, n_samples: int, batch: int, conditions, temperature: float,
                        first_input: Optional[int], generator: Optional[torch.Generator],
                        progress: Optional[Callable[[int], None]], teacher: Optional[Tensor],
                        period: Optional[Tensor] = None,
                        choose: Optional[Chooser] = None) -> tuple[Tensor, Optional[Tensor]]:
        """`generate` on the graph engine: whole blocks on the decoder's device (see `graphs`)."""
        from .graphs import GraphBlockRunner, LagInput

        decoder = self.decoder
        device = decoder.input_embedding.weight.device
        lag = None if period is None else LagInput.of(decoder, period)
        key = (batch, float(temperature), teacher is not None, None if lag is None else lag.history)
        if key not in self._graph_runners:
            self._graph_runners[key] = GraphBlockRunner(self._weights(), self.packed, decoder.hop_length,
                                                        batch, device, temperature, teacher is not None, lag)
        runner = self._graph_runners[key]
        runner.reset(decoder.classes // 2 if first_input is None else first_input)
        frames_per_block = runner.steps // decoder.hop_length
        outputs, logits = [], []
        for first, n_frames, t0, t1, vectors, noise, step_teacher in self._device_blocks(
                n_samples, batch, conditions, temperature, generator, teacher, frames_per_block, device):
            # a short last block repeats its last frame: those steps are generated and dropped
            shape = vectors.shape[1:]
            if lag is not None:  # the dropped steps read as unvoiced
                runner.periods.zero_()
                runner.periods[: t1 - t0].copy_(decoder.sample_periods(period[:, first:first + n_frames], t1 - t0).t())
            runner.frames.copy_(torch.cat([vectors.expand(n_frames, *shape),
                                           vectors[-1:].expand(frames_per_block - n_frames, *shape)]))
            if noise is not None:
                runner.noise[: t1 - t0].copy_(noise)
            if step_teacher is not None:
                runner.teacher[: t1 - t0].copy_(step_teacher)
            runner.run()
            # kept on the device until the end, so the host prepares the next block while this one runs
            outputs.append(runner.out[: t1 - t0].clone())
            if runner.logits is not None:
                logits.append(runner.logits[: t1 - t0].clone())
            if progress is not None:
                progress(t1 - t0)
            outputs = _device_choice(choose, t1, outputs, runner)
        return _collect(outputs, logits)

    def _generate_triton(self, n_samples: int, batch: int, conditions, temperature: float,
                         first_input: Optional[int], generator: Optional[torch.Generator],
                         progress: Optional[Callable[[int], None]], teacher: Optional[Tensor],
                         period: Optional[Tensor] = None, choose: Optional[Chooser] = None,
                         block_frames: Optional[int] = None) -> tuple[Tensor, Optional[Tensor]]:
        """`generate` on the triton engine: one kernel launch per block of frames (see `triton_steps`)."""
        from .graphs import LagInput
        from .packed import pad_gate_halves
        from .triton_steps import TritonRunner, layout

        decoder = self.decoder
        device = decoder.input_embedding.weight.device
        hop, classes = decoder.hop_length, decoder.classes
        if self._triton_weights is None:
            self._triton_weights = layout(self.packed, device)
        weights = self._triton_weights
        lag = None if period is None else LagInput.of(decoder, period)
        runner = TritonRunner(weights, self.packed.ring_slots, batch, self.precision, self.block_b, self.num_warps,
                              lag)
        runner.reset(classes // 2 if first_input is None else first_input)
        # frames per launch: block_frames, fewer when a block's noise would pass 256 MiB (wide batches)
        frames_per_block = max(1, min(block_frames or self.block_frames, (1 << 28) // (4 * hop * batch * classes)))
        outputs, logits = [], []
        for first, n_frames, t0, t1, vectors, noise, step_teacher in self._device_blocks(
                n_samples, batch, conditions, temperature, generator, teacher, frames_per_block, device):
            frames = pad_gate_halves(vectors, weights.sizes.true_half, weights.sizes.half).contiguous()
            periods = None
            if lag is not None:
                periods = _to_device(decoder.sample_periods(period[:, first:first + n_frames], t1 - t0).t(), device)
            out, block_logits = runner.run(t1 - t0, t0, hop, frames, noise, temperature, step_teacher, periods)
            outputs.append(out)
            if block_logits is not None:
                logits.append(block_logits)
            if progress is not None:
                progress(t1 - t0)
            outputs = _device_choice(choose, t1, outputs, runner)
        return _collect(outputs, logits)

    def _weights(self) -> dict:
        """The packed weights as tensors in the layout of `run_block_torch` (built once)."""
        if self._torch_weights is None:
            self._torch_weights = torch_layout(self.packed)
        return self._torch_weights


def slot_major_ring(packed: PackedWaveNet, batch: int) -> np.ndarray:
    """Empty ring buffers of the numba and torch loops: float32 `[slots, B, G]` (past-tap products)."""
    return np.zeros((packed.ring_slots, batch, packed.w_taps.shape[2] // 2), np.float32)


class NumbaRunner:
    """Runs blocks of generation steps with the numba loop (`kernel.run_parallel`), streams split over threads.

    Args:
        packed: the packed decoder; threads: worker threads (at most one per stream is used).
    """

    def __init__(self, packed: PackedWaveNet, threads: int):
        self.packed, self.threads = packed, threads
        # the numba loop reads the large products' weights transposed (see kernel.accumulate_transposed)
        self.transposed = {name: np.ascontiguousarray(getattr(packed, name).T)
                           for name in ("w_skip", "w_hidden", "w_logits")}

    ring_stream_axis = 1  # of `ring`'s arrays: the stream's axis

    def ring(self, batch: int) -> np.ndarray:
        """Empty ring buffers float32 `[slots, B, G]` (past-tap products)."""
        return slot_major_ring(self.packed, batch)

    def run(self, n_steps: int, t0: int, hop: int, frame0: int, frames: np.ndarray, noise: np.ndarray,
            temperature: float, ring: np.ndarray, previous: np.ndarray, out: np.ndarray, logits: np.ndarray,
            teacher: np.ndarray, input_extra: np.ndarray = _EMPTY3) -> None:
        """Advance every stream by `n_steps` samples (arguments as for `native.NativeRunner.run`; input_extra:
        float32 `[n_steps, B, R]` added to each step's input embedding, a piece's pitch-lag input, or empty)."""
        import numba

        from .kernel import run_parallel

        packed = self.packed
        block_out = np.empty((out.shape[0], n_steps), np.int64)
        # numba compiles one machine-code version per argument layout: a block's slice of a teacher-forcing
        # array is strided, and as such cost a second cold compile of the whole loop (about 25 s on 2 cores)
        teacher = np.ascontiguousarray(teacher)
        threads = min(self.threads, previous.shape[0])
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        run_parallel(threads, n_steps, t0, hop, frame0, packed.dilations, packed.offsets, packed.w_taps,
                     packed.w_res, packed.b_res, self.transposed["w_skip"], packed.b_skip, self.transposed["w_hidden"],
                     packed.b_hidden, self.transposed["w_logits"], packed.b_logits, packed.embedding, frames, noise,
                     temperature, ring, previous, block_out, logits, teacher, input_extra)
        out[:, :] = block_out


class TorchRunner:
    """Runs blocks of generation steps with the packed step in eager PyTorch (`run_block_torch`).

    Args:
        weights: `torch_layout(packed)`; packed: the packed decoder.
    """

    def __init__(self, weights: dict, packed: PackedWaveNet):
        self.weights, self.packed = weights, packed

    ring_stream_axis = 1  # of `ring`'s arrays: the stream's axis

    def ring(self, batch: int) -> np.ndarray:
        """Empty ring buffers float32 `[slots, B, G]` (past-tap products)."""
        return slot_major_ring(self.packed, batch)

    def run(self, n_steps: int, t0: int, hop: int, frame0: int, frames: np.ndarray, noise: np.ndarray,
            temperature: float, ring: np.ndarray, previous: np.ndarray, out: np.ndarray, logits: np.ndarray,
            teacher: np.ndarray, input_extra: np.ndarray = _EMPTY3) -> None:
        """Advance every stream by `n_steps` samples (arguments as for `native.NativeRunner.run`; input_extra:
        float32 `[n_steps, B, R]` added to each step's input embedding, a piece's pitch-lag input, or empty)."""
        run_block_torch(self.weights, n_steps, t0, hop, frame0, frames, noise, temperature, ring, previous, out,
                        logits, teacher, input_extra)


def lag_pieces(sample_period: Tensor, t0: int, latest_tap: int) -> list[tuple[int, int]]:
    """Cut a block of steps into pieces [s0, s1) in which every pitch-lag tap reads a sample from before s0,
    so that a piece's lag input is known when it starts (periods up to latest_tap read nothing: `lag_classes`).

    Args:
        sample_period: int `[B, N]`, the period of each step t0 .. t0 + N - 1 (0: unvoiced).
        t0: the block's first step; latest_tap: the largest tap offset j (n // 2).

    Returns:
        the pieces in order, as absolute steps, covering [t0, t0 + N).
    """
    n_steps = sample_period.shape[1]
    times = torch.arange(t0, t0 + n_steps)
    # the latest sample each step reads (over the streams; -1 where nothing is read)
    reads = torch.where(sample_period > latest_tap, times - sample_period.long() + latest_tap,
                        torch.full_like(times, -1))
    latest = reads.amax(dim=0).tolist()
    pieces, start = [], t0
    for step, read in enumerate(latest):
        t = t0 + step
        if read >= start and t > start:  # t reads a sample of its own piece: it starts the next one
            pieces.append((start, t))
            start = t
    pieces.append((start, t0 + n_steps))
    return pieces


def lag_extra(decoder: WaveNet, history: np.ndarray, sample_period: Tensor, s0: int, s1: int) -> np.ndarray:
    """The pitch-lag input of steps [s0, s1): float32 `[s1 - s0, B, R]`, read from `history` int64 `[B, >= s0]`
    (history[:, k] = x[k]) with the periods `[B, s1 - s0]` of those steps."""
    # only the samples the taps can reach: copying all of history[:, :s0] made a long decode quadratic
    start = max(0, s0 - int(sample_period.max()) - decoder.lag_taps // 2)
    past = torch.from_numpy(np.ascontiguousarray(history[:, start:s0]))
    lagged = decoder.lag_classes(past, sample_period, torch.arange(s0, s1), start)
    return decoder.lag_input(lagged).transpose(0, 1).contiguous().float().numpy()


def _block_noise(generator: Optional[torch.Generator], hop: int, batch: int, classes: int, n_frames: int,
                 n_steps: int) -> Tensor:
    """Gumbel noise float32 `[n_steps, B, classes]` for a block of frames, drawn frame by frame as every path
    draws it (`models.wavenet.frame_noise`), so the same generator gives the same draws on every engine."""
    return torch.cat([frame_noise(generator, hop, batch, classes) for _ in range(n_frames)])[:n_steps]


def _to_device(values: Tensor, device: torch.device) -> Tensor:
    """Host values on `device` without making the host wait for the device (pinned, asynchronous copy)."""
    if device.type == "cuda" and values.device.type == "cpu":
        values = values.contiguous().pin_memory()
    return values.to(device, non_blocking=True)


def _device_choice(choose: Optional[Chooser], t: int, outputs: list[Tensor], runner) -> list[Tensor]:
    """`generate`'s `choose` on a device engine after a block: the blocks so far `[steps, B]` each, with every
    stream's replaced by its source's where `choose` names sources (and the runner's state likewise)."""
    if choose is None:
        return outputs
    source = choose(t, lambda: torch.cat(outputs).t())
    if source is None:
        return outputs
    source = source.to(outputs[0].device)
    runner.select_streams(source)
    return [block[:, source] for block in outputs]


def _collect(outputs: list[Tensor], logits: list[Tensor]) -> tuple[Tensor, Optional[Tensor]]:
    """The device engines' blocks `[steps, B]` (and logits `[steps, B, Q]`) as `generate` returns them."""
    classes_out = torch.cat(outputs).t().cpu().contiguous()
    return classes_out, torch.cat(logits).permute(1, 2, 0).cpu() if logits else None


def torch_layout(packed: PackedWaveNet) -> dict:
    """Weights for `run_block_torch`: the two taps split, and biases folded into products with a ones column.

    z_aug = [z2, 1] per layer, so x' = sqrt(1/2) (x + z2 W_res + b_res) is one addmm with
    W = sqrt(1/2) [W_res; b_res] and beta = sqrt(1/2), and the skip sum is one product of all layers'
    z_aug with [W_skip_l; bias row] (the summed skip bias in layer 0's ones row, zeros elsewhere).
    """
    n_layers, residual, gate2x = packed.w_taps.shape
    gate, half = gate2x // 2, gate2x // 4
    scale = math.sqrt(0.5)
    res = np.concatenate([packed.w_res, packed.b_res[:, None, :]], axis=1) * scale  # (L, half + 1, R)
    skip = np.zeros((n_layers, half + 1, packed.w_skip.shape[1]), np.float32)
    skip[:, :half] = packed.w_skip.reshape(n_layers, half, -1)
    skip[0, half] = packed.b_skip
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return {"w_cur": t(packed.w_taps[:, :, :gate]), "w_past": t(packed.w_taps[:, :, gate:]), "w_res_aug": t(res),
            "w_skip_aug": t(skip.reshape(n_layers * (half + 1), -1)), "w_hidden": t(packed.w_hidden),
            "b_hidden": t(packed.b_hidden), "w_logits": t(packed.w_logits), "b_logits": t(packed.b_logits),
            "embedding": t(packed.embedding), "dilations": [int(d) for d in packed.dilations],
            "offsets": [int(o) for o in packed.offsets], "scale": scale}


def run_block_torch(w: dict, n_steps: int, t0: int, hop: int, frame0: int, frames: np.ndarray, noise: np.ndarray,
                    temperature: float, ring: np.ndarray, previous: np.ndarray, out: np.ndarray, logits_out: np.ndarray,
                    teacher: np.ndarray, input_extra: np.ndarray = _EMPTY3) -> None:
    """The packed step in eager PyTorch, for machines without numba: preallocated buffers, in-place ops,
    six calls per layer (the compiled loop does several times better)."""
    with torch.inference_mode():
        n_layers, residual, gate = w["w_cur"].shape
        half = gate // 2
        batch = previous.shape[0]
        ring_t, prev_t = torch.from_numpy(ring), torch.from_numpy(previous)
        frames_t = torch.from_numpy(frames)
        noise_t = torch.from_numpy(noise) if noise.size else None
        h = torch.empty(batch, gate)
        h_filter, h_gate = h[:, :half], h[:, half:]
        z = torch.ones(batch, n_layers, half + 1)  # the last column stays 1: it carries the folded biases
        z_flat = z.view(batch, -1)
        z_layers, z_aug = [z[:, layer, :half] for layer in range(n_layers)], [z[:, layer] for layer in range(n_layers)]
        xs = [torch.empty(batch, residual), torch.empty(batch, residual)]  # x and x' alternate
        skips = torch.empty(batch, w["w_hidden"].shape[0])
        hidden = torch.empty_like(skips)
        logits = torch.empty(batch, w["w_logits"].shape[1])
        dilations, offsets, scale = w["dilations"], w["offsets"], w["scale"]
        w_cur, w_past, w_res = list(w["w_cur"]), list(w["w_past"]), list(w["w_res_aug"])
        # Every view is made once, outside the sample loop: in eager PyTorch even a view costs a dispatch.
        slots = [[ring_t[offsets[layer] + k] for k in range(dilations[layer])] for layer in range(n_layers)]
        frame_index, frame_views = -1, None
        for step in range(n_steps):
            t = t0 + step
            index = 0 if frames.shape[0] == 1 else t // hop - frame0
            if index != frame_index:
                frame_index, frame_views = index, list(frames_t[index].unbind(1))
            tokens = torch.from_numpy(teacher[:, step]) if teacher.shape[0] else prev_t
            x = xs[0]
            torch.index_select(w["embedding"], 0, tokens, out=x)
            if input_extra.shape[0]:  # the pitch-lag input
                x.add_(torch.from_numpy(input_extra[step]))
            for layer in range(n_layers):
                slot = slots[layer][t % dilations[layer]]
                torch.addmm(frame_views[layer], x, w_cur[layer], out=h)
                h.add_(slot).tanh_()  # read the past tap's product before this step overwrites the slot
                torch.mm(x, w_past[layer], out=slot)
                torch.addcmul(h_filter, h_filter, h_gate, out=z_layers[layer])
                if layer < n_layers - 1:
                    x_next = xs[(layer + 1) % 2]
                    torch.addmm(x, z_aug[layer], w_res[layer], beta=scale, out=x_next)
                    x = x_next
            torch.mm(z_flat, w["w_skip_aug"], out=skips).relu_()
            torch.addmm(w["b_hidden"], skips, w["w_hidden"], out=hidden).relu_()
            torch.addmm(w["b_logits"], hidden, w["w_logits"], out=logits)
            if logits_out.shape[0]:
                logits_out[step] = logits.numpy()
            if temperature > 0:
                logits.add_(noise_t[step], alpha=temperature)
            choice = logits.argmax(dim=1)
            prev_t.copy_(choice)
            out[:, step] = choice.numpy()
