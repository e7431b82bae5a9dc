"""The C generation loop (csrc/wavenet_step.c): built on first use with the system C compiler, called via ctypes.

The library is compiled once per machine, source version and target into a cache folder
($SPEECHVQ_CACHE, else $XDG_CACHE_HOME/speechvq, else ~/.cache/speechvq), with -O3 -march=native
-ffast-math (or the -march named by `march` or $SPEECHVQ_MARCH, e.g. x86-64-v3 for the AVX2 variant),
written to a temporary name and renamed, so concurrent first uses cannot see half a file. The C source
shapes its register panels for the target's instruction set (AVX-512, AVX/AVX2, or 128-bit vectors
elsewhere) at compile time.
`available()` says whether that works here (a C compiler on PATH as $CC, cc or gcc); the engine falls
back to numba when it does not. Threads: the streams are split into one slice per thread, and each slice
runs a whole block of steps in one C call (ctypes releases the GIL during the call).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

from .packed import NATIVE_PRECISIONS, PackedWaveNet, PaddedWaveNet, pad_gate_halves, pad_packed

SOURCE = Path(__file__).with_name("csrc") / "wavenet_step.c"
# -ffast-math at compile time only. Passed to the link too, GCC before 13 adds crtfastmath.o, whose
# constructor turns on flush-to-zero and denormals-are-zero for the whole process as the library loads
# (numpy then computed np.float32(1e-40) * 1 == 0 after a first decode): so compile, then link without it.
COMPILE_FLAGS = ("-O3", "-ffast-math", "-fPIC", "-std=c11")
LINK_FLAGS = ("-shared",)
_library: dict = {}  # (weights, march) -> the loaded library, or the error that prevented it (once per process)
# Instruction-set macros of GCC/Clang and the /proc/cpuinfo flag each needs (see `runs_here`).
_ISA_MACROS = {"__AVX512F__": "avx512f", "__AVX512BW__": "avx512bw", "__AVX512DQ__": "avx512dq",
               "__AVX512VL__": "avx512vl", "__AVX512CD__": "avx512cd", "__AVX2__": "avx2", "__AVX__": "avx",
               "__FMA__": "fma", "__F16C__": "f16c", "__BMI__": "bmi1", "__BMI2__": "bmi2", "__MOVBE__": "movbe",
               "__SSE4_2__": "sse4_2", "__SSE4_1__": "sse4_1", "__SSSE3__": "ssse3", "__POPCNT__": "popcnt"}


def multiple_of_16(n: int) -> int:
    """Channel counts of the C layout: multiples of 16 (one 512-bit vector of float32)."""
    return -(-n // 16) * 16


def cache_dir() -> Path:
    """Where built libraries (and the engine ranking, see `planner`) are kept."""
    if os.environ.get("SPEECHVQ_CACHE"):
        return Path(os.environ["SPEECHVQ_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "speechvq"


def default_march() -> str:
    """The -march the library is built for unless one is named: $SPEECHVQ_MARCH, else "native" (this CPU).

    Setting SPEECHVQ_MARCH=x86-64-v3 (say) builds and uses the AVX2 variant on an AVX-512 machine, to see
    what users of other CPUs get, or to share one build across a mixed cluster."""
    return os.environ.get("SPEECHVQ_MARCH") or "native"


def _compiler() -> Optional[str]:
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    return None


def _cpu_flags() -> set[str]:
    try:
        line = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return set()
    return set(line.split(":", 1)[1].split())


def _cpu_signature() -> str:
    # -march=native code is only valid on a machine with the same instruction set: key the cache by it
    return platform.machine() + " ".join(sorted(_cpu_flags()))


def compile_library(source: Path, output: Path, weights: str = "fp32", march: Optional[str] = None) -> None:
    """Compile and link `source` into the shared library `output` (float32 or half-precision weights).

    Raises:
        RuntimeError: no C compiler, or the compiler failed (its message included).
    """
    compiler = _compiler()
    if compiler is None:
        raise RuntimeError("no C compiler found (set CC, or install cc/gcc)")
    defines = ("-DSPEECHVQ_FP16_WEIGHTS",) if weights == "fp16" else ()
    with tempfile.TemporaryDirectory() as folder:
        obj = str(Path(folder) / "wavenet_step.o")
        for command in ([compiler, *COMPILE_FLAGS, f"-march={march or default_march()}", *defines, "-c", str(source),
                         "-o", obj], [compiler, *LINK_FLAGS, obj, "-o", str(output), "-lm"]):
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{compiler} failed: {result.stderr.strip()[:2000]}")


def build(weights: str = "fp32", march: Optional[str] = None) -> Path:
    """Compile the library (for float32 or half-precision weights, for `march`, default `default_march()`) if
    this machine's cache lacks it; return its path.

    Raises:
        RuntimeError: no C compiler, or the compiler failed (its message included).
    """
    compiler = _compiler()
    if compiler is None:
        raise RuntimeError("no C compiler found (set CC, or install cc/gcc)")
    march = march or default_march()
    key = hashlib.sha256(SOURCE.read_bytes())
    for part in (*COMPILE_FLAGS, *LINK_FLAGS, march, weights, compiler, _cpu_signature()):
        key.update(part.encode() + b"\0")
    target = cache_dir() / f"wavenet_step-{weights}-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        compile_library(SOURCE, Path(temporary), weights, march)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def load(weights: str = "fp32", march: Optional[str] = None) -> ctypes.CDLL:
    """The built library, loaded once per process (raises RuntimeError as `build` does)."""
    if weights not in NATIVE_PRECISIONS:
        raise ValueError(f"weights must be one of {', '.join(NATIVE_PRECISIONS)}, got {weights!r}")
    key = (weights, march or default_march())
    if key not in _library:
        try:
            library = ctypes.CDLL(str(build(*key)))
            library.run_block.restype = None
            library.speechvq_native_isa.restype = ctypes.c_char_p
            _library[key] = library
        except (RuntimeError, OSError) as error:
            _library[key] = RuntimeError(str(error))
    if isinstance(_library[key], Exception):
        raise _library[key]
    return _library[key]


def available(weights: str = "fp32", march: Optional[str] = None) -> bool:
    """Whether the C loop can be built and loaded here (the first call may compile it: about a second)."""
    try:
        load(weights, march)
        return True
    except RuntimeError:
        return False


def describe_target(march: Optional[str] = None) -> str:
    """What the build for `march` targets, e.g. "avx2-fma, 8 floats per vector, panels 1x8 2x4 3x3 4x2"
    (the library's own answer; loading it runs none of its vector code)."""
    try:
        return load("fp32", march).speechvq_native_isa().decode()
    except RuntimeError as error:
        return f"not built: {error}"


def runs_here(march: str) -> bool:
    """Whether code built with -march=`march` runs on this CPU: the instruction-set macros the compiler
    defines for it (AVX-512, AVX2, FMA, F16C, ...) are all among /proc/cpuinfo's flags."""
    if march == "native":
        return True
    compiler = _compiler()
    if compiler is None:
        return False
    result = subprocess.run([compiler, f"-march={march}", "-dM", "-E", "-x", "c", os.devnull], capture_output=True,
                            text=True)
    if result.returncode != 0:
        return False
    defined = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("#define ")}
    flags = _cpu_flags()
    return bool(flags) and all(flag in flags for macro, flag in _ISA_MACROS.items() if macro in defined)


