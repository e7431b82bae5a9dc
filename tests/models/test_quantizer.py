"""Vector quantizer: lookup, range, straight-through gradients, EMA, k-means init, dead-code restart, perplexity."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from speechvq.config import QuantizerConfig
from speechvq.models.quantizer import VectorQuantizer, index_counts


def make_quantizer(**overrides) -> VectorQuantizer:
    config = dataclasses.replace(QuantizerConfig(codebook_size=16, init_from_data=False), **overrides)
    return VectorQuantizer(config, dim=8)


def test_eval_forward_equals_lookup_of_codes():
    vq = make_quantizer().eval()
    z_e = torch.randn(3, 8, 20)
    out = vq(z_e)
    torch.testing.assert_close(out.z_q, vq.lookup(out.codes), rtol=0, atol=0)


def test_codes_in_range_and_nearest():
    vq = make_quantizer().eval()
    z_e = torch.randn(4, 8, 50) * 0.1
    out = vq(z_e)
    assert out.codes.dtype == torch.int64 and out.codes.shape == (4, 50)
    assert out.codes.min() >= 0 and out.codes.max() < 16
    flat = z_e.permute(0, 2, 1).reshape(-1, 8)
    brute = torch.cdist(flat, vq.codebook.detach()).argmin(dim=1)  # the [N, K] distances, directly
    assert torch.equal(out.codes.reshape(-1), brute)


def test_nearest_is_chunked_consistently(monkeypatch):
    import speechvq.models.quantizer as quantizer_module

    vq = make_quantizer().eval()
    flat = torch.randn(1000, 8)
    whole = vq.nearest(flat)
    monkeypatch.setattr(quantizer_module, "_DISTANCE_CHUNK_ROWS", 7)
    assert torch.equal(vq.nearest(flat), whole)


def test_straight_through_gives_encoder_gradient():
    vq = make_quantizer().train()
    z_e = torch.randn(2, 8, 10, requires_grad=True)
    out = vq(z_e)
    weights = torch.randn_like(out.z_q)
    (out.z_q * weights).sum().backward()
    # The gradient passes through the quantizer unchanged (identity), so it equals the upstream gradient.
    torch.testing.assert_close(z_e.grad, weights, rtol=0, atol=0)


def test_losses_give_codebook_and_encoder_gradients():
    vq = make_quantizer().train()
    z_e = torch.randn(2, 8, 10, requires_grad=True)
    out = vq(z_e)
    out.loss.backward()
    assert z_e.grad.abs().sum() > 0  # commitment pulls the encoder
    assert vq.codebook.grad.abs().sum() > 0  # codebook loss pulls the codes
    expected = out.codebook_loss + 0.25 * out.commitment_loss
    torch.testing.assert_close(out.loss, expected)


def test_ema_mode_updates_codebook_without_gradients():
    vq = make_quantizer(ema=True).train()
    assert not vq.codebook.requires_grad
    before = vq.codebook.detach().clone()
    z_e = torch.randn(2, 8, 30, requires_grad=True)
    out = vq(z_e)
    out.loss.backward()
    assert vq.codebook.grad is None
    assert out.codebook_loss.item() == 0.0
    assert not torch.allclose(vq.codebook, before)
    assert z_e.grad.abs().sum() > 0


def test_ema_moves_used_code_towards_its_data():
    vq = make_quantizer(ema=True, ema_decay=0.5, dead_code_window=0).train()
    target = torch.full((8,), 3.0)
    z_e = target.view(1, 8, 1).expand(1, 8, 40).contiguous()
    for _ in range(30):
        code = vq(z_e).codes[0, 0]
    # With decay 0.5 the moving average converges geometrically onto the only data point.
    torch.testing.assert_close(vq.codebook[code], target, rtol=0, atol=1e-3)


def test_eval_mode_changes_nothing():
    vq = make_quantizer(ema=True, dead_code_window=1).eval()
    state = {k: v.clone() for k, v in vq.state_dict().items()}
    vq(torch.randn(2, 8, 30))
    for key, value in vq.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_dead_code_is_restarted():
    vq = make_quantizer(dead_code_window=3).train()
    with torch.no_grad():
        vq.codebook[5] = 100.0  # far from every input: never chosen
    z_e = torch.randn(2, 8, 40)
    restarts = [int(vq(z_e).restarts) for _ in range(3)]
    assert restarts[:2] == [0, 0] and restarts[2] >= 1
    assert int(vq.total_restarts) == sum(restarts)
    # The re-seeded code now lies on one of the encoder outputs it was seeded from.
    assert vq.codebook[5].abs().max() < 10
    flat = z_e.permute(0, 2, 1).reshape(-1, 8)
    assert torch.cdist(vq.codebook[5:6].detach(), flat).min() < 0.1


def test_index_counts_equal_bincount_with_empty_bins():
    torch.manual_seed(0)
    index = torch.randint(0, 7, (1000,))  # the top bins 7-9 never occur, bincount sizes by minlength
    counts = index_counts(index, 10)
    assert counts.dtype == torch.float32 and torch.equal(counts, torch.bincount(index, minlength=10).float())
    assert torch.equal(index_counts(index[:0], 3), torch.zeros(3))


def test_perplexity_of_uniform_assignment_is_codebook_size():
    vq = make_quantizer().eval()
    z_e = vq.codebook.detach().t().unsqueeze(0).repeat(1, 1, 3)  # every code exactly three times
    out = vq(z_e)
    torch.testing.assert_close(out.perplexity, torch.tensor(16.0), rtol=1e-5, atol=0)
    assert int(out.used_codes) == 16


def test_perplexity_of_single_code_is_one():
    vq = make_quantizer().eval()
    z_e = vq.codebook.detach()[3].view(1, 8, 1).repeat(1, 1, 10)
    out = vq(z_e)
    torch.testing.assert_close(out.perplexity, torch.tensor(1.0))
    assert int(out.used_codes) == 1


def test_kmeans_initialisation_finds_the_clusters():
    vq = make_quantizer(codebook_size=4, init_from_data=True, kmeans_iters=20, dead_code_window=0).train()
    centres = torch.tensor([[5.0] * 8, [-5.0] * 8, [5.0] * 4 + [-5.0] * 4, [-5.0] * 4 + [5.0] * 4])
    points = centres.repeat_interleave(25, dim=0) + 0.1 * torch.randn(100, 8)
    vq(points.t().unsqueeze(0))
    assert bool(vq.initialized)
    found = torch.cdist(centres, vq.codebook.detach()).min(dim=1).values
    assert found.max() < 0.2
    # A second training batch, far from the first, does not re-initialise (k-means on it would move every code).
    before = vq.codebook.detach().clone()
    vq.train()(50.0 + torch.randn(1, 8, 40))
    torch.testing.assert_close(vq.codebook.detach(), before, rtol=0, atol=0)


@pytest.mark.parametrize("ema", [False, True])
def test_state_dict_round_trip(ema):
    vq = make_quantizer(ema=ema, init_from_data=True).train()
    vq(torch.randn(2, 8, 30))
    clone = make_quantizer(ema=ema, init_from_data=True)
    clone.load_state_dict(vq.state_dict())
    z_e = torch.randn(2, 8, 30)
    assert torch.equal(clone.eval()(z_e).codes, vq.eval()(z_e).codes)
    assert bool(clone.initialized)
