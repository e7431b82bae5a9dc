"""The assembled model: shapes, losses, encode/decode, speakers, and overfitting one utterance."""

from __future__ import annotations

import math

import pytest
import torch

from speechvq.audio import mu_law_encode, normalize_level
from speechvq.models import SpeechVQ
from tests.helpers import voiced_signal


def test_training_forward_returns_losses_and_statistics(tiny_config):
    model = SpeechVQ(tiny_config.model, speakers=["a", "b"]).train()
    wav = 0.3 * torch.randn(2, 1, 1000)
    out = model(wav, torch.tensor([0, 1]))
    assert out.codes.shape == (2, model.num_frames(1000))
    torch.testing.assert_close(out.loss, out.nll + out.vq_loss)
    # An untrained decoder is close to a uniform guess over 256 classes: ln 256 = 5.55 nats.
    assert abs(out.nll.item() - math.log(256)) < 0.5
    assert 1.0 <= out.perplexity.item() <= 16.0 and 1 <= int(out.used_codes) <= 16
    out.loss.backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_encode_decode_shapes(tiny_config):
    model = SpeechVQ(tiny_config.model, speakers=["a"]).eval()
    wav = 0.3 * torch.randn(2, 1, 300)
    codes = model.encode(wav)
    assert codes.shape == (2, 5) and codes.dtype == torch.int64
    out = model.decode(codes, torch.tensor([0, 0]), n_samples=300, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 300) and out.dtype == torch.float32
    assert out.abs().max() <= 1.0
    with pytest.raises(ValueError, match="n_samples"):
        model.decode(codes, torch.tensor([0, 0]), n_samples=321)


def test_encode_does_not_touch_the_codebook(tiny_config):
    model = SpeechVQ(tiny_config.model).train()  # even in training mode, encode() is pure inference
    state = {k: v.clone() for k, v in model.quantizer.state_dict().items()}
    model.encode(0.3 * torch.randn(1, 1, 640))
    for key, value in model.quantizer.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert model.quantizer.training


def test_speaker_handling(tiny_config):
    with_table = SpeechVQ(tiny_config.model, speakers=["p225", "p226"])
    assert with_table.has_speakers and with_table.speaker_index("p226") == 1
    with pytest.raises(KeyError, match="p999"):
        with_table.speaker_index("p999")
    wav = 0.3 * torch.randn(1, 1, 128)
    with pytest.raises(ValueError, match="speaker"):
        with_table(wav)
    # indices a caller passes are checked; training's come from the speaker table and are not (the check
    # would make each CUDA step wait for the device), so the embedding's own IndexError is what remains there
    with_table.eval()
    with pytest.raises(ValueError, match="out of range"):
        with_table(wav, torch.tensor([2]))
    with_table.train()
    with pytest.raises(IndexError):
        with_table(wav, torch.tensor([2]))
    without = SpeechVQ(tiny_config.model)
    assert not without.has_speakers
    without(wav)  # no speaker needed
    with pytest.raises(ValueError, match="no speaker conditioning"):
        without(wav, torch.tensor([0]))
    with pytest.raises(ValueError, match="unique"):
        SpeechVQ(tiny_config.model, speakers=["a", "a"])


def test_decoder_targets_are_the_mu_law_of_the_input(tiny_config):
    # The NLL is scored against mu-law classes of the input itself (teacher forcing shifted by one).
    model = SpeechVQ(tiny_config.model).eval()
    wav = 0.3 * torch.randn(1, 1, 200)
    with torch.no_grad():
        out = model(wav)
        vq = model.quantizer(model.encoder(wav))
        targets = mu_law_encode(wav[:, 0])
        inputs = torch.cat([torch.full((1, 1), 128), targets[:, :-1]], dim=1)
        logits = model.decoder(inputs, local=vq.z_q)
    torch.testing.assert_close(out.nll, torch.nn.functional.cross_entropy(logits, targets))


def test_tiny_model_overfits_one_utterance(tiny_config):
    model = SpeechVQ(tiny_config.model, speakers=["a"]).train()
    wav, _ = normalize_level(voiced_signal(2000), tiny_config.model.level_dbfs)
    wav = wav.view(1, 1, -1)
    speaker = torch.tensor([0])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    initial = None
    for step in range(300):
        out = model(wav, speaker)
        initial = out.nll.item() if initial is None else initial
        if out.nll.item() <= 0.5 * initial:
            break
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert out.nll.item() <= 0.5 * initial, f"NLL {initial:.3f} -> {out.nll.item():.3f} after {step} steps"
