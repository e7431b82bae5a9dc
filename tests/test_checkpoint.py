"""Checkpoints: identical outputs after a round trip, safe loading, atomic writes, clear errors."""

from __future__ import annotations

import pytest
import torch

from speechvq.checkpoint import load_checkpoint, load_model, save_checkpoint
from speechvq.config import load_config
from speechvq.errors import SpeechVQError
from speechvq.models import SpeechVQ


def trained_model(config, steps: int = 3):
    model = SpeechVQ(config.model, speakers=["alice", "bob"]).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    wav = 0.3 * torch.randn(2, 1, 640)
    for _ in range(steps):
        out = model(wav, torch.tensor([0, 1]))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    return model, optimizer


def test_round_trip_gives_identical_outputs_and_equal_config(tmp_path, tiny_config):
    config = load_config("tiny", ["model.quantizer.ema=true"])
    model, optimizer = trained_model(config)
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, config, step=3, optimizer=optimizer, extra={"best_valid_nll": 4.2})
    checkpoint = load_checkpoint(path)
    assert checkpoint.config == config
    assert checkpoint.speakers == ["alice", "bob"] and checkpoint.step == 3
    assert checkpoint.extra == {"best_valid_nll": 4.2}
    loaded = load_model(path)
    model.eval()
    assert not loaded.training and loaded.speakers == ("alice", "bob")
    wav = 0.3 * torch.randn(2, 1, 500)
    speaker = torch.tensor([1, 0])
    assert torch.equal(loaded.encode(wav), model.encode(wav))
    with torch.no_grad():
        torch.testing.assert_close(loaded(wav, speaker).nll, model(wav, speaker).nll, rtol=0, atol=0)
    codes = model.encode(wav)
    a = loaded.decode(codes, speaker, 100, generator=torch.Generator().manual_seed(1))
    b = model.decode(codes, speaker, 100, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    # the optimizer resumes with the same state
    resumed = torch.optim.Adam(loaded.parameters(), lr=1e-3)
    resumed.load_state_dict(checkpoint.optimizer_state)
    assert resumed.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]


def test_config_must_match_the_model(tmp_path, tiny_config):
    model = SpeechVQ(tiny_config.model)
    other = load_config("tiny", ["model.quantizer.codebook_size=8"])
    with pytest.raises(ValueError, match="differs"):
        save_checkpoint(tmp_path / "x.pt", model, other)


def test_unreadable_checkpoints_give_one_line_errors(tmp_path, tiny_config):
    with pytest.raises(SpeechVQError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint" * 100)
    with pytest.raises(SpeechVQError, match="cannot read checkpoint"):
        load_checkpoint(garbage)
    path = tmp_path / "good.pt"
    save_checkpoint(path, SpeechVQ(tiny_config.model), tiny_config)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(SpeechVQError, match="cannot read checkpoint"):
        load_checkpoint(truncated)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(SpeechVQError, match="not a speechvq checkpoint"):
        load_checkpoint(other)


def test_newer_format_and_bad_config_are_refused(tmp_path, tiny_config):
    path = tmp_path / "good.pt"
    save_checkpoint(path, SpeechVQ(tiny_config.model), tiny_config)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(SpeechVQError, match="format 99"):
        load_checkpoint(tmp_path / "future.pt")
    payload["format_version"] = 1
    payload["config"]["model"]["quantizer"]["size"] = 3
    torch.save(payload, tmp_path / "badconfig.pt")
    with pytest.raises(SpeechVQError, match="model.quantizer.size"):
        load_checkpoint(tmp_path / "badconfig.pt")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path, tiny_config):
    path = tmp_path / "good.pt"
    save_checkpoint(path, SpeechVQ(tiny_config.model), tiny_config)
    payload = torch.load(path, weights_only=True)
    payload["model"]["quantizer.codebook"] = torch.zeros(3, 3)
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(SpeechVQError, match="do not match"):
        load_model(tmp_path / "mismatch.pt")


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_arbitrary_objects_are_never_unpickled(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "speechvq-checkpoint", "payload": Exploit()}, path)
    with pytest.raises(SpeechVQError, match="cannot read checkpoint"):
        load_checkpoint(path)
    assert "this must never run" not in capsys.readouterr().out


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, tiny_config, monkeypatch):
    model = SpeechVQ(tiny_config.model)
    path = tmp_path / "last.pt"
    save_checkpoint(path, model, tiny_config, step=1)
    before = path.read_bytes()

    def dying_save(obj, file, *args, **kwargs):
        with open(file, "wb") as handle:
            handle.write(b"PK\x03\x04 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, tiny_config, step=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    monkeypatch.undo()
    assert load_checkpoint(path).step == 1
