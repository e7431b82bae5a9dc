"""Shared fixtures: every test is seeded, and `tiny_config` is the small model of the `tiny` preset."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from speechvq.config import Config, load_config


# The test models are tiny: one thread is as fast as two, and it keeps OpenMP from spin-waiting on a core
# that another process holds (seen here: a 2-thread step 100x slower while ffmpeg ran on the other core).
torch.set_num_threads(1)

# Without a GPU, Triton kernels run in Triton's interpreter (numpy), so the CPU tests check the triton engine too.
# It must be set before triton is first imported (torch does not import it).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True, scope="session")
def _private_build_cache(tmp_path_factory):
    """Built C libraries and the engine ranking go to a folder of this run, not the user's ~/.cache/speechvq."""
    saved = os.environ.get("SPEECHVQ_CACHE")
    os.environ["SPEECHVQ_CACHE"] = str(tmp_path_factory.mktemp("speechvq-cache"))
    yield
    if saved is None:
        os.environ.pop("SPEECHVQ_CACHE", None)
    else:
        os.environ["SPEECHVQ_CACHE"] = saved


# librosa is only a reference in two tests (our mel spectrogram, our YIN tracker), but its first melspectrogram
# in a fresh environment compiles its numba helpers: 13-36 s measured, on the one core the suite uses. A process
# started with the session compiles them on the idle second core into librosa's own cache, which those tests then
# load (about 1 s); they wait for it through the `librosa` fixture, so the two never compile side by side.
_LIBROSA_WARM_UP = (
    "import numpy as np, librosa; y = np.zeros(4000, np.float32); "
    "librosa.feature.melspectrogram(y=y, sr=16000, n_fft=400, hop_length=160, n_mels=80); "
    "librosa.yin(y, fmin=60.0, fmax=400.0, sr=16000, frame_length=1024, hop_length=160)"
)


@pytest.fixture(autouse=True, scope="session")
def _librosa_warm_up(request):
    if not any("librosa" in item.fixturenames for item in request.session.items):
        yield None  # no test of this run needs it
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-c", _LIBROSA_WARM_UP], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def librosa(_librosa_warm_up):
    """The librosa module, once the session's warm-up process has compiled its numba helpers (or failed: then
    the test compiles them itself and shows any error of librosa's)."""
    if _librosa_warm_up is not None:
        try:
            _librosa_warm_up.wait(timeout=300)
        except subprocess.TimeoutExpired:
            pass
    import librosa as module

    return module


@pytest.fixture(autouse=True)
def _deterministic_engine_choice(monkeypatch):
    """`--engine auto` ranks the CPU engines by timing them; in tests the timings are injected, so that which
    engine a test runs never depends on the machine's load: the preference order (native with half weights,
    native, numba, torch). tests/generation/test_planner.py times them for real."""
    from speechvq.generation import planner

    def preference(decoder, choice, threads, streams, march=None):
        return float(len(planner.CANDIDATES) - planner.CANDIDATES.index(choice))

    monkeypatch.setattr(planner, "measure_rate", preference)
    monkeypatch.setattr(planner, "_memory", {})


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def tiny_config() -> Config:
    return load_config("tiny")



@pytest.fixture
def corpus(tmp_path):
    """A tiny speaker-folder corpus (2 speakers x 5 utterances of 0.3 s) with its manifests, under tmp_path."""
    from speechvq.data.corpora import scan_corpus
    from speechvq.data.manifest import SplitSpec, write_splits
    from tests.helpers import make_folder_corpus

    make_folder_corpus(tmp_path / "corpus", speakers=2, utterances=5, seconds=0.3)
    write_splits(tmp_path / "manifests", scan_corpus("folder", tmp_path / "corpus").entries, SplitSpec(1, 1))
    return tmp_path


@pytest.fixture
def cuda_math_flags():
    """Restores cuDNN's and cuBLAS's process-wide settings (TF32, cudnn.benchmark; they exist without a GPU)
    after the test."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark = saved
