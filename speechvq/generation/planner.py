"""Which CPU engine `auto` uses: the one measured fastest on this machine, for this decoder, cached ("wisdom").

Availability says nothing about speed: the C loop built for AVX-512 was the fastest engine on the machine it
was tuned on and five times slower than numba on an AVX2 machine. So, as FFTW's planner keeps wisdom and
`torch.backends.cudnn.benchmark` times convolution algorithms per shape, the first `auto` decode on a machine
times every CPU engine that can run here (native with half or float32 weights, numba, fused torch) for a
fraction of a second each on the decoder's real shape, at the thread count and stream width to be used, and
keeps the ranking in `<cache>/engine-ranking.json` (the cache folder of `native.cache_dir`). Later processes
read it. An entry is keyed by the CPU (model name and instruction-set flags), the package version, the C and
numba sources, the decoder's shape, the thread count, the width (one stream per thread, or a wide batch),
the precision allowed and the C target. A corrupt file is ignored and rewritten; entries of other package
versions are dropped when it is rewritten; an entry naming an engine that cannot run now is measured again.
Processes that need a missing entry at once (parallel evaluations) do not all time the engines on the same
cores: one measures under a file lock (`engine-ranking.json.lock`), the others wait and read its answer.

    choice = choose(decoder, threads=2, precision="reduced", streams=8)   # e.g. Choice("native", "fp16")
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import filelock
import torch

from ..atomic import atomic_path
from ..models.wavenet import WaveNet
from ..version import __version__

FORMAT = 1
FILE_NAME = "engine-ranking.json"
MEASURE_SECONDS = 0.2  # timed generation per candidate, after a warm-up call
WIDE_STREAMS_PER_THREAD = 4  # the width a "wide" batch is measured at (chunked and many-file decoding)


@dataclass(frozen=True)
class Choice:
    """A CPU engine and the precision it runs at (the engine's own name: "fp16"/"fp32" for native, "full" else)."""

    engine: str
    precision: str


# Ties and near-ties go to the earlier: the order the engines were preferred in before measurement.
CANDIDATES = (Choice("native", "fp16"), Choice("native", "fp32"), Choice("numba", "full"), Choice("torch", "full"))


def candidates(precision: str, march: Optional[str] = None) -> list[Choice]:
    """The CPU engines that can run here at `precision` ("full": float32 accuracy only; "reduced": half-precision
    weights allowed too), in preference order."""
    from . import native
    from .engine import numba_available

    runnable = []
    for choice in CANDIDATES:
        if choice.engine == "native":
            if (choice.precision == "fp16" and precision == "full") or not native.available(choice.precision, march):
                continue
        if choice.engine == "numba" and not numba_available():
            continue
        runnable.append(choice)
    return runnable


def width(streams: int, threads: int) -> int:
    """The stream count a batch of `streams` on `threads` threads is measured at: one stream per thread for
    narrow batches, WIDE_STREAMS_PER_THREAD per thread for batches of two or more per thread."""
    return threads if streams < 2 * threads else WIDE_STREAMS_PER_THREAD * threads


def measure_rate(decoder: WaveNet, choice: Choice, threads: int, streams: int, march: Optional[str] = None,
                 seconds: float = MEASURE_SECONDS) -> float:
    """Samples per second (all streams together) that `choice` generates for this decoder.

    One warm-up call (it compiles or loads the engine), a short call to estimate the rate, then a call sized to
    last about `seconds`; random per-layer conditioning (speed does not depend on the values).
    """
    from .engine import GenerationEngine

    engine = GenerationEngine(decoder, choice.engine, threads, precision=choice.precision, march=march)
    hop, config = decoder.hop_length, decoder.config
    generator = torch.Generator().manual_seed(0)

    def timed(n_samples: int) -> float:
        conditioning = 0.1 * torch.randn(streams, -(-n_samples // hop), config.n_layers, config.gate_channels,
                                         generator=generator)
        # a voiced 160 Hz throughout for a decoder with the pitch-lag input: its lag vectors and pieces cost time
        period = torch.full(conditioning.shape[:2], 100) if decoder.lag_taps else None
        start = time.perf_counter()
        engine.generate(n_samples, temperature=1.0, generator=generator, conditioning=conditioning, period=period)
        return time.perf_counter() - start

    timed(hop)
    probe = 4 * hop
    elapsed = timed(probe)
    n_samples = max(hop, min(64 * hop * 1024, int(probe * seconds / max(elapsed, 1e-6))))
    return streams * n_samples / timed(n_samples)


def cache_file() -> Path:
    """The ranking file, beside the built C libraries."""
    from .native import cache_dir

    return cache_dir() / FILE_NAME


@functools.lru_cache(maxsize=None)
def _sources_digest() -> str:
    # a changed C loop or numba loop can change the ranking even within one package version
    from . import native

    digest = hashlib.sha256(native.SOURCE.read_bytes())
    digest.update(Path(__file__).with_name("kernel.py").read_bytes())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def cpu_description() -> dict:
    """This CPU as a JSON-able dict {"model", "machine", "flags"}: its model name, architecture, and a 16-hex
    digest of its instruction-set flags. Two machines with equal descriptions rank the engines alike and run
    the same native build; float results (hence sampled audio) may differ between unequal ones."""
    from .native import _cpu_flags

    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    except OSError:
        pass
    flags = " ".join(sorted(_cpu_flags()))
    return {"model": model or platform.processor() or platform.machine(), "machine": platform.machine(),
            "flags": hashlib.sha256(flags.encode()).hexdigest()[:16]}


def entry_key(decoder: WaveNet, threads: int, streams: int, precision: str, march: Optional[str]) -> dict:
    """What a ranking depends on (see the module docstring), as a JSON-able dict."""
    from .native import default_march

    c = decoder.config
    return {"cpu": dict(cpu_description()), "version": __version__, "sources": _sources_digest(),
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "decoder": {"layers": c.n_layers, "dilations": list(c.dilations), "residual": c.residual_channels,
                        "gate": c.gate_channels, "skip": c.skip_channels, "classes": decoder.classes,
                        "hop": decoder.hop_length, "lag_taps": decoder.lag_taps},
            "threads": threads, "streams": streams, "precision": precision, "march": march or default_march()}


def _read(path: Path) -> dict:
    """The cache's entries, or none when the file is missing, unreadable or not ours."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def _ranking(entry, runnable: list[Choice]) -> Optional[list[Choice]]:
    """An entry's ranking if it is well formed and names only engines that can run now, else None."""
    try:
        ranking = [Choice(str(engine), str(precision)) for engine, precision in entry["ranking"]]
    except (KeyError, TypeError, ValueError):
        return None
    return ranking if ranking and sorted(ranking, key=str) == sorted(runnable, key=str) else None


_memory: dict[str, list[Choice]] = {}  # this process's rankings by key: the file is read once per key


def rank(decoder: WaveNet, threads: int, streams: int, precision: str = "reduced", march: Optional[str] = None,
         measure: Optional[Callable[..., float]] = None, progress: Optional[Callable[[str], None]] = None
         ) -> list[Choice]:
    """The CPU engines that can run here, fastest first, from the cache or measured now (and cached).

    Args:
        decoder: a CPU WaveNet of kernel size 2 (its shape is what is timed).
        threads: threads the engines will use; streams: the batch width to be generated (see `width`).
        precision: "full" or "reduced" (see `candidates`); march: the C target (None: `native.default_march`).
        measure: `measure_rate`'s stand-in (tests inject timings); progress: told, in one line, when a
            measurement starts (it takes a second or two, plus numba's first compile).
    """
    runnable = candidates(precision, march)
    key_fields = entry_key(decoder, threads, width(streams, threads), precision, march)
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:24]
    if key in _memory and _memory[key] == [c for c in _memory[key] if c in runnable]:
        return _memory[key]
    path = cache_file()
    ranking = _ranking(_read(path).get(key), runnable)
    if ranking is None and len(runnable) == 1:
        ranking = runnable  # nothing to choose between: measure nothing, cache nothing
    if ranking is None:
        # Processes started together (the evaluations of a GPU session, parallel decodes) would each time the
        # engines while the others load the same cores, ranking by noise, and each rewrite the file with only its
        # own entry: one measures while the others wait for its answer.
        with _measurement_lock(path):
            entries = _read(path)
            ranking = _ranking(entries.get(key), runnable)
            if ranking is None:
                if progress is not None:
                    progress(f"timing the CPU engines once for this machine and decoder (cached in {path})")
                measure = measure or measure_rate
                rates = {choice: measure(decoder, choice, threads, key_fields["streams"], march)
                         for choice in runnable}
                ranking = sorted(runnable, key=lambda choice: -rates[choice])  # stable: ties keep preference order
                entries = {k: v for k, v in entries.items()
                           if isinstance(v, dict) and v.get("key", {}).get("version") == __version__}
                entries[key] = {"key": key_fields, "ranking": [[c.engine, c.precision] for c in ranking],
                                "samples_per_s": {f"{c.engine}/{c.precision}": round(rates[c], 1) for c in ranking},
                                "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
                _write(path, entries)
    _memory[key] = ranking
    return ranking


@contextlib.contextmanager
def _measurement_lock(path: Path) -> Iterator[None]:
    """Hold `path`.lock (filelock: an OS file lock, released if the holder dies) while measuring; a cache
    folder that cannot hold the lock (read-only, say) measures unlocked, as before."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(path) + ".lock")
        lock.acquire()
    except OSError:
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _write(path: Path, entries: dict) -> None:
    """Rewrite the cache (temporary file + rename); a cache that cannot be written is no error."""
    try:
        with atomic_path(path) as temporary:
            temporary.write_text(json.dumps({"format": FORMAT, "entries": entries}, indent=1, sort_keys=True))
    except OSError:
        pass


def choose(decoder: WaveNet, threads: int, streams: int, precision: str = "reduced", march: Optional[str] = None,
           measure: Optional[Callable[..., float]] = None,
           progress: Optional[Callable[[str], None]] = None) -> Choice:
    """The fastest CPU engine here for this decoder, threads and width (see `rank`)."""
    return rank(decoder, threads, streams, precision, march, measure, progress)[0]


def describe(ranking: list[Choice]) -> str:
    """A ranking as one line, e.g. "native/fp16 > native/fp32 > numba/full > torch/full"."""
    return " > ".join(f"{c.engine}/{c.precision}" for c in ranking)


__all__ = ["CANDIDATES", "Choice", "cache_file", "candidates", "choose", "cpu_description", "describe", "entry_key",
           "measure_rate", "rank", "width"]
