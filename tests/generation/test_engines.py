"""The fast paths equal the plain reference: logits to 1e-4, and the same samples for the same draws."""

from __future__ import annotations

import functools

import pytest
import torch

from speechvq.audio import mu_law_decode
from speechvq.config import DecoderConfig
from speechvq.generation import (Chunk, DecodeOptions, DecodeRequest, GenerationEngine, decode_requests, plan_chunks,
                                 resolve_engine)
from speechvq.generation.chunked import _assemble, _chunk_conditioning
from speechvq.generation.engine import lag_pieces
from speechvq.models.wavenet import WaveNet

HOP, LOCAL, SPEAKER = 8, 6, 5
CONDITIONING = {"none": (0, 0), "speaker": (0, SPEAKER), "speaker+local": (LOCAL, SPEAKER)}
FAST = ["native", "torch", "numba", "graph"]  # graph: the CUDA-graph block, run eagerly on the CPU here


def decoder(local: int, speaker: int, kernel_size: int = 2) -> WaveNet:
    torch.manual_seed(0)
    config = DecoderConfig(n_layers=6, dilation_cycle=3, kernel_size=kernel_size, residual_channels=12,
                           gate_channels=16, skip_channels=20, cond_channels=10, cond_layers=1)
    return WaveNet(config, classes=256, hop_length=HOP, local_channels=local, global_channels=speaker).eval()


