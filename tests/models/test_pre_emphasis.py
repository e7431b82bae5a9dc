"""Pre-emphasised targets (model.pre_emphasis, LPCNet's 0.85): the filter pair, and where the model applies it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from speechvq.audio import de_emphasis, mu_law_encode, pre_emphasis
from speechvq.config import ConfigError, load_config
from speechvq.inference import Encoded, decode_many
from speechvq.models import SpeechVQ
from tests.helpers import voiced_signal

COEFFICIENT = 0.85


def test_de_emphasis_inverts_pre_emphasis():
    wav = 0.4 * voiced_signal(3000, seed=1).view(2, 1500)
    emphasised = pre_emphasis(wav, COEFFICIENT)
    assert emphasised[:, 1:].sub(wav[:, 1:] - COEFFICIENT * wav[:, :-1]).abs().max() < 1e-7
    assert torch.allclose(de_emphasis(emphasised, COEFFICIENT), wav, atol=1e-6)
    assert pre_emphasis(wav, 0.0) is wav and de_emphasis(wav, 0.0) is wav


def _pair():
    """Two tiny models with the same weights: one plain, one with pre-emphasised targets."""
    config = load_config("tiny").model
    torch.manual_seed(0)
    plain = SpeechVQ(config, speakers=["a"]).eval()
    emphasised = SpeechVQ(dataclasses.replace(config, pre_emphasis=COEFFICIENT), speakers=["a"]).eval()
    emphasised.load_state_dict(plain.state_dict())
    return plain, emphasised


def test_targets_are_mu_law_of_the_pre_emphasised_waveform():
    plain, emphasised = _pair()
    wav = 0.3 * voiced_signal(2000, seed=2)
    assert torch.equal(plain.mu_law_targets(wav), mu_law_encode(wav))
    assert torch.equal(emphasised.mu_law_targets(wav), mu_law_encode(pre_emphasis(wav, COEFFICIENT)))
    with torch.no_grad():
        out = emphasised(wav.view(1, 1, -1), torch.tensor([0]))
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("path", ["model.decode", "inference.decode_many"])
def test_the_decoder_output_is_de_emphasised(path):
    # same weights and seed: the same classes are generated, and only the output transform differs
    plain, emphasised = _pair()
    codes = torch.randint(0, plain.quantizer.codebook_size, (1, 12), generator=torch.Generator().manual_seed(3))
    n = 12 * plain.hop_length - 5
    if path == "model.decode":
        outputs = [m.decode(codes, torch.tensor([0]), n, generator=torch.Generator().manual_seed(4))[0, 0]
                   for m in (plain, emphasised)]
    else:
        encoded = Encoded(codes=codes[0], n_samples=n, gain=1.0, speaker="a")
        outputs = [decode_many(m, [encoded], [None], seed=4)[0] for m in (plain, emphasised)]
    assert not torch.equal(outputs[0], outputs[1])
    assert torch.allclose(de_emphasis(outputs[0], COEFFICIENT).clamp(-1, 1), outputs[1], atol=1e-5)


def test_the_coefficient_is_checked():
    with pytest.raises(ConfigError, match="model.pre_emphasis"):
        load_config("tiny", ["model.pre_emphasis=1.0"])
