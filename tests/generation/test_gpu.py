"""The GPU paths on a real CUDA device: CUDA-graph capture, the compiled Triton kernel, and noise drawn on the
device. Skipped, with the reason in the summary, where there is no CUDA device (the CPU suite checks the same
engines eagerly and in Triton's interpreter: test_engines.py)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from speechvq.generation import GenerationEngine
from speechvq.models.wavenet import frame_noise
from tests.generation.test_engines import CONDITIONING, conditioning, decoder, lag_decoder, lag_periods

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")]


@pytest.fixture(autouse=True)
def exact_float32(cuda_math_flags):
    """float32 arithmetic in cuDNN and cuBLAS: their TF32 default (10-bit mantissas) put the reference 1.0e-4 to
    1.3e-4 from both engines on the lent H200 (2026-12-04), whose largest differences from it were equal to 2e-8."""
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False


def exact_logits(model, inputs, local, speaker, period=None):
    """The reference's teacher-forced logits computed in float64 (float32 `[B, classes, T]`): what an engine is
    measured against, whatever cuDNN's algorithm for the float32 convolutions."""
    exact = copy.deepcopy(model).double()
    with torch.no_grad():
        return exact(inputs, None if local is None else local.double(),
                     None if speaker is None else speaker.double(), period=period).float()


def cuda_decoder(kind: str):
    model = decoder(*CONDITIONING[kind]).cuda()
    local, speaker = conditioning(model, 3, 1200)
    return model, (None if local is None else local.cuda()), (None if speaker is None else speaker.cuda())


@pytest.mark.parametrize("engine, precision, tolerance", [("graph", "full", 1e-4), ("triton", "full", 1e-4),
                                                          ("triton", "reduced", 2e-3)])
@pytest.mark.parametrize("kind", ["speaker", "speaker+local"])
def test_device_engines_match_the_reference(engine, precision, tolerance, kind):
    model, local, speaker = cuda_decoder(kind)
    n_samples = 1200
    inputs = torch.randint(0, 256, (3, n_samples), generator=torch.Generator().manual_seed(2)).cuda()
    reference = exact_logits(model, inputs, local, speaker)
    fast = GenerationEngine(model, engine, precision=precision)
    _, logits = fast.generate(n_samples, local, speaker, teacher=inputs)
    assert (logits.cuda() - reference).abs().max().item() <= tolerance
    if precision == "full":  # the same draws give the same samples
        expected = model.generate(n_samples, local, speaker, generator=torch.Generator().manual_seed(7))
        classes, _ = fast.generate(n_samples, local, speaker, generator=torch.Generator().manual_seed(7))
        assert torch.equal(classes.cpu(), expected.cpu())



@pytest.mark.parametrize("engine", ["graph", "triton"])
def test_device_engines_carry_the_pitch_lag_input(engine):
    # the shipped model reads it (five taps); on CUDA the ring of past classes lives in device memory and the
    # kernel's write of a step's input must be seen by its taps' reads
    model = lag_decoder().cuda()
    n_samples = 1500
    local, speaker = (t.cuda() for t in conditioning(model, 3, n_samples))
    period = lag_periods(3, -(-n_samples // model.hop_length))
    inputs = torch.randint(0, 256, (3, n_samples), generator=torch.Generator().manual_seed(2)).cuda()
    reference = exact_logits(model, inputs, local, speaker, period=period.cuda())
    fast = GenerationEngine(model, engine, precision="full")
    _, logits = fast.generate(n_samples, local, speaker, teacher=inputs, period=period)
    assert (logits.cuda() - reference).abs().max().item() <= 1e-4
    expected = model.generate(n_samples, local, speaker, generator=torch.Generator().manual_seed(7), period=period)
    classes, _ = fast.generate(n_samples, local, speaker, generator=torch.Generator().manual_seed(7), period=period)
    assert torch.equal(classes.cpu(), expected.cpu())

def test_cuda_graph_is_captured_once_and_replayed():
    model, local, speaker = cuda_decoder("speaker+local")
    engine = GenerationEngine(model, "graph")
    first, _ = engine.generate(600, local, speaker, generator=torch.Generator().manual_seed(3))
    runners = dict(engine._graph_runners)
    again, _ = engine.generate(600, local, speaker, generator=torch.Generator().manual_seed(3))
    assert engine._graph_runners == runners and len(runners) == 1  # the same captured graph, reset and replayed
    assert torch.equal(first, again)


def test_noise_drawn_on_the_device_is_standard_gumbel_and_reproducible():
    generator = torch.Generator(device="cuda").manual_seed(0)
    noise = frame_noise(generator, 64, 8, 256, device="cuda")
    assert noise.device.type == "cuda" and noise.shape == (64, 8, 256)
    euler_gamma = 0.5772156649
    assert abs(noise.mean().item() - euler_gamma) < 0.02 and abs(noise.std().item() - math.pi / math.sqrt(6)) < 0.02
    again = frame_noise(torch.Generator(device="cuda").manual_seed(0), 64, 8, 256, device="cuda")
    assert torch.equal(noise, again)
    model, local, speaker = cuda_decoder("speaker")
    reference = model.generate(640, local, speaker, generator=torch.Generator(device="cuda").manual_seed(5))
    fast, _ = GenerationEngine(model, "triton", precision="full").generate(
        640, local, speaker, generator=torch.Generator(device="cuda").manual_seed(5))
    assert torch.equal(fast.cpu(), reference.cpu())  # the same device draws on both paths
