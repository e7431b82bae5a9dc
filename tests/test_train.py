"""Training: exact resume, Ctrl-C handling, NaN stop, config mismatch, and a 2-process DDP run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechvq.checkpoint import load_checkpoint
from speechvq.cli import main
from speechvq.config import load_config
from speechvq.errors import SpeechVQError
from speechvq.models import SpeechVQ
from speechvq.train import train
from speechvq.train.loop import _StopRequest

ROOT = Path(__file__).resolve().parents[1]


def small_config(root: Path, *extra: str):
    return load_config("tiny", [
        f"data.train_manifest={root}/manifests/train.jsonl", f"data.valid_manifest={root}/manifests/valid.jsonl",
        f"data.speakers={root}/manifests/speakers.json", f"data.cache_dir={root}/cache",
        "data.segment_s=0.05", "data.batch_size=2", "train.max_steps=8", "train.valid_every=4",
        "train.checkpoint_every=100", "train.log_every=2", "train.valid_audio_s=0.03", *extra])


def states_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_resumed_run_continues_exactly(corpus):
    cfg = small_config(corpus, "model.quantizer.dead_code_window=3")  # restarts draw from the global RNG too
    straight = train(cfg, corpus / "straight", device="cpu", show_progress=False)
    first = train(cfg, corpus / "resumed", device="cpu", stop_at_step=4, show_progress=False)
    assert first.stopped == "stop_at_step" and load_checkpoint(corpus / "resumed" / "last.pt").step == 4
    second = train(cfg, corpus / "resumed", device="cpu", show_progress=False)
    assert straight.step == second.step == 8
    a, b = load_checkpoint(corpus / "straight" / "last.pt"), load_checkpoint(corpus / "resumed" / "last.pt")
    states_close(a.model_state, b.model_state)
    assert a.extra["run"] == b.extra["run"]
    assert a.optimizer_state["state"][0]["step"] == b.optimizer_state["state"][0]["step"] == 8
    assert second.best_valid_nll == pytest.approx(straight.best_valid_nll, abs=1e-6)
    assert int(a.model_state["quantizer.total_restarts"]) == int(b.model_state["quantizer.total_restarts"]) > 0
    for name in ("config.yaml", "best.pt", "metrics.jsonl"):
        assert (corpus / "resumed" / name).is_file()
    assert list((corpus / "resumed" / "tensorboard").iterdir())


def test_resume_with_another_config_names_the_key(corpus):
    train(small_config(corpus), corpus / "exp", device="cpu", stop_at_step=2, show_progress=False)
    with pytest.raises(SpeechVQError, match="train.lr"):
        train(small_config(corpus, "train.lr=0.5"), corpus / "exp", device="cpu", show_progress=False)
    # intervals may change on resume
    result = train(small_config(corpus, "train.log_every=1"), corpus / "exp", device="cpu", show_progress=False)
    assert result.step == 8


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(corpus, monkeypatch):
    cfg = small_config(corpus, "train.checkpoint_every=2", "train.valid_every=100")
    original_forward = SpeechVQ.forward
    calls = {"n": 0}

    def poisoned(self, wav, speaker=None):
        calls["n"] += 1
        out = original_forward(self, wav, speaker)
        if self.training and calls["n"] == 3:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(SpeechVQ, "forward", poisoned)
    with pytest.raises(SpeechVQError, match=r"NaN or infinite between steps 3 and 4.*step 2\)"):
        train(cfg, corpus / "exp", device="cpu", show_progress=False)
    assert load_checkpoint(corpus / "exp" / "last.pt").step == 2


def test_ctrl_c_sets_a_stop_flag_and_a_second_interrupts():
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN when started in the background
    with _StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_cli_train_exit_codes(corpus, tmp_path, capsys):
    cfg_path = tmp_path / "run.yaml"
    cfg_path.write_text(small_config(corpus, "train.max_steps=2").to_yaml())
    assert main(["train", "-c", str(cfg_path), "--exp", str(tmp_path / "exp"), "--device", "cpu"]) == 0
    assert load_checkpoint(tmp_path / "exp" / "last.pt").step == 2
    assert main(["train", "-c", str(cfg_path), "--exp", str(tmp_path / "exp2"),
                 "--set", "data.speakers=/nonexistent/speakers.json"]) == 1
    assert "no such speaker table" in capsys.readouterr().err


def test_two_process_ddp_matches_one_process(corpus, tmp_path):
    # EMA codebook (all-reduced statistics), no data-dependent init or restarts: two ranks of batch 2 must
    # compute what one process computes on the same batches of 4.
    common = ["model.quantizer.ema=true", "model.quantizer.init_from_data=false",
              "model.quantizer.dead_code_window=0", "train.max_steps=4", "train.valid_every=100"]
    cfg_path = tmp_path / "ddp.yaml"
    cfg_path.write_text(small_config(corpus, *common).to_yaml())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "speechvq", "train", "-c", str(cfg_path), "--exp", str(tmp_path / "ddp"), "--device", "cpu"]
    # Its own session, so that a hang cannot leave the worker processes behind: the whole group is killed.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    result = subprocess.CompletedProcess(command, process.returncode, "", stderr)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "ddp").glob("*.pt")) == ["best.pt", "last.pt"]
    ddp = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert ddp.step == 4
    single = train(small_config(corpus, *common, "data.batch_size=4"), tmp_path / "single", device="cpu",
                   show_progress=False)
    assert single.step == 4
    states_close(ddp.model_state, load_checkpoint(tmp_path / "single" / "last.pt").model_state)
