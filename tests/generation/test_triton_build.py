"""The GPU kernel builds with Triton's real compiler for the GPUs this project is lent (H100/H200, sm_90), here,
without one: the interpreter tests (test_engines.py) check what it computes, not that ptxas accepts it or that
a program's shared memory fits, which on a GPU would first show as a failed launch in a lease."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[2]

# Run apart from the tests' process: conftest turns Triton's interpreter on, which patches the language.
PROGRAM = """
import json, sys
from speechvq.assets import default_model_path
from speechvq.checkpoint import load_model
from speechvq.generation.packed import pack, pad_packed
from speechvq.generation.triton_steps import PRECISIONS, compile_ahead, power_of_two

decoder = load_model(default_model_path()).decoder
sizes = pad_packed(pack(decoder), power_of_two)
taps, history = decoder.lag_taps, 512  # the shipped model's pitch-lag input; periods up to 320 samples (50 Hz)
results = []
# what decoding the shipped model launches (noise) at both stream widths, each precision, the teacher-forced
# check, and a decoder without the pitch-lag input
for block_b, precision, noise, teacher, lag in [(16, "tf32", True, False, taps), (32, "tf32", True, False, taps),
                                               (16, "tf32x3", True, False, taps), (16, "ieee", True, False, taps),
                                               (16, "tf32x3", False, True, taps), (16, "tf32", True, False, 0)]:
    kernel = compile_ahead(sizes, block_b, precision, noise, teacher, capability=90, lag_taps=lag,
                           lag_history=history if lag else 1)
    results.append({"block_b": block_b, "precision": precision, "lag_taps": lag,
                    "shared": kernel.metadata.shared, "cubin": len(kernel.asm["cubin"])})
json.dump(results, sys.stdout)
"""


def test_the_generation_kernel_builds_for_sm90_and_fits_its_shared_memory():
    from speechvq.generation.triton_steps import SHARED_MEMORY_LIMIT_SM90

    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    kernels = json.loads(result.stdout)
    assert len(kernels) == 6 and kernels[0]["lag_taps"] == 5
    for kernel in kernels:
        assert kernel["cubin"] > 0, kernel
        assert 0 < kernel["shared"] <= SHARED_MEMORY_LIMIT_SM90, kernel


def test_compile_ahead_refuses_the_interpreter():
    # the tests' own process runs Triton's interpreter (conftest): compiling there would fail obscurely
    from speechvq.generation.triton_steps import compile_ahead

    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton's interpreter is off in this process")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        compile_ahead(None)
