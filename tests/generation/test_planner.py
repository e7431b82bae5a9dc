"""`--engine auto` on the CPU: the engine measured fastest, cached per machine and decoder; the policy is pinned
here with injected timings (and the real measurement is run once on a tiny decoder)."""

from __future__ import annotations

import json
import threading

import filelock
import pytest
import torch

from speechvq.config import DecoderConfig
from speechvq.generation import GenerationEngine, planner
from speechvq.generation.planner import Choice
from speechvq.models.wavenet import WaveNet

NATIVE16, NATIVE32, NUMBA, TORCH = (Choice("native", "fp16"), Choice("native", "fp32"), Choice("numba", "full"),
                                    Choice("torch", "full"))


def decoder() -> WaveNet:
    torch.manual_seed(0)
    config = DecoderConfig(n_layers=4, dilation_cycle=4, kernel_size=2, residual_channels=12, gate_channels=16,
                           skip_channels=20, cond_channels=10, cond_layers=1)
    return WaveNet(config, classes=256, hop_length=8, local_channels=6, global_channels=5).eval()


class Timings:
    """Injected rates: samples/s per choice (and per measured width, when given as {streams: rates})."""

    def __init__(self, rates):
        self.rates, self.calls = rates, []

    def __call__(self, model, choice, threads, streams, march=None):
        self.calls.append((choice, threads, streams))
        rates = self.rates.get(streams, self.rates) if isinstance(next(iter(self.rates)), int) else self.rates
        return rates[choice]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHVQ_CACHE", str(tmp_path))
    monkeypatch.setattr(planner, "_memory", {})
    return tmp_path / planner.FILE_NAME


def fresh_process(monkeypatch):
    monkeypatch.setattr(planner, "_memory", {})  # what a new process knows: only the file


def test_the_fastest_engine_is_chosen_and_the_ranking_cached(cache, monkeypatch):
    timings = Timings({NATIVE16: 10.0, NATIVE32: 20.0, NUMBA: 30.0, TORCH: 1.0})
    assert planner.choose(decoder(), 2, 8, "reduced", measure=timings) == NUMBA
    assert {call[0] for call in timings.calls} == {NATIVE16, NATIVE32, NUMBA, TORCH}
    assert all(threads == 2 and streams == 8 for _, threads, streams in timings.calls)
    entry = next(iter(json.loads(cache.read_text())["entries"].values()))
    assert entry["ranking"] == [["numba", "full"], ["native", "fp32"], ["native", "fp16"], ["torch", "full"]]
    assert entry["key"]["threads"] == 2 and entry["key"]["decoder"]["layers"] == 4

    fresh_process(monkeypatch)
    again = Timings({})  # any measurement would fail: the file answers
    assert planner.choose(decoder(), 2, 8, "reduced", measure=again) == NUMBA and again.calls == []


def test_a_process_waits_for_a_measurement_in_progress_and_reads_its_answer(cache, monkeypatch):
    # another process holds the lock while it times the engines: this one must not time them too (on cores the
    # other is loading), but wait and take the ranking it writes
    elsewhere = cache.parent / "elsewhere"
    monkeypatch.setenv("SPEECHVQ_CACHE", str(elsewhere))
    planner.choose(decoder(), 2, 8, "reduced", measure=Timings({NATIVE16: 1.0, NATIVE32: 2.0, NUMBA: 9.0, TORCH: 3.0}))
    monkeypatch.setenv("SPEECHVQ_CACHE", str(cache.parent))
    fresh_process(monkeypatch)

    holder = filelock.FileLock(str(cache) + ".lock")
    holder.acquire()
    waiting = Timings({NATIVE16: 9.0, NATIVE32: 1.0, NUMBA: 1.0, TORCH: 1.0})
    answer = {}
    thread = threading.Thread(target=lambda: answer.update(choice=planner.choose(decoder(), 2, 8, "reduced",
                                                                                 measure=waiting)))
    thread.start()
    thread.join(timeout=0.5)
    assert thread.is_alive() and waiting.calls == []  # blocked on the lock, nothing timed
    cache.write_bytes((elsewhere / planner.FILE_NAME).read_bytes())  # the other process's answer
    holder.release()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert answer["choice"] == NUMBA and waiting.calls == []

def test_full_precision_never_considers_half_weights(cache):
    timings = Timings({NATIVE16: 100.0, NATIVE32: 20.0, NUMBA: 30.0, TORCH: 1.0})
    assert planner.choose(decoder(), 1, 4, "full", measure=timings) == NUMBA
    assert NATIVE16 not in {call[0] for call in timings.calls}
    assert planner.choose(decoder(), 1, 4, "reduced", measure=timings) == NATIVE16  # a separate entry


def test_ties_keep_the_preference_order(cache):
    assert planner.choose(decoder(), 1, 4, "reduced", measure=Timings(dict.fromkeys(planner.CANDIDATES, 5.0))) \
        == NATIVE16


def test_narrow_and_wide_batches_are_measured_and_chosen_apart(cache):
    # one stream per thread vs four: each width is timed at its own width and may pick its own engine
    timings = Timings({2: {NATIVE16: 1.0, NATIVE32: 1.0, NUMBA: 9.0, TORCH: 1.0},
                       8: {NATIVE16: 9.0, NATIVE32: 1.0, NUMBA: 1.0, TORCH: 1.0}})
    assert planner.width(1, 2) == 2 and planner.width(3, 2) == 2 and planner.width(4, 2) == 8
    assert planner.choose(decoder(), 2, 1, "reduced", measure=timings) == NUMBA
    assert planner.choose(decoder(), 2, 16, "reduced", measure=timings) == NATIVE16
    assert {streams for _, _, streams in timings.calls} == {2, 8}


