"""Shared fixtures: every test is seeded, and `tiny_config` is the small model of the `tiny` preset."""

from __future__ import annotations

import os
import random

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
