"""The C loop built for each instruction set this machine can run (AVX-512 where present, AVX2, baseline x86-64)
equals the reference; its threads split the streams without changing a sample; loading it changes no
floating-point mode of the process; and its register panels do not spill."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechvq.config import DecoderConfig
from speechvq.generation import GenerationEngine, native
from speechvq.models.wavenet import WaveNet
from tests.helpers import load_tool

HOP, LOCAL, SPEAKER = 8, 6, 5
# "native": this CPU's own; x86-64-v3: AVX2 + FMA + F16C (16 vector registers); x86-64: SSE2 only (generic).
TARGETS = ["native", "x86-64-v3", "x86-64"]
EXPECTED_ISA = {"x86-64-v3": "avx2-fma", "x86-64": "generic-128"}


def target_params():
    params = []
    for march in TARGETS:
        runs = native.runs_here(march)
        params.append(pytest.param(march, marks=pytest.mark.skipif(
            not runs, reason=f"code built with -march={march} does not run on this CPU (or no C compiler)")))
    return params


def odd_decoder() -> WaveNet:
    """Channel counts that are not multiples of the panel widths, so that padding, partial blocks of columns
    and the narrow panels all run: residual 40 (padded to 48), gate 96 (half 48: taps of 192 columns = three
    blocks of 64), skip 72 (padded to 80: a block of 64 and one of 16), 256 classes."""
    torch.manual_seed(0)
    config = DecoderConfig(n_layers=4, dilation_cycle=4, kernel_size=2, residual_channels=40, gate_channels=96,
                           skip_channels=72, cond_channels=10, cond_layers=1)
    return WaveNet(config, classes=256, hop_length=HOP, local_channels=LOCAL, global_channels=SPEAKER).eval()


def conditioning(model: WaveNet, batch: int, n_samples: int):
    generator = torch.Generator().manual_seed(1)
    local = torch.randn(batch, LOCAL, -(-n_samples // HOP), generator=generator)
    speaker = torch.randn(batch, SPEAKER, generator=generator)
    return local, speaker


@pytest.mark.parametrize("march", target_params())
def test_each_target_builds_the_variant_for_its_instruction_set(march):
    description = native.describe_target(march)
    if march in EXPECTED_ISA:
        assert description.startswith(EXPECTED_ISA[march])
    elif "avx512f" in native._cpu_flags():
        assert description.startswith("avx512")
    assert "panels 1x" in description


# 1 to 6 streams: every panel height (1-4) and a group of four followed by one of one and of two
@pytest.mark.parametrize("streams", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("march", target_params())
def test_teacher_forced_logits_of_every_target_match_the_reference(march, streams):
    model = odd_decoder()
    n_samples = 300
    local, speaker = conditioning(model, streams, n_samples)
    inputs = torch.randint(0, 256, (streams, n_samples), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = model(inputs, local, speaker)
    engine = GenerationEngine(model, "native", threads=1, march=march)
    _, logits = engine.generate(n_samples, local, speaker, teacher=inputs)
    assert (logits - reference).abs().max().item() <= 1e-4


@pytest.mark.parametrize("temperature", [1.0, 0.0])
@pytest.mark.parametrize("march", target_params())
def test_samples_of_every_target_equal_the_reference_for_the_same_draws(march, temperature):
    model = odd_decoder()
    n_samples = 800
    local, speaker = conditioning(model, 5, n_samples)
    reference = model.generate(n_samples, local, speaker, temperature=temperature,
                               generator=torch.Generator().manual_seed(7))
    engine = GenerationEngine(model, "native", threads=1, march=march)
    fast, _ = engine.generate(n_samples, local, speaker, temperature=temperature,
                              generator=torch.Generator().manual_seed(7))
    assert torch.equal(fast, reference)


@pytest.mark.parametrize("march", target_params())
def test_half_precision_weights_where_the_target_converts_halves(march):
    model = odd_decoder()
    n_samples = 300
    local, speaker = conditioning(model, 3, n_samples)
    inputs = torch.randint(0, 256, (3, n_samples), generator=torch.Generator().manual_seed(2))
    if march == "x86-64":  # SSE2 has no half-to-float conversion: the build says so, "reduced" uses float32
        with pytest.raises(RuntimeError, match="half-precision weights need"):
            native.load("fp16", march)
        assert GenerationEngine(model, "native", precision="reduced", march=march).precision == "fp32"
        return
    with torch.no_grad():
        reference = model(inputs, local, speaker)
    engine = GenerationEngine(model, "native", threads=1, precision="fp16", march=march)
    _, logits = engine.generate(n_samples, local, speaker, teacher=inputs)
    error = (logits - reference).abs().max().item()
    assert 1e-6 < error <= 1e-3  # halves really used, and close


@pytest.mark.parametrize("engine_name", ["native", "numba"])
def test_two_threads_give_the_samples_of_one(engine_name):
    # five streams split 3 + 2 between the threads: each thread's slice keeps its own ring buffers and
    # previous classes, and no sample depends on which thread ran it
    model = odd_decoder()
    n_samples = 600
    local, speaker = conditioning(model, 5, n_samples)
    results = []
    for threads in (1, 2):
        engine = GenerationEngine(model, engine_name, threads=threads)
        classes, _ = engine.generate(n_samples, local, speaker, generator=torch.Generator().manual_seed(5))
        results.append(classes)
        if engine_name == "native":
            assert (engine._cpu_runner()._pool is not None) == (threads == 2)  # two slices: the pool runs them
    reference = model.generate(n_samples, local, speaker, generator=torch.Generator().manual_seed(5))
    assert torch.equal(results[1], results[0]) and torch.equal(results[0], reference)


def test_two_threads_teacher_forced_logits_match_the_reference():
    model = odd_decoder()
    n_samples = 300
    local, speaker = conditioning(model, 5, n_samples)
    inputs = torch.randint(0, 256, (5, n_samples), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = model(inputs, local, speaker)
    _, logits = GenerationEngine(model, "native", threads=2).generate(n_samples, local, speaker, teacher=inputs)
    assert (logits - reference).abs().max().item() <= 1e-4


def test_loading_and_running_the_library_leaves_subnormal_floats_alone():
    # -ffast-math at link time made GCC < 13 add crtfastmath.o, which set flush-to-zero for the whole process
    model = odd_decoder()
    local, speaker = conditioning(model, 2, 100)
    for march in [m for m in TARGETS if native.runs_here(m)]:
        for precision in ("fp32", "fp16"):
            if native.available(precision, march):
                GenerationEngine(model, "native", precision=precision, march=march).generate(100, local, speaker)
    assert np.float32(1e-40) * np.float32(1.0) != 0
    assert torch.tensor(1e-40, dtype=torch.float32).mul(1.0).item() != 0


def test_a_fresh_process_keeps_subnormals_after_a_native_decode(tmp_path):
    # the same in a new interpreter, where nothing else could have set or reset the floating-point mode first
    script = ("import numpy as np, torch\n"
              "from speechvq.generation import GenerationEngine\n"
              "from tests.generation.test_native import odd_decoder, conditioning\n"
              "model = odd_decoder(); local, speaker = conditioning(model, 1, 64)\n"
              "GenerationEngine(model, 'native', precision='reduced').generate(64, local, speaker)\n"
              "print(np.float32(1e-40) * np.float32(1.0) != 0)\n")
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def _gcc() -> bool:
    compiler = native._compiler()
    if compiler is None:
        return False
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    return "gcc" in version.lower() or "free software foundation" in version.lower()


@pytest.mark.skipif(shutil.which("objdump") is None or not _gcc(),
                    reason="needs objdump and GCC (the register budget of the panels is checked on GCC's output)")
@pytest.mark.parametrize("march, weights", [("native", "fp32"), ("native", "fp16"), ("x86-64-v3", "fp32"),
                                            ("x86-64-v3", "fp16"), ("x86-64", "fp32")])  # x86-64: no halves
def test_register_panels_do_not_spill(march, weights):
    if not native.runs_here(march):
        pytest.skip(f"-march={march} is not for this CPU")
    loops = load_tool("asm_report").report(march, weights, native.SOURCE)
    assert len(loops) == 8  # panels of 1-4 streams, wide and narrow
    for loop in loops:
        assert loop.multiply_adds >= 1, loop
        assert loop.stack_accesses == 0, loop