def _pointer(array: Optional[np.ndarray]):
    return None if array is None else array.ctypes.data_as(ctypes.c_void_p)


class NativeRunner:
    """Runs blocks of generation steps with the C loop for the streams of one `generate` call.

    Args:
        packed: the packed decoder (padded here to multiples of 16).
        threads: worker threads; the streams are split evenly between them.
        weights: storage of the matrix weights, "fp32" or "fp16" (half the memory traffic; products and
            activations stay float32).
        march: the -march of the build to use (default `default_march()`).
    """

    def __init__(self, packed: PackedWaveNet, threads: int, weights: str = "fp32", march: Optional[str] = None):
        self.library = load(weights, march)
        self.packed = packed
        self.weights: PaddedWaveNet = pad_packed(packed, multiple_of_16)
        if weights == "fp16":  # the bits of IEEE halves, as the C side reads them
            for name in ("w_taps", "w_res", "w_skip", "w_hidden", "w_logits"):
                half = getattr(self.weights, name).astype(np.float16).view(np.uint16)
                setattr(self.weights, name, np.ascontiguousarray(half))
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads) if threads > 1 else None
        self.lag_table, self.lag_taps, self.lag_silence = None, 0, 0  # set_lag_table

    ring_stream_axis = 0  # of `ring`'s arrays: the stream's axis

    def ring(self, batch: int) -> np.ndarray:
        """Empty ring buffers for `batch` streams: float32 `[B, slots, 2H]` (H padded; stream-major, so threads
        never write to the same cache line)."""
        return np.zeros((batch, self.packed.ring_slots, 2 * self.weights.half), np.float32)

    def set_lag_table(self, table: np.ndarray, taps: int, silence: int) -> None:
        """Make the loop read the pitch-lag input itself (see `run`'s `lag_period`).

        Args:
            table: float32 `[taps * classes, R]`, the decoder's `lag_embedding` (tap j's row of class c at
                j * classes + c); taps: its tap count (odd); silence: the class read where a tap reads
                nothing (`WaveNet.lag_silence`).
        """
        padded = np.zeros((table.shape[0], self.weights.residual), np.float32)
        padded[:, :table.shape[1]] = table  # padded like every weight (its padding columns are 0)
        self.lag_table, self.lag_taps, self.lag_silence = padded, taps, silence

    def lag_history(self, batch: int, longest_period: int) -> np.ndarray:
        """An empty history of past classes for `batch` streams, int64 `[B, >= longest_period + taps]`: pass
        the same one to every `run` of a `generate` call (the loop writes each step's input into it)."""
        # rows of whole 64-byte lines: the streams of two threads never share one
        return np.zeros((batch, -(-(longest_period + self.lag_taps) // 8) * 8), np.int64)

    def run(self, n_steps: int, t0: int, hop: int, frame0: int, frames: np.ndarray, noise: np.ndarray,
            temperature: float, ring: np.ndarray, previous: np.ndarray, out: np.ndarray, logits: np.ndarray,
            teacher: np.ndarray, lag_period: Optional[np.ndarray] = None,
            lag_history: Optional[np.ndarray] = None) -> None:
        """Advance every stream by `n_steps` samples (arguments as for `kernel.run_block`; `ring` from `ring`).

        Args:
            frames: float32 `[F, B, L, G]` frame vectors (unpadded; F = 1: the same for every step).
            noise: float32 `[n_steps, B, Q]`, or empty for argmax; teacher: int64 `[B, n_steps]` or empty.
            out: int64 `[B, n_steps]` (written); logits: float32 `[n_steps, B, Q]` or empty (written).
            lag_period: with `set_lag_table`, int `[B, n_steps]` the pitch period of each step in samples (0:
                unvoiced), and lag_history (`lag_history`) the classes so far; None without the lag input.
        """
        w = self.weights
        batch = previous.shape[0]
        frames = np.ascontiguousarray(pad_gate_halves(frames, w.true_half, w.half), dtype=np.float32)
        out_block = np.empty((batch, n_steps), np.int64)
        noise_arg = np.ascontiguousarray(noise, np.float32) if temperature > 0 and noise.size else None
        teacher_arg = np.ascontiguousarray(teacher, np.int64) if teacher.size else None
        logits_arg = np.empty((n_steps, batch, w.true_classes), np.float32) if logits.size else None
        lag_table, period_arg, history_len = None, None, 0
        if lag_period is not None:
            if lag_history is None or lag_history.shape[1] <= int(lag_period.max(initial=0)) + self.lag_taps // 2:
                raise ValueError("the lag history must outlast the longest period (NativeRunner.lag_history)")
            lag_table, history_len = self.lag_table, lag_history.shape[1]
            period_arg = np.ascontiguousarray(lag_period, np.int64)
        per = -(-batch // self.threads)
        slices = [(lo, min(batch, lo + per)) for lo in range(0, batch, per)]
        scratch_size = w.residual * 2 + 4 * w.half + w.n_layers * w.half + 2 * w.skip + w.classes
        c_long = ctypes.c_long

        def call(bounds: tuple[int, int]) -> None:
            lo, hi = bounds
            scratch = np.empty((hi - lo) * scratch_size + 64, np.float32)
            self.library.run_block(
                c_long(lo), c_long(hi), c_long(batch), c_long(n_steps), c_long(t0), c_long(hop), c_long(frame0),
                c_long(frames.shape[0]), c_long(w.n_layers), c_long(w.residual), c_long(w.half), c_long(w.skip),
                c_long(w.true_classes), c_long(w.classes), c_long(ring.shape[1]), _pointer(self.packed.dilations),
                _pointer(self.packed.offsets), _pointer(w.embedding), _pointer(w.w_taps), _pointer(w.w_res),
                _pointer(w.b_res), _pointer(w.w_skip), _pointer(w.b_skip), _pointer(w.w_hidden),
                _pointer(w.b_hidden), _pointer(w.w_logits), _pointer(w.b_logits), _pointer(frames),
                _pointer(noise_arg), ctypes.c_float(temperature), _pointer(ring), _pointer(previous),
                _pointer(out_block), _pointer(logits_arg), _pointer(teacher_arg), _pointer(lag_table),
                c_long(self.lag_taps), c_long(self.lag_silence), _pointer(period_arg),
                _pointer(lag_history if lag_table is not None else None), c_long(history_len), _pointer(scratch))

        if self._pool is None or len(slices) == 1:
            for bounds in slices:
                call(bounds)
        else:
            list(self._pool.map(call, slices))
        out[:, :] = out_block
        if logits_arg is not None:
            logits[:] = logits_arg
