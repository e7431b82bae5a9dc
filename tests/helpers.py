"""Small synthetic signals for tests (no corpus or download is ever needed), and the tools run as scripts."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Optional

import torch

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def load_tool(name: str):
    """Import tools/<name>.py as a module (the tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def run_script(path: Path, *argv, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Run the Python script `path` as `python path argv...` would, but in this process, from the repository root.

    Each tool run as a subprocess paid about 4 s of imports (torch, scipy, librosa) that this process has already
    paid. As for a script: `__name__` is "__main__", sys.argv is the call's and the script's folder leads sys.path;
    stdout and stderr are captured, `env` is set for the call, and the working directory, sys.argv, sys.path,
    the environment and torch's thread count are restored afterwards. An exception the script does not handle
    propagates (the test fails with its traceback); its exit status is SystemExit's (argparse's 2 included).

    Returns:
        what subprocess.run(..., capture_output=True, text=True) would: args, returncode, stdout, stderr.
    """
    argv = [str(arg) for arg in argv]
    saved = (os.getcwd(), sys.argv, sys.path[:], dict(os.environ), torch.get_num_threads())
    stdout, stderr = io.StringIO(), io.StringIO()
    returncode = 0
    try:
        os.chdir(TOOLS.parent)
        os.environ.update(env or {})
        sys.argv = [str(path), *argv]
        sys.path.insert(0, str(Path(path).parent))
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                runpy.run_path(str(path), run_name="__main__")
            except SystemExit as exit_:
                if isinstance(exit_.code, str):  # as the interpreter does: the message on stderr, status 1
                    print(exit_.code, file=sys.stderr)
                returncode = 1 if isinstance(exit_.code, str) else int(exit_.code or 0)
    finally:
        cwd, sys.argv, sys.path[:], environ, threads = saved
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess([sys.executable, str(path), *argv], returncode, stdout.getvalue(),
                                       stderr.getvalue())


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


def tiny_codec(seed: int = 0):
    """A tiny untrained model with speakers "a" and "b" and code statistics measured on six vowel-like signals
    (so its files are entropy-coded, markov1), as a `speechvq.codec.Codec`."""
    from speechvq.codec import Codec, measure_code_statistics
    from speechvq.config import load_config
    from speechvq.models import SpeechVQ

    torch.manual_seed(seed)
    model = SpeechVQ(load_config("tiny").model, speakers=["a", "b"]).eval()
    statistics = measure_code_statistics(Codec(model), [voiced_signal(4000, seed=s) for s in range(6)])
    return Codec(model, statistics)


def make_folder_corpus(root, speakers: int = 3, utterances: int = 4, seconds: float = 0.5,
                       sample_rate: int = 16000) -> list:
    """Write a speaker-folder corpus of vowel-like WAVs (each speaker its own pitch and level).

    Returns the written paths.
    """
    import soundfile
    from pathlib import Path

    paths = []
    for s in range(speakers):
        folder = Path(root) / f"spk{s}"
        folder.mkdir(parents=True, exist_ok=True)
        for u in range(utterances):
            wav = voiced_signal(int(seconds * sample_rate), sample_rate, f0_hz=100.0 + 60.0 * s + 7.0 * u, seed=u)
            path = folder / f"utt{u:02d}.wav"
            soundfile.write(path, (wav * (0.3 + 0.5 * s / max(1, speakers - 1))).numpy(), sample_rate)
            paths.append(path)
    return paths


def check_mutations_decode_or_refuse(data: bytes, read, same) -> None:
    """Property test: every file made from `data` by up to four byte edits and a truncation is either read
    by `read` into something `same` accepts (the original content), or refused with a SpeechVQError."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    from speechvq.errors import SpeechVQError

    @given(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), min_size=1, max_size=4),
           st.integers(0, len(data)))
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def check(edits, cut):
        mutated = bytearray(data)
        for position, value in edits:
            mutated[position] = value
        mutated = bytes(mutated[:cut]) if cut < len(data) else bytes(mutated)
        try:
            result = read(mutated)
        except SpeechVQError:
            return
        assert same(result)

    check()
