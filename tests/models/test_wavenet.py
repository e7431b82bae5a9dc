"""WaveNet: incremental steps equal the teacher-forced pass; causality; receptive field; sampling."""

from __future__ import annotations

import pytest
import torch

from speechvq.config import DecoderConfig
from speechvq.models.wavenet import WaveNet, frame_noise, sample_logits

HOP = 8
LOCAL, GLOBAL = 6, 5
CONDITIONING = {"none": (0, 0), "speaker": (0, GLOBAL), "speaker+local": (LOCAL, GLOBAL), "local": (LOCAL, 0)}


def make_wavenet(local: int, speaker: int, kernel_size: int = 2) -> WaveNet:
    config = DecoderConfig(n_layers=6, dilation_cycle=3, kernel_size=kernel_size, residual_channels=12,
                           gate_channels=16, skip_channels=20, cond_channels=10, cond_layers=1)
    return WaveNet(config, classes=256, hop_length=HOP, local_channels=local, global_channels=speaker).eval()


def make_inputs(model: WaveNet, batch: int, n_samples: int):
    inputs = torch.randint(0, 256, (batch, n_samples))
    local = torch.randn(batch, LOCAL, -(-n_samples // HOP)) if model.local_channels else None
    speaker = torch.randn(batch, GLOBAL) if model.global_channels else None
    return inputs, local, speaker


def run_steps(model: WaveNet, inputs, local, speaker) -> torch.Tensor:
    """Feed the true previous samples through `step` and collect the logits: [B, classes, T]."""
    cond = model.layer_conditioning(local, speaker)
    state = model.init_state(inputs.shape[0])
    logits = []
    for t in range(inputs.shape[1]):
        frame = None if cond is None else cond[:, min(t // HOP, cond.shape[1] - 1)]
        step_logits, state = model.step(inputs[:, t], frame, state)
        logits.append(step_logits)
    return torch.stack(logits, dim=2)


@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("conditioning", list(CONDITIONING))
def test_step_matches_teacher_forced_forward(conditioning, kernel_size):
    model = make_wavenet(*CONDITIONING[conditioning], kernel_size=kernel_size)
    n_samples = 2 * model.receptive_field + 3  # wraps every ring buffer and crosses many frames
    inputs, local, speaker = make_inputs(model, batch=3, n_samples=n_samples)
    with torch.no_grad():
        teacher = model(inputs, local, speaker)
        incremental = run_steps(model, inputs, local, speaker)
    assert teacher.shape == (3, 256, n_samples)
    assert (teacher - incremental).abs().max().item() <= 1e-4


def test_causality():
    model = make_wavenet(LOCAL, GLOBAL)
    inputs, local, speaker = make_inputs(model, batch=2, n_samples=80)
    changed = inputs.clone()
    cut = 37
    changed[:, cut:] = torch.randint(0, 256, (2, 80 - cut))
    with torch.no_grad():
        a, b = model(inputs, local, speaker), model(changed, local, speaker)
    torch.testing.assert_close(a[..., :cut], b[..., :cut], rtol=0, atol=0)
    assert not torch.allclose(a[..., cut:], b[..., cut:])


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_receptive_field_matches_formula(kernel_size):
    model = make_wavenet(0, 0, kernel_size=kernel_size)
    dilations = model.config.dilations
    assert model.receptive_field == (kernel_size - 1) * sum(dilations) + 1
    field = model.receptive_field
    n_samples = field + 20
    t = n_samples - 1
    inputs, _, _ = make_inputs(model, batch=1, n_samples=n_samples)
    with torch.no_grad():
        base = model(inputs)
        for position, expect_change in [(t - field, False), (t - field + 1, True), (t, True)]:
            probe = inputs.clone()
            probe[0, position] = (probe[0, position] + 128) % 256
            changed = not torch.equal(model(probe)[..., t], base[..., t])
            assert changed == expect_change, f"input {t - position} samples back"


def test_greedy_generation_equals_teacher_forced_argmax():
    # Generation feeds each sample back; teacher forcing on that very output must pick the same classes.
    model = make_wavenet(LOCAL, GLOBAL)
    _, local, speaker = make_inputs(model, batch=2, n_samples=60)
    generated = model.generate(60, local=local, speaker=speaker, temperature=0.0)
    inputs = torch.cat([torch.full((2, 1), 128), generated[:, :-1]], dim=1)
    with torch.no_grad():
        logits = model(inputs, local, speaker)
    assert torch.equal(logits.argmax(dim=1), generated)


def test_sampling_is_reproducible_and_batched_streams_are_independent():
    model = make_wavenet(LOCAL, GLOBAL)
    _, local, speaker = make_inputs(model, batch=2, n_samples=40)
    first = model.generate(40, local=local, speaker=speaker, generator=torch.Generator().manual_seed(3))
    again = model.generate(40, local=local, speaker=speaker, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, again)
    assert first.min() >= 0 and first.max() < 256
    # Stream 0 alone, argmax, equals stream 0 of the batch, argmax.
    both = model.generate(40, local=local, speaker=speaker, temperature=0.0)
    alone = model.generate(40, local=local[:1], speaker=speaker[:1], temperature=0.0)
    assert torch.equal(both[:1], alone)


def test_generate_reports_progress():
    model = make_wavenet(LOCAL, 0)
    _, local, _ = make_inputs(model, batch=1, n_samples=21)
    seen = []
    model.generate(21, local=local, progress=seen.append)
    assert sum(seen) == 21


def test_sample_logits_temperature():
    logits = torch.tensor([[0.0, 5.0, 0.0], [3.0, 0.0, 0.0]])
    assert sample_logits(logits, 0.0).tolist() == [1, 0]
    generator = torch.Generator().manual_seed(0)
    noise = frame_noise(generator, 4000, 2, 3)
    draws = torch.stack([sample_logits(logits, 1.0, noise[i]) for i in range(4000)])
    # P(class 1 | row 0) = e^5 / (e^5 + 2) = 0.9867; P(class 0 | row 1) = e^3 / (e^3 + 2) = 0.9094
    assert abs((draws[:, 0] == 1).float().mean().item() - 0.9867) < 0.01
    assert abs((draws[:, 1] == 0).float().mean().item() - 0.9094) < 0.02
    cold = torch.stack([sample_logits(logits, 0.05, noise[i]) for i in range(500)])
    assert (cold[:, 0] == 1).all()
    with pytest.raises(ValueError):
        sample_logits(logits, -1.0)
    with pytest.raises(ValueError, match="noise"):
        sample_logits(logits, 1.0)


def test_conditioning_must_match_the_model():
    model = make_wavenet(LOCAL, 0)
    inputs, local, _ = make_inputs(model, batch=1, n_samples=16)
    with pytest.raises(ValueError, match="speaker"):
        model(inputs, local, torch.randn(1, GLOBAL))
    with pytest.raises(ValueError, match="local"):
        model(inputs, None, None)


def test_the_pitch_lag_taps_read_one_period_back():
    config = DecoderConfig(n_layers=2, dilation_cycle=2, residual_channels=4, gate_channels=4, skip_channels=4,
                           pitch_lag_taps=3)
    model = WaveNet(config, classes=16, hop_length=4)
    history = torch.arange(20).view(1, 20) % 16  # x[k] = k
    times = torch.tensor([0, 9, 10, 12, 19])
    period = torch.tensor([[8, 8, 0, 1, 5]])
    lagged = model.lag_classes(history, period, times)
    silence = model.lag_silence
    assert lagged.tolist() == [[[silence, silence, silence],  # t - T + j < 0: before the first sample
                                [0, 1, 2],                    # x[9 - 8 - 1], x[1], x[2]
                                [silence] * 3,                # unvoiced
                                [silence] * 3,                # T = 1 <= n // 2 would read x[12]: unvoiced
                                [13, 14, 15]]]
    # the taps' embeddings start at zero: a new lag input changes nothing until it is trained
    assert not model.lag_embedding.weight.any()
    inputs = torch.randint(0, 16, (1, 40))
    plain = WaveNet(DecoderConfig(n_layers=2, dilation_cycle=2, residual_channels=4, gate_channels=4,
                                  skip_channels=4), classes=16, hop_length=4)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("lag_")})
    with torch.no_grad():
        assert torch.equal(model(inputs, period=torch.full((1, 10), 7)), plain(inputs))
    with pytest.raises(ValueError, match="pitch periods"):
        model(inputs)
    with pytest.raises(ValueError, match="no pitch-lag input"):
        plain(inputs, period=torch.full((1, 10), 7))


def context_wavenet(context_layers: int) -> WaveNet:
    config = DecoderConfig(n_layers=4, dilation_cycle=2, residual_channels=8, gate_channels=8, skip_channels=8,
                           cond_channels=6, cond_layers=2, cond_context_layers=context_layers)
    return WaveNet(config, classes=16, hop_length=4, local_channels=LOCAL).eval()


def test_context_blocks_start_as_the_identity_and_reach_cond_reach_frames():
    torch.manual_seed(0)
    model = context_wavenet(3)
    assert model.config.cond_reach == 2 + (1 + 2 + 4)
    plain = context_wavenet(0)
    state = model.state_dict()
    plain.load_state_dict({k: v for k, v in state.items() if ".context." not in k})
    inputs = torch.randint(0, 16, (2, 120))
    local = torch.randn(2, LOCAL, 30)
    with torch.no_grad():
        # the blocks' last 1x1 is at zero: a continuation that adds them starts as its init
        assert torch.equal(model(inputs, local), plain(inputs, local))
        for block in model.cond_net.context:
            torch.nn.init.normal_(block.out.weight, std=0.3)
        base = model.layer_conditioning(local, None)  # (B, F, L, G)
        middle, reach = 15, model.config.cond_reach
        for distance, expect_change in [(reach + 1, False), (reach, True), (-reach, True), (-reach - 1, False)]:
            probe = local.clone()
            probe[:, :, middle + distance] += 1.0
            changed = not torch.equal(model.layer_conditioning(probe, None)[:, middle], base[:, middle])
            assert changed == expect_change, f"a code {distance} frames away"


def test_blockwise_frame_conditions_equal_the_whole_with_context_blocks():
    # step-by-step generation computes the conditioning in blocks with cond_reach frames of margin
    torch.manual_seed(0)
    model = context_wavenet(2)
    for block in model.cond_net.context:
        torch.nn.init.normal_(block.out.weight, std=0.3)
    local = torch.randn(1, LOCAL, 23)
    with torch.no_grad():
        whole = model.layer_conditioning(local, None)
        blocks = torch.stack(list(model.frame_conditions(local, None, 23, block_frames=4)), dim=1)
    torch.testing.assert_close(blocks, whole, rtol=0, atol=1e-6)
