"""Speaker modes of the model: table rows, a vector computed from the utterance (residual or log-mel source),
or none; quantization of the vector; the running means of the named voices."""

from __future__ import annotations

import pytest
import torch

from speechvq.config import load_config
from speechvq.errors import ConfigError
from speechvq.models import SpeechVQ

SPEAKERS = ["a", "b", "c"]


def utterance_model(source: str = "residual", bits: int = 4) -> SpeechVQ:
    torch.manual_seed(0)
    config = load_config("tiny", ["model.speaker_mode=utterance", f"model.speaker_source={source}",
                                  f"model.speaker_bits={bits}"])
    model = SpeechVQ(config.model, speakers=SPEAKERS)
    with torch.no_grad():  # spread the (otherwise near-zero) vectors over the grid
        model.speaker_encoder.project.weight.mul_(40.0)
    return model


def test_config_of_the_modes():
    assert load_config("tiny").model.speaker_mode == "table"  # old configs and checkpoints: unchanged
    with pytest.raises(ConfigError, match="speaker_mode"):
        load_config("tiny", ["model.speaker_mode=everyone"])
    with pytest.raises(ConfigError, match="speaker_bits"):
        load_config("tiny", ["model.speaker_bits=9"])
    with pytest.raises(ConfigError, match="speaker_dim"):
        load_config("tiny", ["model.speaker_mode=utterance", "model.speaker_dim=0"])
    none = SpeechVQ(load_config("tiny", ["model.speaker_mode=none"]).model, speakers=SPEAKERS)
    assert not none.has_speakers and not none.has_voices and none.decoder.global_channels == 0


@pytest.mark.parametrize("source", ["residual", "mel"])
def test_the_vector_lies_on_the_quantization_grid_and_trains_its_source(source):
    model = utterance_model(source).train()
    wav = 0.3 * torch.randn(4, 1, 1200)
    z_e = model.encoder(wav)
    vq = model.quantizer(z_e)
    vector = model.utterance_speaker(wav, z_e, vq.z_q)
    levels = model.speaker_encoder.quantize(vector)
    assert vector.shape == (4, 8) and levels.min() >= 0 and levels.max() <= 15
    torch.testing.assert_close(vector, model.speaker_encoder.dequantize(levels), rtol=0, atol=1e-6)
    assert len(set(map(tuple, levels.tolist()))) > 1  # different inputs, different voices
    out = model(wav, torch.tensor([0, 1, 1, 2]))
    out.loss.backward()
    trained = model.encoder if source == "residual" else model.speaker_encoder.mel_net
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.speaker_encoder.project.parameters())
    assert sum(p.grad.abs().sum() for p in trained.parameters()) > 0  # straight-through: gradients pass


def test_encode_returns_the_levels_the_decoder_is_trained_on():
    model = utterance_model().eval()
    wav = 0.3 * torch.randn(2, 1, 900)
    codes, levels = model.encode_with_speaker(wav)
    z_e = model.encoder(wav)
    vector = model.utterance_speaker(wav, z_e, model.quantizer(z_e).z_q)
    assert torch.equal(codes, model.encode(wav))
    torch.testing.assert_close(model.speaker_from_levels(levels), vector, rtol=0, atol=1e-6)
    long = 0.3 * torch.randn(1, 1, 64 * 90 + 5)
    assert torch.equal(model.encode_with_speaker(long, chunk_frames=7)[1], model.encode_with_speaker(long)[1])
    with pytest.raises(ValueError, match="levels"):
        model.speaker_from_levels(torch.full((1, 8), 16))
    table = SpeechVQ(load_config("tiny").model, speakers=SPEAKERS).eval()
    assert table.encode_with_speaker(wav)[1] is None


def test_named_voices_are_running_means_of_their_speakers_vectors():
    model = utterance_model().train()
    rows = torch.tensor([0, 0, 2])
    first = torch.tensor([[1.0] * 8, [0.0] * 8, [0.5] * 8])
    model._update_voices(rows, first)
    torch.testing.assert_close(model.voice_vectors[0], torch.full((8,), 0.5))  # the first batch sets the mean
    torch.testing.assert_close(model.voice_vectors[2], torch.full((8,), 0.5))
    assert model.voice_updates.tolist() == [1, 0, 1] and model.voice_vectors[1].abs().sum() == 0
    model._update_voices(torch.tensor([0]), torch.full((1, 8), -1.0))
    torch.testing.assert_close(model.voice_vectors[0], torch.full((8,), 0.99 * 0.5 - 0.01))
    torch.testing.assert_close(model.speaker_vectors(torch.tensor([0])), model.voice_vectors[:1])
    before = model.voice_vectors.clone()
    model.eval()(0.3 * torch.randn(2, 1, 640), torch.tensor([1, 1]))  # evaluation does not update them
    assert torch.equal(model.voice_vectors, before)
    model.train()(0.3 * torch.randn(2, 1, 640), torch.tensor([1, 1]))  # training does
    assert model.voice_updates[1] == 1 and model.voice_vectors[1].abs().sum() > 0


def test_decode_takes_a_vector_or_named_voices():
    model = utterance_model().eval()
    codes, levels = model.encode_with_speaker(0.3 * torch.randn(1, 1, 640))
    generator = torch.Generator().manual_seed(0)
    own = model.decode(codes, speaker_vector=model.speaker_from_levels(levels), generator=generator)
    named = model.decode(codes, torch.tensor([1]), generator=torch.Generator().manual_seed(0))
    assert own.shape == named.shape == (1, 1, 640)
    with pytest.raises(ValueError, match="out of range"):
        model.decode(codes, torch.tensor([3]))
