"""Encoder: exact frame count for every length, and the right-padding policy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from speechvq.config import EncoderConfig
from speechvq.models.encoder import Encoder

LENGTHS = [1, 2, 3, 63, 64, 65, 100, 127, 128, 129, 640, 1000, 1001, 4095, 4097]


@pytest.mark.parametrize("strides", [(2, 2, 2, 2, 2, 2), (2, 2, 2, 2, 2, 2, 2), (2, 2, 2, 2, 2, 2, 2, 5), (4, 5)])
def test_output_length_equals_num_frames(strides):
    encoder = Encoder(EncoderConfig(channels=8, strides=strides, latent_dim=4))
    hop = math.prod(strides)
    for n_samples in LENGTHS:
        z_e = encoder(torch.randn(2, 1, n_samples))
        assert z_e.shape == (2, 4, encoder.num_frames(n_samples))
        # F = ceil(T / hop): every sample is covered by a frame, and no frame is pure padding
        assert encoder.num_frames(n_samples) == -(-n_samples // hop)


def test_unaligned_input_equals_its_zero_padded_version():
    encoder = Encoder(EncoderConfig(channels=8, latent_dim=4))
    wav = torch.randn(1, 1, 1000)
    padded = F.pad(wav, (0, encoder.num_frames(1000) * 64 - 1000))
    torch.testing.assert_close(encoder(wav), encoder(padded), rtol=0, atol=0)


def test_frames_depend_only_on_nearby_samples():
    # Each frame sees a bounded window around its own hop: changing the last samples leaves early frames alone.
    encoder = Encoder(EncoderConfig(channels=8, latent_dim=4))
    wav = torch.randn(1, 1, 64 * 20)
    changed = wav.clone()
    changed[..., 64 * 15:] = torch.randn(64 * 5)
    a, b = encoder(wav), encoder(changed)
    torch.testing.assert_close(a[..., :12], b[..., :12], rtol=0, atol=0)
    assert not torch.equal(a[..., 15:], b[..., 15:])


@pytest.mark.parametrize("strides", [(2, 2, 2, 2, 2, 2), (2, 2, 3), (4, 5), (3,)])
def test_reach_is_exactly_the_samples_a_frame_reads(strides):
    """Frame f changes when sample n changes iff f * hop - before <= n < (f + 1) * hop + after."""
    torch.manual_seed(0)
    encoder = Encoder(EncoderConfig(channels=16, strides=strides, latent_dim=8)).double()
    hop, (before, after) = encoder.hop_length, encoder.reach
    n_frames = 12
    wav = torch.randn(1, 1, n_frames * hop, dtype=torch.float64)
    base = encoder(wav)[0]
    for n in range(n_frames * hop):
        nudged = wav.clone()
        nudged[..., n] += 1.0
        changed = ((encoder(nudged)[0] - base).abs().amax(0) > 0).nonzero().flatten().tolist()
        assert changed == [f for f in range(n_frames) if f * hop - before <= n < (f + 1) * hop + after], n
    assert before + hop + after == encoder.receptive_field


def test_rejects_wrong_shape():
    encoder = Encoder(EncoderConfig(channels=8, latent_dim=4))
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        encoder(torch.randn(1, 2, 100))