def test_a_corrupt_cache_is_ignored_and_rewritten(cache, monkeypatch):
    for damage in (b"{not json", b"\x00\xff" * 10, b'{"format": 1, "entries": []}', b'{"format": 99}',
                   b"[1, 2, 3]"):
        cache.write_bytes(damage)
        fresh_process(monkeypatch)
        timings = Timings({NATIVE16: 1.0, NATIVE32: 2.0, NUMBA: 3.0, TORCH: 4.0})
        assert planner.choose(decoder(), 1, 1, "reduced", measure=timings) == TORCH
        assert len(timings.calls) == 4
        assert json.loads(cache.read_text())["format"] == planner.FORMAT
    # a well-formed file whose entry is damaged (an unknown engine, a missing ranking) is measured again
    data = json.loads(cache.read_text())
    (key, entry), = data["entries"].items()
    for bad in ([["warp-drive", "full"]], None, [["native"]]):
        entry["ranking"] = bad
        cache.write_text(json.dumps(data))
        fresh_process(monkeypatch)
        timings = Timings({NATIVE16: 1.0, NATIVE32: 5.0, NUMBA: 3.0, TORCH: 4.0})
        assert planner.choose(decoder(), 1, 1, "reduced", measure=timings) == NATIVE32 and timings.calls


def test_stale_entries_are_not_used_and_are_dropped(cache, monkeypatch):
    planner.choose(decoder(), 1, 1, "reduced", measure=Timings({NATIVE16: 1.0, NATIVE32: 2.0, NUMBA: 3.0,
                                                                   TORCH: 4.0}))
    data = json.loads(cache.read_text())
    (key, entry), = data["entries"].items()
    entry["key"]["version"] = "0.0.0-old"
    data["entries"]["an-old-key"] = entry  # left by an older version of the package
    cache.write_text(json.dumps(data))
    monkeypatch.setattr(planner, "__version__", "9.9.9")  # this process: a newer version, other keys
    fresh_process(monkeypatch)
    timings = Timings({NATIVE16: 7.0, NATIVE32: 2.0, NUMBA: 3.0, TORCH: 4.0})
    assert planner.choose(decoder(), 1, 1, "reduced", measure=timings) == NATIVE16 and len(timings.calls) == 4
    entries = json.loads(cache.read_text())["entries"]
    assert len(entries) == 1 and next(iter(entries.values()))["key"]["version"] == "9.9.9"


def test_an_engine_that_cannot_run_now_sends_the_entry_back_to_measurement(cache, monkeypatch):
    from speechvq.generation import engine as engine_module

    planner.choose(decoder(), 1, 1, "reduced", measure=Timings({NATIVE16: 1.0, NATIVE32: 2.0, NUMBA: 9.0,
                                                                   TORCH: 4.0}))
    monkeypatch.setattr(engine_module, "numba_available", lambda: False)  # numba uninstalled since
    fresh_process(monkeypatch)
    timings = Timings({NATIVE16: 1.0, NATIVE32: 2.0, TORCH: 4.0})
    assert planner.choose(decoder(), 1, 1, "reduced", measure=timings) == TORCH
    assert NUMBA not in {call[0] for call in timings.calls}


def test_generation_engine_auto_follows_the_measured_ranking_per_width(cache, monkeypatch):
    timings = Timings({1: {NATIVE16: 1.0, NATIVE32: 1.0, NUMBA: 1.0, TORCH: 9.0},
                       4: {NATIVE16: 1.0, NATIVE32: 9.0, NUMBA: 1.0, TORCH: 1.0}})
    monkeypatch.setattr(planner, "measure_rate", timings)
    model = decoder()
    engine = GenerationEngine(model, "auto", threads=1, precision="reduced")
    assert (engine.engine, engine.precision) == ("native", "fp32")  # before any call: the wide choice
    generator = torch.Generator().manual_seed(3)
    local, speaker = torch.randn(1, 6, 40, generator=generator), torch.randn(1, 5, generator=generator)
    narrow, _ = engine.generate(300, local, speaker, generator=torch.Generator().manual_seed(4))
    assert engine.engine == "torch"
    reference = model.generate(300, local, speaker, generator=torch.Generator().manual_seed(4))
    assert torch.equal(narrow, reference)
    local, speaker = local.expand(4, -1, -1), speaker.expand(4, -1)
    wide, _ = engine.generate(300, local, speaker, generator=torch.Generator().manual_seed(4))
    assert (engine.engine, engine.precision) == ("native", "fp32")
    assert torch.equal(wide, model.generate(300, local, speaker, generator=torch.Generator().manual_seed(4)))


def test_explicit_engines_are_never_measured(cache, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("measured")

    monkeypatch.setattr(planner, "measure_rate", refuse)
    for name in ("native", "numba", "torch", "reference"):
        assert GenerationEngine(decoder(), name).engine == name
    assert not cache.exists()


def test_real_measurement_ranks_every_available_engine(cache, monkeypatch):
    monkeypatch.undo()  # the suite's injected preference order (conftest) off: time the engines for real
    monkeypatch.setenv("SPEECHVQ_CACHE", str(cache.parent))
    monkeypatch.setattr(planner, "_memory", {})
    messages = []
    ranking = planner.rank(decoder(), 1, 1, "reduced", progress=messages.append)
    assert sorted(ranking, key=str) == sorted(planner.candidates("reduced"), key=str)
    assert len(messages) == 1 and "timing the CPU engines" in messages[0]
    entry = next(iter(json.loads(cache.read_text())["entries"].values()))
    assert all(rate > 0 for rate in entry["samples_per_s"].values())
    rates = [entry["samples_per_s"][f"{c.engine}/{c.precision}"] for c in ranking]
    assert rates == sorted(rates, reverse=True)