def conditioning(model: WaveNet, batch: int, n_samples: int):
    generator = torch.Generator().manual_seed(1)
    local = torch.randn(batch, LOCAL, -(-n_samples // HOP), generator=generator) if model.local_channels else None
    speaker = torch.randn(batch, SPEAKER, generator=generator) if model.global_channels else None
    return local, speaker


@pytest.mark.parametrize("conditioning_kind", list(CONDITIONING))
@pytest.mark.parametrize("engine", FAST)
def test_teacher_forced_logits_match_the_reference(engine, conditioning_kind):
    model = decoder(*CONDITIONING[conditioning_kind])
    n_samples = 2000
    local, speaker = conditioning(model, 2, n_samples)
    inputs = torch.randint(0, 256, (2, n_samples), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = model(inputs, local, speaker)
    _, logits = GenerationEngine(model, engine).generate(n_samples, local, speaker, batch_size=2, teacher=inputs)
    assert logits.shape == reference.shape
    assert (logits - reference).abs().max().item() <= 1e-4


@functools.lru_cache(maxsize=None)
def reference_draws(conditioning_kind: str, temperature: float, n_samples: int) -> torch.Tensor:
    """`model.generate`'s int64 `[2, n_samples]` codes for `decoder` and `conditioning` of this kind under seed 7,
    computed once and shared by every engine's test (the reference loop took most of each test's 3-4 s)."""
    model = decoder(*CONDITIONING[conditioning_kind])
    local, speaker = conditioning(model, 2, n_samples)
    return model.generate(n_samples, local, speaker, batch_size=2, temperature=temperature,
                          generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("temperature", [1.0, 0.0])
@pytest.mark.parametrize("conditioning_kind", list(CONDITIONING))
@pytest.mark.parametrize("engine", FAST)
def test_samples_equal_the_reference_for_the_same_draws(engine, conditioning_kind, temperature):
    model = decoder(*CONDITIONING[conditioning_kind])
    n_samples = 3000
    local, speaker = conditioning(model, 2, n_samples)
    reference = reference_draws(conditioning_kind, temperature, n_samples)
    fast, _ = GenerationEngine(model, engine).generate(n_samples, local, speaker, batch_size=2,
                                                       temperature=temperature,
                                                       generator=torch.Generator().manual_seed(7))
    assert torch.equal(fast, reference)


LAG_FAST = ["native", "torch", "numba", "graph"]  # and triton (short runs: its interpreter is slow)


def lag_decoder() -> WaveNet:
    """A decoder with the pitch-lag input (5 taps), its lag embeddings random (they start at zero)."""
    torch.manual_seed(0)
    config = DecoderConfig(n_layers=6, dilation_cycle=3, residual_channels=12, gate_channels=16, skip_channels=20,
                           cond_channels=10, cond_layers=1, pitch_lag_taps=5)
    model = WaveNet(config, classes=256, hop_length=HOP, local_channels=LOCAL, global_channels=SPEAKER).eval()
    torch.nn.init.normal_(model.lag_embedding.weight, std=0.5)
    return model


def lag_periods(batch: int, n_frames: int) -> torch.Tensor:
    """Periods of 3 to 60 samples with unvoiced frames, and a few too short to read (<= 2: read as unvoiced)."""
    period = torch.randint(3, 60, (batch, n_frames), generator=torch.Generator().manual_seed(4))
    period[:, 5:9] = 0
    period[0, 12] = 2
    return period


def assert_lag_engine_equals_reference(runner: GenerationEngine, model: WaveNet, period: torch.Tensor,
                                       n_samples: int) -> tuple:
    """The engine's teacher-forced logits equal the reference's with the pitch-lag input (to 1e-4; the input is
    read: without it they differ), and its samples under the same draws are the reference's. Returns the
    conditioning (local, speaker) of the 2 streams."""
    local, speaker = conditioning(model, 2, n_samples)
    inputs = torch.randint(0, 256, (2, n_samples), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = model(inputs, local, speaker, period=period)
        without = model(inputs, local, speaker, period=torch.zeros_like(period))
    _, logits = runner.generate(n_samples, local, speaker, teacher=inputs, period=period)
    assert (logits - reference).abs().max().item() <= 1e-4
    assert (without - reference).abs().max().item() > 1e-2  # the input is read
    sampled = model.generate(n_samples, local, speaker, generator=torch.Generator().manual_seed(7), period=period)
    fast, _ = runner.generate(n_samples, local, speaker, generator=torch.Generator().manual_seed(7), period=period)
    assert torch.equal(fast, sampled)
    return local, speaker


@pytest.mark.parametrize("engine", LAG_FAST)
def test_pitch_lag_logits_and_samples_equal_the_reference(engine):
    model = lag_decoder()
    n_samples = 1500
    runner = GenerationEngine(model, engine)
    local, speaker = assert_lag_engine_equals_reference(runner, model, lag_periods(2, -(-n_samples // HOP)),
                                                        n_samples)
    with pytest.raises(ValueError, match="pitch periods"):
        runner.generate(n_samples, local, speaker)


def test_pitch_lag_pieces_read_only_samples_from_before_them():
    period = lag_periods(2, 40).repeat_interleave(HOP, dim=1)[:, :300]
    pieces = lag_pieces(period, 100, latest_tap=2)
    assert pieces[0][0] == 100 and pieces[-1][1] == 400
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:])) and all(s0 < s1 for s0, s1 in pieces)
    for s0, s1 in pieces:
        window = period[:, s0 - 100:s1 - 100]
        reads = torch.arange(s0, s1) - window + 2
        assert (reads[window > 2] < s0).all()
    assert lag_pieces(torch.zeros(2, 50, dtype=torch.long), 0, 2) == [(0, 50)]  # unvoiced: one piece


def test_triton_kernel_carries_the_pitch_lag_input():
    # in Triton's interpreter (~0.15 s a step): 24 steps in launches of 16 (block_frames=2; the last partial),
    # periods of 3 to 12 (the taps read samples of the same launch and of the one before), an unvoiced frame and
    # one too short to read
    pytest.importorskip("triton")
    model = lag_decoder()
    period = torch.randint(3, 13, (2, 3), generator=torch.Generator().manual_seed(4))
    period[0, 1], period[1, 0] = 0, 2
    assert_lag_engine_equals_reference(GenerationEngine(model, "triton", block_frames=2), model, period, 24)


@pytest.mark.parametrize("engine", ["reference", "native", "graph"])
def test_one_chunk_equals_sequential_with_the_pitch_lag(engine):
    model = lag_decoder()
    local, speaker = conditioning(model, 1, 900)
    period = lag_periods(1, local.shape[-1])
    request = DecodeRequest(local[0], speaker[0], 900, period[0])
    runner = GenerationEngine(model, engine)
    outputs = [decode_requests(runner, [request], options, sample_rate=16000,
                               generator=torch.Generator().manual_seed(3))[0]
               for options in (DecodeOptions(mode="sequential"), DecodeOptions(mode="chunked", chunk_s=10.0))]
    assert torch.equal(outputs[0], outputs[1])
    direct = model.generate(900, local, speaker, generator=torch.Generator().manual_seed(3), period=period)
    assert torch.equal(outputs[0], mu_law_decode(direct)[0])
    chunked = decode_requests(runner, [request], DecodeOptions(chunk_s=0.02, overlap_s=0.008, crossfade_s=0.004),
                              16000, generator=torch.Generator().manual_seed(3))[0]
    assert chunked.shape == (900,) and chunked.abs().max() <= 1


def test_graph_blocks_longer_than_a_frame_and_a_partial_last_block():
    # dilations up to 16 with hop 8: blocks of 16 steps (two frames); 1003 samples end inside a block
    torch.manual_seed(0)
    config = DecoderConfig(n_layers=5, dilation_cycle=5, kernel_size=2, residual_channels=12, gate_channels=16,
                           skip_channels=20, cond_channels=10, cond_layers=1)
    model = WaveNet(config, classes=256, hop_length=HOP, local_channels=LOCAL, global_channels=SPEAKER).eval()
    n_samples = 1003
    local, speaker = conditioning(model, 3, n_samples)
    reference = model.generate(n_samples, local, speaker, generator=torch.Generator().manual_seed(3))
    engine = GenerationEngine(model, "graph")
    for _ in range(2):  # the second call reuses the runner: its state must be reset
        fast, _ = engine.generate(n_samples, local, speaker, generator=torch.Generator().manual_seed(3))
        assert torch.equal(fast, reference)


# The triton kernel runs in Triton's interpreter here (tests/conftest.py), ~0.3 s per step: short runs only, and
# each conditioning with one of the two sampling paths (drawn at temperature 1, the argmax at 0).
@pytest.mark.parametrize("conditioning_kind, temperature", [("none", 1.0), ("speaker+local", 0.0)])
def test_triton_kernel_equals_the_reference(conditioning_kind, temperature):
    pytest.importorskip("triton")
    model = decoder(*CONDITIONING[conditioning_kind])
    n_samples = 18  # launches of 16 steps (block_frames=2): the ring buffers carry over, the last one is partial
    local, speaker = conditioning(model, 2, n_samples)
    engine = GenerationEngine(model, "triton", block_frames=2)
    inputs = torch.randint(0, 256, (2, n_samples), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference_logits = model(inputs, local, speaker)
    _, logits = engine.generate(n_samples, local, speaker, batch_size=2, teacher=inputs)
    assert logits.shape == reference_logits.shape
    assert (logits - reference_logits).abs().max().item() <= 1e-4
    reference = model.generate(n_samples, local, speaker, batch_size=2, temperature=temperature,
                               generator=torch.Generator().manual_seed(7))
    fast, _ = engine.generate(n_samples, local, speaker, batch_size=2, temperature=temperature,
                              generator=torch.Generator().manual_seed(7))
    assert torch.equal(fast, reference)


def test_triton_kernel_with_several_programs():
    # 18 streams in programs of 16: the second program's rows are offset and mostly masked
    pytest.importorskip("triton")
    model = decoder(LOCAL, SPEAKER)
    n_samples = 12
    local, speaker = conditioning(model, 18, n_samples)
    reference = model.generate(n_samples, local, speaker, generator=torch.Generator().manual_seed(4))
    fast, _ = GenerationEngine(model, "triton", block_b=16).generate(n_samples, local, speaker,
                                                                      generator=torch.Generator().manual_seed(4))
    assert torch.equal(fast, reference)


def test_engine_choice(monkeypatch):
    model = decoder(LOCAL, SPEAKER)
    # auto on the CPU takes the fastest by measurement (test_planner.py); with the suite's injected timings
    # (conftest: the preference order) that is the C loop, with half weights where reduced precision is allowed
    assert resolve_engine("auto", model) == "native"
    assert GenerationEngine(model, "auto", precision="full").precision == "fp32"
    assert GenerationEngine(model, "auto", precision="reduced").precision == "fp16"
    assert resolve_engine("auto", decoder(LOCAL, SPEAKER, kernel_size=3)) == "reference"
    with pytest.raises(ValueError, match="kernel size 2"):
        resolve_engine("numba", decoder(LOCAL, SPEAKER, kernel_size=3))
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="CUDA decoder"):
        resolve_engine("triton", model)
    with pytest.raises(ValueError, match="unknown engine"):
        resolve_engine("gpu", model)


def test_plan_chunks():
    assert plan_chunks(10, None, 3) == [Chunk(0, 0, 0, 10)]
    assert plan_chunks(10, 20, 3) == [Chunk(0, 0, 0, 10)]
    assert plan_chunks(10, 4, 3, request=2) == [Chunk(2, 0, 0, 4), Chunk(2, 1, 4, 8), Chunk(2, 5, 8, 10)]


def test_assembly_keeps_own_regions_and_cross_fades_with_equal_power():
    hop = 2
    chunks = [Chunk(0, 0, 0, 4), Chunk(0, 2, 4, 6)]
    pieces = {chunks[0]: torch.full((8,), 0.5), chunks[1]: torch.full((8,), -0.5)}
    out = _assemble(chunks, pieces, 11, hop, crossfade=1)
    assert torch.equal(out[:6], torch.full((6,), 0.5)) and torch.equal(out[8:], torch.full((3,), -0.5))
    ramp = (torch.arange(2) + 0.5) / 2
    expected = 0.5 * torch.cos(0.5 * torch.pi * ramp) - 0.5 * torch.sin(0.5 * torch.pi * ramp)
    torch.testing.assert_close(out[6:8], expected)


@pytest.mark.parametrize("engine", ["reference", *FAST])
def test_one_chunk_equals_sequential(engine):
    model = decoder(LOCAL, SPEAKER)
    local, speaker = conditioning(model, 1, 900)
    request = DecodeRequest(local[0], speaker[0], 900)
    runner = GenerationEngine(model, engine)
    outputs = [decode_requests(runner, [request], options, sample_rate=16000,
                               generator=torch.Generator().manual_seed(3))[0]
               for options in (DecodeOptions(mode="sequential"), DecodeOptions(mode="chunked", chunk_s=10.0))]
    assert torch.equal(outputs[0], outputs[1])
    direct = model.generate(900, local, speaker, generator=torch.Generator().manual_seed(3))
    assert torch.equal(outputs[0], mu_law_decode(direct)[0])


def test_chunked_and_batched_decoding_shapes_and_independence():
    model = decoder(LOCAL, SPEAKER)
    local, speaker = conditioning(model, 2, 1000)
    requests = [DecodeRequest(local[0], speaker[0], 1000), DecodeRequest(local[1, :, :40], speaker[1], 317)]
    options = DecodeOptions(mode="chunked", chunk_s=0.02, overlap_s=0.008, crossfade_s=0.004)  # 40, 16, 8 samples
    runner = GenerationEngine(model, "numba")
    together = decode_requests(runner, requests, options, 16000, temperature=0.0)
    assert [w.shape[0] for w in together] == [1000, 317] and all(w.abs().max() <= 1 for w in together)
    # argmax decoding of independent streams: decoding a file alone gives what it got in the batch
    alone = decode_requests(runner, requests[1:], options, 16000, temperature=0.0)[0]
    assert torch.equal(alone, together[1])


@pytest.mark.parametrize("mode", ["chunked", "sequential"])
def test_progress_counts_output_samples_and_ends_at_the_total(mode):
    model = decoder(LOCAL, SPEAKER)
    local, speaker = conditioning(model, 2, 1000)
    requests = [DecodeRequest(local[0], speaker[0], 1000), DecodeRequest(local[1, :, :40], speaker[1], 317)]
    options = DecodeOptions(mode=mode, chunk_s=0.02, overlap_s=0.008, crossfade_s=0.004, max_batch=3)
    calls = []
    decode_requests(GenerationEngine(model, "native", block_frames=4), requests, options, 16000, temperature=0.0,
                    progress=calls.append)
    assert sum(calls) == 1317 and all(n > 0 for n in calls) and len(calls) > 3  # warm-ups not counted


@pytest.mark.parametrize("mode", ["chunked", "sequential"])
def test_best_of_keeps_the_lowest_scored_sample_of_each_chunk(mode):
    model = decoder(LOCAL, SPEAKER)
    local, speaker = conditioning(model, 1, 1000)
    request = DecodeRequest(local[0], speaker[0], 1000)
    # 40-frame chunks (320 samples at HOP 8), 16 frames of overlap, 8 of cross-fade (64 samples)
    options = DecodeOptions(mode=mode, chunk_s=0.02, overlap_s=0.008, crossfade_s=0.004, best_of=3, max_batch=4,
                            choose_every_s=None)  # one choice per chunk
    scored = {}

    def score(chunk, first, wavs, lo, hi):
        assert chunk.request == 0 and lo == chunk.own_start and (first, hi) == (chunk.start, chunk.stop)
        assert wavs.shape == (3, (hi - first) * HOP) and chunk not in scored  # all candidates at once
        scored[chunk] = list(wavs.clone())
        return wavs.abs().mean(1)  # any deterministic ranking

    calls = []
    out = decode_requests(GenerationEngine(model, "numba"), [request], options, 16000,
                          generator=torch.Generator().manual_seed(5), progress=calls.append, score=score)[0]
    assert sum(calls) == 1000  # extra candidates are not counted as output
    assert len(scored) == (4 if mode == "chunked" else 1) and all(len(c) == 3 for c in scored.values())
    for chunk, candidates in scored.items():
        assert not torch.equal(candidates[0], candidates[1])  # other draws, not copies
        best = min(candidates, key=lambda wav: float(wav.abs().mean()))
        # the chunk's own samples, up to where the next chunk's cross-fade begins
        end = min(1000, chunk.stop * HOP) - (0 if chunk.stop * HOP >= 1000 else 8 * HOP)
        own = slice(chunk.own_start * HOP, end)
        assert torch.equal(out[own], best[own.start - chunk.start * HOP:own.stop - chunk.start * HOP])


def assert_chosen_stream_continues_exactly(engine: str, n_samples: int, block_frames: int, choice_frame: int):
    """At temperature 0 generation is deterministic: stream 1 told at frame `choice_frame` (a block end) to
    continue from stream 0 must then generate what a stream given stream 0's conditioning and periods before
    that frame and its own after does."""
    model = lag_decoder()
    n_frames, t0 = -(-n_samples // HOP), choice_frame * HOP
    local, speaker = conditioning(model, 2, n_samples)
    cond, period = model.layer_conditioning(local, speaker), lag_periods(2, max(13, n_frames))[:, :n_frames]
    spliced_cond, spliced_period = cond.clone(), period.clone()
    spliced_cond[1, :choice_frame], spliced_period[1, :choice_frame] = cond[0, :choice_frame], period[0, :choice_frame]
    runner = GenerationEngine(model, engine, block_frames=block_frames)
    calls = []

    def choose(t, classes_so_far):
        calls.append(t)
        if t != t0:
            return None
        assert classes_so_far().shape == (2, t)
        return torch.tensor([0, 0])

    chosen, _ = runner.generate(n_samples, temperature=0.0, conditioning=cond, period=period, choose=choose)
    spliced, _ = runner.generate(n_samples, temperature=0.0, conditioning=spliced_cond, period=spliced_period)
    plain, _ = runner.generate(n_samples, temperature=0.0, conditioning=cond, period=period)
    assert t0 in calls and calls[-1] == n_samples
    assert torch.equal(chosen, spliced)
    assert torch.equal(chosen[0], plain[0]) and not torch.equal(chosen[1], plain[1])
    assert not torch.equal(chosen[1, t0:], chosen[0, t0:])  # it goes on with its own conditioning


@pytest.mark.parametrize("engine", ["native", "numba", "torch", "graph"])
def test_a_stream_told_to_continue_from_another_continues_exactly_where_it_was(engine):
    # blocks of 4 frames on the CPU engines, of one frame in the graph engine here: frame 8 ends a block in both
    assert_chosen_stream_continues_exactly(engine, 60 * HOP, 4, 8)


def test_the_reference_engine_does_not_choose():
    with pytest.raises(ValueError, match="reference engine"):
        GenerationEngine(lag_decoder(), "reference").generate(10, temperature=0.0, choose=lambda t, c: None)


def test_a_triton_stream_told_to_continue_from_another_draws_what_the_numba_one_does():
    """Sampled under the same draws (a short argmax run here is one class over and over, proving nothing), the
    triton kernel's streams after a choice are the numba loop's, whose choices the test above checks exactly."""
    pytest.importorskip("triton")
    model = lag_decoder()
    n_samples = 4 * HOP  # 32 steps in the interpreter per run
    local, speaker = conditioning(model, 2, n_samples)
    cond, period = model.layer_conditioning(local, speaker), lag_periods(2, 13)[:, :4]

    def choose(t, classes_so_far):
        return torch.tensor([0, 0]) if t == 2 * HOP else None

    def run(engine, chooser):  # triton's 64-frame launches capped at 2 frames by the call, as a chooser's interval
        return GenerationEngine(model, engine, block_frames=None if engine == "triton" else 2).generate(
            n_samples, conditioning=cond, period=period, generator=torch.Generator().manual_seed(7),
            choose=chooser, block_frames=2)[0]

    chosen = run("triton", choose)
    assert torch.equal(chosen, run("numba", choose))
    assert not torch.equal(chosen[1], run("triton", None)[1]) and torch.equal(chosen[1, :2 * HOP], chosen[0, :2 * HOP])


@pytest.mark.parametrize("mode, block_frames", [("chunked", 4), ("sequential", 4), ("chunked", 64)])
def test_choosing_as_they_go_judges_each_frame_once_and_keeps_every_winner(mode, block_frames):
    model = decoder(LOCAL, SPEAKER)
    local, speaker = conditioning(model, 1, 1000)
    request = DecodeRequest(local[0], speaker[0], 1000)
    # 40-frame chunks, 16 frames of overlap, 8 of cross-fade; blocks of 4 frames, a choice every 10 frames (the
    # engine's blocks of 64, as the triton kernel's launches, shortened to 10 for choosing)
    options = DecodeOptions(mode=mode, chunk_s=0.02, overlap_s=0.008, crossfade_s=0.004, best_of=3, max_batch=4,
                            choose_every_s=0.005)
    chunks = plan_chunks(125, 125 if mode == "sequential" else 40, 16)
    reach = (11, 5)  # samples: 2 frames of margin before a judged frame, 5 samples past its hop
    judged, winners = {c: [] for c in chunks}, []
    decisions: dict = {}

    def score(chunk, first, wavs, lo, hi):
        final = first * HOP + wavs.shape[1] == chunk.stop * HOP
        assert chunk.request == 0 and first == max(chunk.start, lo - 2) and hi <= chunk.stop and lo < hi
        assert final or first * HOP + wavs.shape[1] >= hi * HOP + reach[1]
        assert wavs.shape[0] == 3 and (chunk, lo, hi) not in decisions  # all candidates at once
        decisions[chunk, lo, hi] = [(first, wav) for wav in wavs.clone()]
        judged[chunk].append((lo, hi))
        return wavs[:, (lo - first) * HOP:(hi - first) * HOP].abs().mean(1)  # any deterministic ranking

    out = decode_requests(GenerationEngine(model, "native", block_frames=block_frames), [request], options, 16000,
                          generator=torch.Generator().manual_seed(5), score=score, score_reach=reach)[0]
    for chunk, ranges in judged.items():  # every frame of every chunk judged once, in order
        assert [lo for lo, _ in ranges] == [chunk.start] + [hi for _, hi in ranges[:-1]]
        assert ranges[-1][1] == chunk.stop and len(ranges) > 2
        # on time: at the first block end past each 10 frames, less the frames whose reach is not generated yet
        assert max(hi - lo for lo, hi in ranges[:-1]) <= 12
    for (chunk, lo, hi), candidates in decisions.items():
        assert not torch.equal(candidates[0][1], candidates[1][1])  # other draws since the last choice
        first, best = min(candidates, key=lambda c: float(c[1][(lo - c[0]) * HOP:(hi - c[0]) * HOP].abs().mean()))
        # what the winner had generated stays, in the chunk's own samples before the next chunk's cross-fade
        end = min(1000, chunk.stop * HOP) - (0 if chunk.stop * HOP >= 1000 else 8 * HOP)
        start = max(chunk.own_start * HOP, first * HOP)
        stop = min(end, first * HOP + best.shape[0])
        if stop > start:
            winners.append(stop - start)
            assert torch.equal(out[start:stop], best[start - first * HOP:stop - first * HOP])
    assert sum(winners) > 1000


def test_best_of_one_is_plain_sampling_and_more_needs_a_score():
    model = decoder(LOCAL, SPEAKER)
    local, speaker = conditioning(model, 1, 300)
    request, runner = DecodeRequest(local[0], speaker[0], 300), GenerationEngine(model, "numba")

    def never(chunk, first, wav, lo, hi):
        raise AssertionError("one candidate needs no score")

    plain, scored = [decode_requests(runner, [request], DecodeOptions(mode="sequential"), 16000,
                                     generator=torch.Generator().manual_seed(6), score=score)[0]
                     for score in (None, never)]
    assert torch.equal(plain, scored)
    with pytest.raises(ValueError, match="score"):
        decode_requests(runner, [request], DecodeOptions(best_of=2), 16000)
    with pytest.raises(ValueError, match="best_of"):
        DecodeOptions(best_of=0)


def test_a_wide_batch_of_files_is_not_also_chunked():
    model = decoder(LOCAL, SPEAKER)
    local, speaker = conditioning(model, 3, 400)
    requests = [DecodeRequest(local[i], speaker[i], 400) for i in range(3)]
    runner = GenerationEngine(model, "numba")
    chunked = DecodeOptions(chunk_s=0.005, overlap_s=0.002, crossfade_s=0.001, wide_batch=3)  # 80-sample chunks
    wide = decode_requests(runner, requests, chunked, 16000, generator=torch.Generator().manual_seed(4))
    whole = decode_requests(runner, requests, DecodeOptions(mode="sequential"), 16000,
                            generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(wide, whole))  # three files: as three whole streams
    narrow = decode_requests(runner, requests[:2], chunked, 16000, generator=torch.Generator().manual_seed(4))
    alone = decode_requests(runner, requests[:2], DecodeOptions(mode="sequential"), 16000,
                            generator=torch.Generator().manual_seed(4))
    assert not torch.equal(narrow[0], alone[0])  # two files: still cut into chunks


def test_native_engine_is_built_once_and_falls_back_without_a_compiler(monkeypatch, tmp_path):
    from speechvq.generation import native

    monkeypatch.setenv("SPEECHVQ_CACHE", str(tmp_path / "good"))
    first = native.build()
    stamp = first.stat().st_mtime_ns
    assert native.build() == first and first.stat().st_mtime_ns == stamp  # cached: not compiled again
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temporary file left behind

    monkeypatch.setattr(native, "_library", {})  # a fresh process, as far as the loader knows
    monkeypatch.setenv("SPEECHVQ_CACHE", str(tmp_path / "bad"))
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    assert not native.available()
    model = decoder(LOCAL, SPEAKER)
    assert resolve_engine("auto", model) == "numba"  # the fastest of what can run (injected timings)
    with pytest.raises(ValueError, match="native engine could not be built"):
        resolve_engine("native", model)
    # no library, no temp file (the lock of the engine timing stays, empty)
    left = sorted(p.name for p in (tmp_path / "bad").iterdir())
    assert left == ["engine-ranking.json", "engine-ranking.json.lock"]


def test_reduced_precision_native_engine_stays_close_to_the_reference():
    # half-precision weights: the logits move by about 1e-3 (the float32 engines stay within 1e-4)
    model = decoder(LOCAL, SPEAKER)
    n_samples = 1000
    local, speaker = conditioning(model, 2, n_samples)
    inputs = torch.randint(0, 256, (2, n_samples), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = model(inputs, local, speaker)
    engine = GenerationEngine(model, "native", precision="reduced")
    assert engine.precision == "fp16"
    _, logits = engine.generate(n_samples, local, speaker, teacher=inputs)
    error = (logits - reference).abs().max().item()
    assert 1e-6 < error <= 1e-3  # not float32 (so the halves are really used), and close (9.2e-5 measured)
    classes, _ = engine.generate(n_samples, local, speaker, generator=torch.Generator().manual_seed(7))
    assert classes.shape == (2, n_samples) and classes.min() >= 0 and classes.max() < 256


def test_precision_names():
    model = decoder(LOCAL, SPEAKER)
    assert GenerationEngine(model, "native").precision == "fp32"
    assert GenerationEngine(model, "native", precision="fp16").precision == "fp16"
    assert GenerationEngine(model, "torch", precision="reduced").precision == "reduced"  # float32 regardless
    with pytest.raises(ValueError, match="precision must be one of"):
        GenerationEngine(model, "native", precision="tf32")


def test_reduced_precision_falls_back_to_float32_weights_where_halves_cannot_be_built(monkeypatch):
    from speechvq.generation import native

    real_load = native.load

    def load_without_halves(weights="fp32", march=None):
        if weights == "fp16":
            raise RuntimeError("half-precision weights need F16C or AVX-512")
        return real_load(weights, march)

    monkeypatch.setattr(native, "load", load_without_halves)
    model = decoder(LOCAL, SPEAKER)
    assert GenerationEngine(model, "native", precision="reduced").precision == "fp32"
    with pytest.raises(ValueError, match="could not be built for fp16 weights"):
        GenerationEngine(model, "native", precision="fp16")


def test_a_chunks_conditioning_is_the_whole_files_with_context_blocks():
    # chunked decoding computes each chunk's conditioning from cond_reach frames of codes on either side: with
    # context blocks (reach 1 + 3 frames here) every kept frame gets what the whole file would give it
    torch.manual_seed(0)
    config = DecoderConfig(n_layers=3, dilation_cycle=3, residual_channels=8, gate_channels=8, skip_channels=8,
                           cond_channels=6, cond_layers=1, cond_context_layers=2)
    model = WaveNet(config, classes=256, hop_length=8, local_channels=LOCAL).eval()
    for block in model.cond_net.context:
        torch.nn.init.normal_(block.out.weight, std=0.3)
    latents = torch.randn(LOCAL, 30)
    request = DecodeRequest(latents, None, 30 * 8)
    with torch.no_grad():
        whole = model.layer_conditioning(latents[None], None)[0]
        for chunk in plan_chunks(30, 8, 2, 0):
            piece = _chunk_conditioning(model, request, chunk, chunk.stop - chunk.start)
            torch.testing.assert_close(piece, whole[chunk.start:chunk.stop], rtol=0, atol=1e-6)
