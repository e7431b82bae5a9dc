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

sizes = pad_packed(pack(load_model(default_model_path()).decoder), power_of_two)
results = []
# what decoding launches (noise) at both stream widths, each precision, and the teacher-forced check
for block_b, precision, noise, teacher in [(16, "tf32", True, False), (32, "tf32", True, False),
                                          (16, "tf32x3", True, False), (16, "ieee", True, False),
                                          (16, "tf32x3", False, True)]:
    kernel = compile_ahead(sizes, block_b, precision, noise, teacher, capability=90)
    results.append({"block_b": block_b, "precision": precision, "shared": kernel.metadata.shared,
                    "cubin": len(kernel.asm["cubin"])})
json.dump(results, sys.stdout)
"""


def test_the_generation_kernel_builds_for_sm90_and_fits_its_shared_memory():
    from speechvq.generation.triton_steps import SHARED_MEMORY_LIMIT_SM90

    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    kernels = json.loads(result.stdout)
    assert len(kernels) == 5
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
