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


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def tiny_config() -> Config:
    return load_config("tiny")

