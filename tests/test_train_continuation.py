"""Training on a time budget and from earlier weights: the device loader, --init, --max-minutes, the compiled
step, code jitter and the session script's CPU smoke run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from speechvq.checkpoint import export_checkpoint, init_from_checkpoint, load_checkpoint
from speechvq.codec import Codec, model_fingerprint
from speechvq.config import ConfigError, load_config
from speechvq.data import AudioCache, SegmentDataset, read_manifest
from speechvq.data.device import DeviceBatches, DeviceCorpus
from speechvq.errors import SpeechVQError
from speechvq.models import SpeechVQ
from speechvq.models.vqvae import jitter_frames
from speechvq.train import loop, train
from speechvq.train.state import ScheduleEnd
from tests.test_train import small_config, states_close

ROOT = Path(__file__).resolve().parents[1]


def device_corpus(root: Path) -> DeviceCorpus:
    cfg = small_config(root)
    entries = read_manifest(cfg.data.train_manifest)
    speakers = json.loads(Path(cfg.data.speakers).read_text())["speakers"]
    return DeviceCorpus(entries, speakers, AudioCache(cfg.data.cache_dir, 16000, cfg.model.level_dbfs), "cpu")


def test_device_crops_are_the_cached_samples_and_silence_past_the_end(corpus):
    held = device_corpus(corpus)
    cache = AudioCache(small_config(corpus).data.cache_dir, 16000, small_config(corpus).model.level_dbfs)
    entries = read_manifest(small_config(corpus).data.train_manifest)
    first = np.asarray(cache.load(entries[0].path)).astype(np.float32) / 32767.0
    length = first.shape[0]
    crops, speakers = held.crops([0, 0], [5, length - 10], 40)
    assert speakers.tolist() == [held.speaker_rows[0].item()] * 2
    assert crops.shape == (2, 1, 40) and crops.dtype == torch.float32
    np.testing.assert_array_equal(crops[0, 0].numpy(), first[5:45])
    np.testing.assert_array_equal(crops[1, 0, :10].numpy(), first[-10:])
    assert not crops[1, 0, 10:].any()  # past the utterance's end: silence, not the next utterance
    assert held.nbytes == 2 * int(held.lengths.sum())


def test_device_batches_are_a_pure_function_of_seed_and_batch_number(corpus):
    held = device_corpus(corpus)
    a, b = DeviceBatches(held, 3, 200, seed=5), DeviceBatches(held, 3, 200, seed=5, start_batch=2)
    third = next(iter(b))
    torch.testing.assert_close(a.batch(2).wav, third.wav, rtol=0, atol=0)
    assert torch.equal(a.batch(2).speaker, third.speaker)
    assert not torch.equal(a.batch(1).wav, a.batch(2).wav)
    assert not torch.equal(DeviceBatches(held, 3, 200, seed=6).batch(2).wav, third.wav)


def test_resumed_run_on_the_device_loader_continues_exactly(corpus):
    cfg = small_config(corpus, "data.loader=device", "model.quantizer.dead_code_window=3")
    train(cfg, corpus / "straight", device="cpu", show_progress=False)
    train(cfg, corpus / "resumed", device="cpu", stop_at_step=3, show_progress=False)
    train(cfg, corpus / "resumed", device="cpu", show_progress=False)
    a, b = load_checkpoint(corpus / "straight" / "last.pt"), load_checkpoint(corpus / "resumed" / "last.pt")
    assert a.step == b.step == 8
    states_close(a.model_state, b.model_state)
    assert a.extra["run"]["samples_seen"] == b.extra["run"]["samples_seen"] == 8 * 2 * 800


def test_speed_perturbation_needs_the_worker_loader():
    with pytest.raises(Exception, match="data.speed_perturb"):
        load_config("tiny", ["data.loader=device", "data.speed_perturb=0.1"])


def teacher_forced_nll(model: SpeechVQ, wav: torch.Tensor, speaker: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float(model(wav, speaker).nll)


def test_init_starts_where_the_source_left_off_and_matches_speakers_by_name(tmp_path):
    torch.manual_seed(0)
    cfg = load_config("tiny")
    source = SpeechVQ(cfg.model, speakers=["ann", "bob", "cy"])
    source.train()
    source(0.1 * torch.randn(2, 1, 1024), torch.tensor([0, 1]))  # k-means on data: initialised
    from speechvq.checkpoint import save_checkpoint
    save_checkpoint(tmp_path / "source.pt", source, cfg, step=7)
    export_checkpoint(tmp_path / "source.pt", tmp_path / "exported.pt")
    wav = 0.1 * torch.randn(2, 1, 1024)

    for path in ("source.pt", "exported.pt"):
        same = SpeechVQ(cfg.model, speakers=["ann", "bob", "cy"])
        report = init_from_checkpoint(same, tmp_path / path)
        assert report.kept == [] and report.rows == 3 and report.source_step == 7
        assert teacher_forced_nll(same, wav, torch.tensor([0, 2])) == pytest.approx(
            teacher_forced_nll(source, wav, torch.tensor([0, 2])), abs=1e-6)
        assert report.history[-1]["step"] == 7
        assert report.history[-1]["fingerprint"] == model_fingerprint(source)  # the model, whatever the file name

    # another table: rows follow the names; a new speaker keeps its fresh row
    other = SpeechVQ(cfg.model, speakers=["cy", "dee", "ann"])
    fresh_row = other.speaker_embedding.weight[1].detach().clone()
    report = init_from_checkpoint(other, tmp_path / "source.pt")
    assert report.rows == 2
    torch.testing.assert_close(other.speaker_embedding.weight[0], source.speaker_embedding.weight[2])
    torch.testing.assert_close(other.speaker_embedding.weight[2], source.speaker_embedding.weight[0])
    torch.testing.assert_close(other.speaker_embedding.weight[1], fresh_row)


def test_init_into_an_ema_codebook_reseeds_its_statistics(tmp_path):
    torch.manual_seed(0)
    cfg = load_config("tiny")
    source = SpeechVQ(cfg.model, speakers=["ann"])
    source.train()
    source(0.1 * torch.randn(2, 1, 1024), torch.tensor([0, 0]))
    from speechvq.checkpoint import save_checkpoint
    save_checkpoint(tmp_path / "source.pt", source, cfg)
    ema = SpeechVQ(load_config("tiny", ["model.quantizer.ema=true"]).model, speakers=["ann"])
    init_from_checkpoint(ema, tmp_path / "source.pt")
    codebook = source.quantizer.codebook.detach()
    torch.testing.assert_close(ema.quantizer.ema_embed_sum, codebook)
    assert torch.equal(ema.quantizer.ema_cluster_size, torch.ones(codebook.shape[0]))


def test_init_names_the_trained_tensors_a_config_has_no_place_for(tmp_path):
    # a source with pitch-lag tables given to a config without the taps: the report names the tables; the
    # tables still at zero (an untrained addition) are nothing lost and are not named
    from speechvq.checkpoint import save_checkpoint
    torch.manual_seed(0)
    lag_cfg = load_config("tiny", ["model.pitch.bits=6", "model.decoder.pitch_lag_taps=3"])
    source = SpeechVQ(lag_cfg.model, speakers=["ann"])
    save_checkpoint(tmp_path / "zero.pt", source, lag_cfg)
    torch.nn.init.normal_(source.decoder.lag_embedding.weight, std=0.1)
    save_checkpoint(tmp_path / "trained.pt", source, lag_cfg)
    plain = load_config("tiny", ["model.pitch.bits=6"])
    assert init_from_checkpoint(SpeechVQ(plain.model, speakers=["ann"]), tmp_path / "zero.pt").dropped == []
    report = init_from_checkpoint(SpeechVQ(plain.model, speakers=["ann"]), tmp_path / "trained.pt")
    assert report.dropped == ["decoder.lag_embedding.weight"]
    assert init_from_checkpoint(SpeechVQ(lag_cfg.model, speakers=["ann"]), tmp_path / "trained.pt").dropped == []


def test_context_blocks_added_by_init_start_the_run_where_its_source_was(tmp_path):
    # a continuation with model.decoder.cond_context_layers from a checkpoint without them: the blocks are kept
    # as built, their last 1x1 at zero, so the model starts with its source's NLL
    from speechvq.checkpoint import save_checkpoint
    torch.manual_seed(0)
    cfg = load_config("tiny")
    source = SpeechVQ(cfg.model, speakers=["ann"])
    source.train()
    source(0.1 * torch.randn(2, 1, 1024), torch.tensor([0, 0]))  # k-means on data: initialised
    save_checkpoint(tmp_path / "source.pt", source, cfg)
    wider = SpeechVQ(load_config("tiny", ["model.decoder.cond_context_layers=3"]).model, speakers=["ann"])
    report = init_from_checkpoint(wider, tmp_path / "source.pt")
    assert report.kept and all(".cond_net.context." in key for key in report.kept) and report.dropped == []
    wav = 0.1 * torch.randn(2, 1, 1024)
    assert teacher_forced_nll(wider, wav, torch.tensor([0, 0])) == pytest.approx(
        teacher_forced_nll(source, wav, torch.tensor([0, 0])), abs=1e-6)


def test_init_refuses_codes_of_another_rate_or_size(tmp_path):
    cfg = load_config("tiny")
    from speechvq.checkpoint import save_checkpoint
    save_checkpoint(tmp_path / "source.pt", SpeechVQ(cfg.model), cfg)
    other = SpeechVQ(load_config("tiny", ["model.quantizer.codebook_size=32"]).model)
    with pytest.raises(SpeechVQError, match="do not match"):
        init_from_checkpoint(other, tmp_path / "source.pt")


def test_train_init_records_history_and_is_not_applied_on_resume(corpus):
    first = train(small_config(corpus, "train.max_steps=2"), corpus / "first", device="cpu", show_progress=False)
    assert first.step == 2
    export_checkpoint(corpus / "first" / "last.pt", corpus / "first.pt")
    cfg = small_config(corpus, "train.max_steps=4")
    train(cfg, corpus / "second", device="cpu", stop_at_step=2, init=corpus / "first.pt", show_progress=False)
    run = load_checkpoint(corpus / "second" / "last.pt").extra["run"]
    start = Codec.from_checkpoint(corpus / "first.pt").fingerprint
    assert run["history"] == [{"step": 2, "samples_seen": 2 * 2 * 800, "source": "first.pt", "fingerprint": start}]
    # resuming: the weights come from last.pt, not from --init again
    before = load_checkpoint(corpus / "second" / "last.pt").model_state
    train(cfg, corpus / "second", device="cpu", stop_at_step=2, init=corpus / "first.pt", show_progress=False)
    states_close(before, load_checkpoint(corpus / "second" / "last.pt").model_state)
    exported = export_checkpoint(corpus / "second" / "last.pt", corpus / "second.pt")
    assert exported.extra["history"] == run["history"] and exported.extra["samples_seen"] == 2 * 2 * 800


def test_a_continuation_first_validates_the_weights_it_starts_from(corpus):
    # Both GPU leases' continuations got worse from their first validation on; with the init's own score at
    # step 0 a log says so, and a run that never beats it keeps the init as best.pt.
    train(small_config(corpus, "train.max_steps=2"), corpus / "first", device="cpu", show_progress=False)
    export_checkpoint(corpus / "first" / "last.pt", corpus / "first.pt")
    plain = small_config(corpus, "train.max_steps=2")
    train(plain, corpus / "scratch", device="cpu", show_progress=False)
    assert [m["step"] for m in _valid_records(corpus / "scratch")] == [2]  # no init: nothing to validate first
    # Adam at lr 1 wrecks the decoder in a few steps: the init's score stays the best, at step 0
    result = train(small_config(corpus, "train.max_steps=4", "train.lr=1", "train.warmup_steps=0",
                                "train.freeze_encoder=true"), corpus / "second", device="cpu",
                   init=corpus / "first.pt", show_progress=False)
    records = _valid_records(corpus / "second")
    assert [m["step"] for m in records] == [0, 4]
    init_model = load_checkpoint(corpus / "first.pt").build_model()
    valid = SegmentDataset(read_manifest(plain.data.valid_manifest)[:plain.data.valid_max_utterances],
                           init_model.speakers, AudioCache(plain.data.cache_dir, plain.model.sample_rate,
                                                           plain.model.level_dbfs), 800, seed=plain.train.seed)
    assert records[0]["nll"] == pytest.approx(loop.evaluate(init_model, valid, torch.device("cpu"), 2)["nll"], abs=1e-6)
    assert result.best_valid_nll == pytest.approx(records[0]["nll"], abs=1e-6)
    assert load_checkpoint(corpus / "second" / "best.pt").step == 0


def _valid_records(exp_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, (exp_dir / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "valid"]


def test_new_weights_learn_at_their_own_rate_and_resume_exactly(corpus):
    train(small_config(corpus, "train.max_steps=2"), corpus / "first", device="cpu", show_progress=False)
    export_checkpoint(corpus / "first" / "last.pt", corpus / "first.pt")  # no pitch stream
    moved = {}
    for scale in (1, 10):
        cfg = small_config(corpus, "train.max_steps=4", "model.pitch.bits=6", f"train.new_weights_lr_scale={scale}")
        straight = corpus / f"straight{scale}"
        train(cfg, straight, device="cpu", init=corpus / "first.pt", show_progress=False)
        last = load_checkpoint(straight / "last.pt")
        groups = last.optimizer_state["param_groups"]
        if scale == 1:  # one group, as before the option existed
            assert last.extra["run"]["new_weights"] == [] and len(groups) == 1
        else:
            assert last.extra["run"]["new_weights"] == ["pitch_embedding.weight"]
            assert [len(g["params"]) for g in groups][1] == 1
            assert groups[1]["initial_lr"] == pytest.approx(10 * groups[0]["initial_lr"], rel=1e-12)
            # stopped and resumed (where --init is not applied again), the groups and the run are the same
            train(cfg, corpus / "resumed", device="cpu", init=corpus / "first.pt", stop_at_step=2,
                  show_progress=False)
            train(cfg, corpus / "resumed", device="cpu", init=corpus / "first.pt", show_progress=False)
            states_close(last.model_state, load_checkpoint(corpus / "resumed" / "last.pt").model_state)
        moved[scale] = last.model_state["pitch_embedding.weight"].abs().max().item()  # they start at zero
    assert moved[1] > 0 and moved[10] > 5 * moved[1]


def test_new_weights_include_names_trained_tensors_for_the_scaled_rate(corpus):
    # a tensor the source trained (here the whole speaker table) joins the scaled group by name pattern;
    # the source's other tensors stay at lr
    train(small_config(corpus, "train.max_steps=2"), corpus / "first", device="cpu", show_progress=False)
    export_checkpoint(corpus / "first" / "last.pt", corpus / "first.pt")
    scaled = ("train.max_steps=3", "train.new_weights_lr_scale=10")
    cfg = small_config(corpus, *scaled, "train.new_weights_include=[speaker_embedding.*]")
    train(cfg, corpus / "included", device="cpu", init=corpus / "first.pt", show_progress=False)
    last = load_checkpoint(corpus / "included" / "last.pt")
    assert last.extra["run"]["new_weights"] == ["speaker_embedding.weight"]
    groups = last.optimizer_state["param_groups"]
    assert len(groups[1]["params"]) == 1
    assert groups[1]["initial_lr"] == pytest.approx(10 * groups[0]["initial_lr"], rel=1e-12)
    with pytest.raises(SpeechVQError, match="matches no trainable parameter"):
        train(small_config(corpus, *scaled, "train.new_weights_include=[decoder.no_such.*]"), corpus / "typo",
              device="cpu", init=corpus / "first.pt", show_progress=False)
    with pytest.raises(ConfigError, match="train.new_weights_include"):
        small_config(corpus, "train.new_weights_include=[speaker_embedding.*]")


def test_freeze_encoder_trains_the_decoder_only_and_keeps_every_code(corpus):
    with pytest.raises(SpeechVQError, match="--init"):
        train(small_config(corpus, "train.freeze_encoder=true"), corpus / "no_init", device="cpu", show_progress=False)
    # dead_code_window=1 would restart every unused code at each step if the quantizer were still training
    train(small_config(corpus, "train.max_steps=2", "model.quantizer.dead_code_window=1"), corpus / "first",
          device="cpu", show_progress=False)
    export_checkpoint(corpus / "first" / "last.pt", corpus / "first.pt")
    cfg = small_config(corpus, "train.max_steps=4", "train.freeze_encoder=true", "model.quantizer.dead_code_window=1")
    train(cfg, corpus / "frozen", device="cpu", init=corpus / "first.pt", show_progress=False)
    before, after = load_checkpoint(corpus / "first.pt").model_state, load_checkpoint(corpus / "frozen" / "last.pt")
    encoder_side = [k for k in before if k.startswith(("encoder.", "quantizer."))]
    assert "quantizer.codebook" in encoder_side and "encoder.layers.1.weight" in encoder_side
    states_close({k: before[k] for k in encoder_side}, {k: after.model_state[k] for k in encoder_side})
    decoder = [k for k in before if k.startswith("decoder.") and before[k].is_floating_point()]
    assert any(not torch.equal(before[k], after.model_state[k]) for k in decoder)
    assert after.model_state["quantizer.total_restarts"] == before["quantizer.total_restarts"]
    rows = [json.loads(line) for line in (corpus / "frozen" / "metrics.jsonl").read_text().splitlines()]
    assert [r["restarts"] for r in rows if r["kind"] == "train"] == [0.0, 0.0]
    # the same input gives the same codes before and after
    wav = torch.randn(1, 1, 1600, generator=torch.Generator().manual_seed(0)) * 0.1
    first, frozen = SpeechVQ(cfg.model), SpeechVQ(cfg.model)
    first.load_state_dict(before, strict=False)
    frozen.load_state_dict(after.model_state, strict=False)
    assert torch.equal(first.eval().encode(wav), frozen.eval().encode(wav))


def test_a_frozen_encoder_keeps_inits_code_statistics_through_resume_and_export(corpus):
    from speechvq.codec import Codec, measure_code_statistics, save_code_statistics
    from tests.helpers import voiced_signal

    train(small_config(corpus, "train.max_steps=2"), corpus / "first", device="cpu", show_progress=False)
    export_checkpoint(corpus / "first" / "last.pt", corpus / "first.pt")
    source = load_checkpoint(corpus / "first.pt").build_model()
    save_code_statistics(corpus / "first.pt",
                         measure_code_statistics(Codec(source), [voiced_signal(1600, seed=s) for s in range(3)]))
    measured = load_checkpoint(corpus / "first.pt").code_statistics
    frozen = small_config(corpus, "train.max_steps=4", "train.freeze_encoder=true", "train.valid_every=2")
    train(frozen, corpus / "frozen", device="cpu", init=corpus / "first.pt", stop_at_step=2, show_progress=False)
    train(frozen, corpus / "frozen", device="cpu", init=corpus / "first.pt", show_progress=False)  # resumed
    for path in ("last.pt", "best.pt"):
        carried = load_checkpoint(corpus / "frozen" / path).code_statistics
        assert torch.equal(carried["unigram"], measured["unigram"]) and carried["utterances"] == 3
        assert torch.equal(carried["bigram"], measured["bigram"])
    export_checkpoint(corpus / "frozen" / "last.pt", corpus / "frozen.pt")
    assert Codec.from_checkpoint(corpus / "frozen.pt").statistics.utterances == 3  # its files are entropy-coded
    # an encoder that trains, or a pitch stream the source's statistics did not count: new codes, none carried
    for name, options in (("trained", ()), ("pitch", ("train.freeze_encoder=true", "model.pitch.bits=6"))):
        train(small_config(corpus, "train.max_steps=2", *options), corpus / name, device="cpu",
              init=corpus / "first.pt", show_progress=False)
        assert load_checkpoint(corpus / name / "last.pt").code_statistics is None


def test_a_continuation_keeps_the_voice_pitch_means_its_init_brings_through_resume(corpus):
    pitch = "model.pitch.bits=6"
    train(small_config(corpus, "train.max_steps=2", pitch), corpus / "first", device="cpu", show_progress=False)
    export_checkpoint(corpus / "first" / "last.pt", corpus / "first.pt")
    measured = load_checkpoint(corpus / "first.pt").model_state
    assert int((measured["voice_pitch_updates"] > 0).sum()) >= 1  # the first run measured some voices
    cfg = small_config(corpus, "train.max_steps=4", pitch)
    train(cfg, corpus / "second", device="cpu", init=corpus / "first.pt", stop_at_step=2, show_progress=False)
    train(cfg, corpus / "second", device="cpu", init=corpus / "first.pt", show_progress=False)  # resumed
    last = load_checkpoint(corpus / "second" / "last.pt")
    assert last.step == 4
    held = measured["voice_pitch_updates"] > 0
    assert torch.equal(last.model_state["voice_pitch"][held], measured["voice_pitch"][held])
    assert torch.equal(last.model_state["voice_pitch_updates"][held], measured["voice_pitch_updates"][held])
    speakers = json.loads(Path(cfg.data.speakers).read_text())["speakers"]
    assert last.extra["run"]["held_voice_pitch"] == [name for name, h in zip(speakers, held.tolist()) if h]


class FakeClock:
    """time.monotonic for the loop: every reading advances by `tick` seconds."""

    def __init__(self, tick: float):
        self.now, self.tick = 1000.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_step_clock_fits_the_schedule_to_the_time_left(monkeypatch):
    clock_time = FakeClock(0.0)
    monkeypatch.setattr(loop.time, "monotonic", clock_time)
    clock = loop._StepClock(deadline=1000.0 + 100.0)
    end = ScheduleEnd(10_000)
    assert not clock.refit(10, end)  # the first reading starts the clock (compilation excluded)
    clock_time.now += 10.0  # 20 steps in 10 s: 2 steps/s
    assert clock.refit(30, end)
    # at 1010 s: 90 s left, less the 5 s kept to save: 85 s x 2 steps/s after step 30
    assert end.max_steps == 30 + 170
    assert not clock.out_of_time()
    clock_time.now = 1000.0 + 96.0
    assert clock.out_of_time()


def test_step_clock_follows_a_rate_that_rises_when_neighbours_end(monkeypatch):
    # runs that share a GPU share its time: a run speeds up when the others end, and the fitted end follows the
    # rate of the last window of steps, not the whole run's mean
    clock_time = FakeClock(0.0)
    monkeypatch.setattr(loop.time, "monotonic", clock_time)
    clock = loop._StepClock(deadline=1000.0 + 200.0, window_steps=100)
    end = ScheduleEnd(100_000)
    assert not clock.refit(0, end)
    for step, seconds in [(100, 50.0), (200, 10.0), (300, 10.0)]:  # 2 steps/s, then 10 steps/s
        clock_time.now += seconds
        clock.refit(step, end)
    # at 1070 s: 130 s left, less 5 s to save, at 10 steps/s (the whole run's mean, 300 / 70 s, would give 835)
    assert end.max_steps == 300 + 1250


def test_max_minutes_fits_the_schedule_and_ends_inside_the_budget(corpus, monkeypatch):
    clock = FakeClock(0.05)  # every reading: 50 ms later
    monkeypatch.setattr(loop.time, "monotonic", clock)
    cfg = small_config(corpus, "train.max_steps=100000", "train.valid_every=100000")
    result = train(cfg, corpus / "timed", device="cpu", max_minutes=0.1, show_progress=False)
    run = load_checkpoint(corpus / "timed" / "last.pt").extra["run"]
    assert result.stopped in ("max_steps", "time_limit")  # the fitted end, or the deadline, whichever first
    assert 0 < run["fitted_max_steps"] < 1000 and 0 < result.step <= run["fitted_max_steps"]
    assert clock.now - 1000.0 <= 6.0 + 1.0  # 0.1 min, plus the readings of the final validation and save


def test_code_jitter_takes_neighbours_only_in_training():
    torch.manual_seed(0)
    local = torch.arange(2 * 3 * 50, dtype=torch.float32).reshape(2, 3, 50)
    assert jitter_frames(local, 0.0) is local
    jittered = jitter_frames(local, 1.0)
    frames = (jittered[:, 0] - local[:, 0, :1]) / 1.0  # channel 0 counts frames 0..49 (+ 50 x channel offset)
    moved = frames - torch.arange(50)
    assert set(moved.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert (moved[:, 1:-1] != 0).all()  # p = 1: every inner frame took a neighbour
    assert torch.equal(jittered[:, 1] - jittered[:, 0], local[:, 1] - local[:, 0])  # whole vectors move
    half = jitter_frames(local, 0.25)
    share = (half != local).any(dim=1).float().mean().item()
    assert 0.15 < share < 0.35

    model = SpeechVQ(load_config("tiny", ["model.code_jitter=0.5"]).model, speakers=["a"])
    wav = 0.1 * torch.randn(1, 1, 1024)
    model.eval()
    with torch.no_grad():
        assert float(model(wav, torch.tensor([0])).nll) == float(model(wav, torch.tensor([0])).nll)


def test_compiled_training_matches_eager_and_refuses_partial_frames(corpus):
    torch.manual_seed(0)
    cfg = load_config("tiny")
    eager = SpeechVQ(cfg.model, speakers=["a", "b"]).train()
    wav, speaker = 0.1 * torch.randn(2, 1, 1024), torch.tensor([0, 1])
    eager(wav, speaker)  # k-means
    compiled = SpeechVQ(cfg.model, speakers=["a", "b"]).train()
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_training()
    for model in (eager, compiled):
        model.zero_grad()
        model(wav, speaker).loss.backward()
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-6, msg=name)
    with pytest.raises(SpeechVQError, match="whole code frames"):
        train(small_config(corpus, "train.compile=true", "data.segment_s=0.05"), corpus / "c", device="cpu",
              show_progress=False)


def test_float32_runs_use_ieee_float32_on_cuda_and_bf16_runs_tf32(cuda_math_flags):
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True  # PyTorch's cuDNN default
    loop.configure_cuda_math("fp32")
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cudnn.benchmark
    loop.configure_cuda_math("bf16")
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32


@pytest.mark.slow
def test_gpu_session_cpu_smoke_runs_every_stage(tmp_path):
    from tests.test_recipes import recipe_copy

    recipe = recipe_copy(tmp_path, "folder")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT)}
    # with what the lent GPU image lacks hidden (tools/lent_image.py): the first lease's evaluations all
    # failed there, and a stage that needs an uncarried package must fail here instead
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "lent_image.py"), "run", "--", "bash",
                             "gpu_session.sh", "--cpu-smoke"], cwd=recipe, capture_output=True, text=True,
                            env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "failed" not in result.stderr, result.stderr[-3000:]
    # nor did bash complain on the way (an ablation's changes once overwrote the --more flag: "command not found")
    assert not re.search(r"gpu_session\.sh: line \d+:", result.stderr), result.stderr[-3000:]
    out = recipe / "exp" / "gpu_session_smoke" / "out"
    assert sorted(p.name for p in out.iterdir()) == ["fast.pt", "logs.tar.gz", "main.pt", "pitch.pt", "summary.md"]
    summary = (out / "summary.md").read_text()
    decoded = summary[summary.index("## Decoded scores"):]
    for run in ("main", "fast", "pitch", "init"):
        assert f"| {run} |" in summary
        # every model was decoded and scored (a failed evaluation leaves its row out); PESQ is not on the image
        assert re.search(rf"^\| {run} \| 2 \| n/a \| \d\.\d{{3}} \| \d+\.\d\d \|", decoded, re.M), decoded
    # its zero-started pitch vectors and lag taps learn faster
    assert "pitch stream 6 bits, pitch-lag input 5 taps, new weights at 10 x lr" in summary
    # the main run trains for --minutes, each ablation for the shorter --ablation_minutes (the smoke's 0.35, 0.3)
    runs = summary[summary.index("## Training runs"):summary.index("## Decoded scores")]
    for run, budget in [("main", "0.35"), ("fast", "0.3"), ("pitch", "0.3")]:
        assert re.search(rf"^\| {run} \| {re.escape(budget)} \|", runs, re.M), runs
    # each continuation's first validation is of its init: the summary's valid NLL at step 0
    assert re.search(r"^\| main \| 0\.35 \| \d+ \| [\d.,]+ \| [\d,]+ \| \d\.\d{4} \| \d\.\d{4} \(\d+\) \|", runs, re.M), runs
    # the main run took the old path, the fast run the device loader and the compiled step
    assert re.search(r"^\| main \|.*workers loader, eager, unfused Adam, fp32, decoder only", runs, re.M), runs
    assert re.search(r"^\| fast \|.*device loader, compiled, fused Adam, bf16, whole model", runs, re.M), runs
    # the GPU tests ran beside stages 4 and 5 (collected in the lent image's view; skipped without a GPU)
    assert re.search(r"^pytest -m gpu: [1-9]\d* skipped, \d+ deselected in", summary, re.M), summary
    assert "| compiled |" in summary and "| before |" in summary
    # the fast-path check ran on the init beside the GPU tests: the device loader's crops are the host's, and
    # each path it was given trained from the init's held-out NLL
    assert re.search(r"^loader: 0 of \d+ device crops differ", summary, re.M), summary
    for path in ("old-fp32", "fast"):
        assert re.search(rf"^steps +{path}: held-out NLL \(gradient norm\) 0:\d\.\d{{4}} 2:", summary, re.M), summary
    main_run = load_checkpoint(out / "main.pt")
    assert main_run.extra["history"][-1]["source"] == "previous.pt" and main_run.code_statistics is not None
    # the main run continues the decoder only: the encoder and codebook it started from are unchanged
    previous_checkpoint = load_checkpoint(recipe / "exp" / "gpu_session_smoke" / "previous.pt")
    previous = previous_checkpoint.model_state
    frozen = [k for k in previous if k.startswith("encoder.") or k == "quantizer.codebook"]
    assert frozen and all(torch.equal(previous[k], main_run.model_state[k]) for k in frozen)
    # so its init's code statistics still hold and were kept; the whole-model fast run measured its own
    assert "main: the encoder side was frozen" in result.stderr and "fast: the encoder side" not in result.stderr
    assert torch.equal(main_run.code_statistics["bigram"], previous_checkpoint.code_statistics["bigram"])
    assert load_checkpoint(out / "fast.pt").code_statistics is not None
    assert "decoder only" in summary and "whole model" in summary

    # the lease's second call, on the machine the first left: the main model continues alone (no probe, ablations,
    # GPU tests or evaluations) and comes back as more.pt
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "lent_image.py"), "run", "--", "bash",
                             "gpu_session.sh", "--cpu-smoke", "--more", "true", "--out", str(tmp_path / "more"),
                             "--out_limit_mib", "0", "--minutes", "0.2"],
                            cwd=recipe, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "failed" not in result.stderr and "Stage 5" not in result.stderr, result.stderr[-3000:]
    assert not re.search(r"gpu_session\.sh: line \d+:", result.stderr), result.stderr[-3000:]
    assert "the first call's manifests, audio cache and probe" in result.stderr
    assert sorted(p.name for p in (tmp_path / "more").iterdir()) == ["logs.tar.gz", "more.pt", "summary.md"]
    more = load_checkpoint(tmp_path / "more" / "more.pt")
    assert more.extra["history"][-1]["source"] == "main.pt" and more.code_statistics is not None
    assert all(torch.equal(previous[k], more.model_state[k]) for k in frozen)  # decoder only again
    assert not torch.equal(main_run.model_state["decoder.post_logits.weight"], more.model_state["decoder.post_logits.weight"])
    assert re.search(r"^\| more \| 0\.2 \|", (tmp_path / "more" / "summary.md").read_text(), re.M)  # --minutes
    # over --out_limit_mib the logs leave the spectrogram plots out (the first call's had them)
    with tarfile.open(out / "logs.tar.gz") as first, tarfile.open(tmp_path / "more" / "logs.tar.gz") as second:
        assert any(n.endswith(".png") for n in first.getnames()) and "./eval/main/report.json" in second.getnames()
        assert not any(n.endswith(".png") for n in second.getnames())
        assert not any(n.endswith("manifests/train.jsonl") for n in first.getnames())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")
@pytest.mark.parametrize("options", [(), ("model.pitch.bits=6",), ("train.freeze_encoder=true",)],
                         ids=["plain", "pitch", "frozen"])
def test_training_steps_never_wait_for_the_gpu(corpus, monkeypatch, options):
    # Between log intervals a step must queue work and return: any host sync (.item(), bool(tensor),
    # nonzero, a pageable copy) raises under the "error" sync-debug mode. Intervals and validation are
    # pushed past the steps run here, which end with a stop request checked on the host only.
    cfg = small_config(corpus, "data.loader=device", "data.segment_s=0.064", "train.log_every=1000",
                       "train.valid_every=1000", "train.checkpoint_every=1000", "train.max_steps=1000", *options)
    calls = {"n": 0}
    original = loop._train_step

    def strict_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:  # the first step initialises the codebook (k-means reads the device)
            return original(*args, **kwargs)
        torch.cuda.set_sync_debug_mode("error")
        try:
            return original(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    init = None
    if "train.freeze_encoder=true" in options:  # a decoder-only run continues a trained model
        train(small_config(corpus, "train.max_steps=1"), corpus / "gpu_init", device="cpu", show_progress=False)
        init = corpus / "gpu_init.pt"
        export_checkpoint(corpus / "gpu_init" / "last.pt", init)
    monkeypatch.setattr(loop, "_train_step", strict_step)
    result = train(cfg, corpus / ("gpu_" + "_".join(options)), device="cuda", stop_at_step=5, show_progress=False,
                   init=init)
    assert result.step == 5 and calls["n"] == 5


class _HostReads(TorchDispatchMode):
    """Raises on the operators that make a CUDA step wait for the device: reading a value back (`.item()`,
    `bool(tensor)`), or an output whose size depends on the data (nonzero, boolean-mask indexing, bincount,
    unique). On the CPU they cost nothing, so only this list can tell, without a GPU, that a training step
    would sync there (the lent GPU's sync test found `torch.bincount` on 2026-12-04)."""

    aten = torch.ops.aten
    SYNCING = {aten._local_scalar_dense.default, aten.is_nonzero.default, aten.equal.default,
               aten.nonzero.default, aten.masked_select.default, aten.bincount.default,
               aten._unique2.default, aten.unique_consecutive.default, aten.unique_dim.default,
               aten.repeat_interleave.Tensor, aten.masked_scatter.default}

    def __init__(self):
        super().__init__()
        self.paused = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.paused:
            indices = args[1] if func in (self.aten.index.Tensor, self.aten.index_put_.default,
                                          self.aten.index_put.default) else ()
            if func in self.SYNCING or any(i is not None and i.dtype == torch.bool for i in indices):
                raise AssertionError(f"{func} reads the device back: a CUDA training step would wait here")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("options", [(), ("model.pitch.bits=6", "model.decoder.pitch_lag_taps=5"),
                                     ("train.freeze_encoder=true",), ("model.quantizer.ema=true",),
                                     ("model.quantizer.dead_code_window=2", "model.code_jitter=0.3"),
                                     ("model.speaker_mode=utterance",)],
                         ids=["plain", "pitch-lag", "frozen", "ema", "restarts-jitter", "utterance"])
def test_training_steps_read_nothing_back_from_the_device(corpus, monkeypatch, options):
    # The CPU's view of test_training_steps_never_wait_for_the_gpu: every operator of steps 2-5 (forward,
    # backward, clipping, the device loader's crops, the statistics sums) is checked against the list of
    # syncing ones. The CPU's Adam reads its step count (`.item()`); CUDA's fused Adam does not, so the
    # optimizer's own step is left out.
    cfg = small_config(corpus, "data.loader=device", "data.segment_s=0.064", "train.log_every=1000",
                       "train.valid_every=1000", "train.checkpoint_every=1000", "train.max_steps=1000", *options)
    mode, calls, original = _HostReads(), {"n": 0}, loop._train_step
    adam_step = torch.optim.Adam.step

    def paused_adam_step(self, *args, **kwargs):
        mode.paused = True
        try:
            return adam_step(self, *args, **kwargs)
        finally:
            mode.paused = False

    def strict_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:  # the first step initialises the codebook (k-means reads the device)
            return original(*args, **kwargs)
        with mode:
            return original(*args, **kwargs)

    init = None
    if "train.freeze_encoder=true" in options:
        train(small_config(corpus, "train.max_steps=1"), corpus / "cpu_init", device="cpu", show_progress=False)
        init = corpus / "cpu_init.pt"
        export_checkpoint(corpus / "cpu_init" / "last.pt", init)
    monkeypatch.setattr(loop, "_train_step", strict_step)
    monkeypatch.setattr(torch.optim.Adam, "step", paused_adam_step)
    result = train(cfg, corpus / ("cpu_" + "_".join(options)), device="cpu", stop_at_step=5, show_progress=False,
                   init=init)
    assert result.step == 5 and calls["n"] == 5
