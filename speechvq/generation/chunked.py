"""Decoding whole utterances fast: many files as one batch, and one long file cut into chunks decoded in parallel.

Chunk-parallel decoding of one utterance of F frames, chunk length C, overlap O, cross-fade X (frames):

    chunk 0   |======== own [0, C) ========|
    chunk 1             |warm-up|xfade|======== own [C, 2C) ========|
                        C-O     C-X   C
    chunk 1 starts generating at frame C - O with empty buffers; its first O - X frames only fill its
    receptive field and are dropped, the next X frames are cross-faded (equal power) with the end of
    chunk 0, and from frame C on it is the output. All chunks of all requested utterances run as one
    batch of streams (at most `max_batch` at a time), which is what lets two cores reach real time.

With one chunk (C >= F) this is exactly sequential decoding: the same stream, the same noise draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from ..audio import mu_law_decode
from ..postfilter import DEFAULT_POSTFILTER_GAIN
from .engine import GenerationEngine
from .packed import PRECISIONS

# seconds between choices among best-of candidates (`DecodeOptions.choose_every_s`). Measured on the shipped model
# (2026-12-04, 119 test files whole, seeds 0 and 1; README "Choosing as they go"): best of 4 chosen every 0.064 s
# against once per chunk (the same generation) STOI +0.0117 +- 0.0037, PESQ-WB +0.021 +- 0.007, MCD -0.026 dB;
# every 0.128 s was as good (STOI -0.0011 +- 0.0038 against 0.064), every 0.256 s worse. A choice falls at a block
# end (16 frames = 0.064 s on the CPU engines, the finest they offer; the triton kernel's 64-frame launches are
# shortened to the interval when choosing, see `decode_requests`).
DEFAULT_CHOOSE_EVERY_S = 0.064


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode.

    Attributes:
        engine: one of `engine.ENGINES` ("auto": see `engine.resolve_engine`).
        mode: "chunked" (chunk-parallel) or "sequential" (one stream per utterance).
        chunk_s: chunk length in seconds (chunked mode).
        overlap_s: frames generated before a chunk's own start, warm-up plus cross-fade (>= crossfade_s).
        crossfade_s: length of the equal-power cross-fade at each join.
        threads: threads of the compiled engine (default: torch's thread count).
        precision: "reduced" (the native and triton engines' faster arithmetic, about 1e-3 in the logits)
            or "full" (float32 accuracy); see `packed.PRECISIONS`.
        max_batch: most streams generated at once (bounds memory on very long inputs).
        wide_batch: chunked mode cuts utterances into chunks only while fewer than this many are decoded
            together: a batch this wide already keeps the threads busy, and chunks cost warm-up samples
            (8 files of 2 s decoded 16% slower as 16 chunks than as 8 whole streams, measured on 2 cores).
        postfilter: gain of the pitch post-filter applied after decoding where the codes carry a pitch stream
            (`speechvq.postfilter`; 0 = off), in [0, 1).
        best_of: samples drawn of every chunk (of every whole stream where the utterances are not cut), of
            which the one the caller's `score` ranks lowest is kept (`speechvq.inference` scores how far the
            encoder puts a candidate from the codes it was decoded from); 1 = plain sampling. Generation costs
            that many times as much (the candidates run as extra streams of the same batch).
        choose_every_s: with best_of > 1, choose as the candidates are generated instead of once at the end:
            at the first block end (`GenerationEngine.block_frames`) past every multiple of this many seconds,
            the candidates are scored on the frames generated since the last choice (those the scorer can
            judge already, see `decode_requests`), and all continue from the best one, each with its own
            draws; None = one choice per chunk. The default, `DEFAULT_CHOOSE_EVERY_S`, is the measured best.
    """

    engine: str = "auto"
    mode: str = "chunked"
    chunk_s: float = 1.0
    overlap_s: float = 0.192
    crossfade_s: float = 0.064
    threads: Optional[int] = None
    precision: str = "reduced"
    max_batch: int = 64
    wide_batch: int = 8
    postfilter: float = DEFAULT_POSTFILTER_GAIN
    best_of: int = 1
    choose_every_s: Optional[float] = DEFAULT_CHOOSE_EVERY_S

    def __post_init__(self) -> None:
        if self.mode not in ("chunked", "sequential"):
            raise ValueError(f"mode must be chunked or sequential, got {self.mode!r}")
        if not (self.chunk_s > 0 and 0 <= self.crossfade_s <= self.overlap_s):
            raise ValueError("need chunk_s > 0 and 0 <= crossfade_s <= overlap_s")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.max_batch < 1:
            raise ValueError("max_batch must be positive")
        if not 0.0 <= self.postfilter < 1.0:
            raise ValueError(f"the post-filter gain must lie in [0, 1), got {self.postfilter}")
        if self.best_of < 1:
            raise ValueError(f"best_of must be at least 1, got {self.best_of}")
        if self.choose_every_s is not None and not self.choose_every_s > 0:
            raise ValueError(f"choose_every_s must be positive, got {self.choose_every_s}")

    @property
    def label(self) -> str:
        """How utterances are decoded, for messages: "chunked", "sequential, best of 4 chosen every 0.064 s"..."""
        if self.best_of == 1:
            return self.mode
        when = "per chunk" if self.choose_every_s is None else f"every {self.choose_every_s:g} s"
        return f"{self.mode}, best of {self.best_of} chosen {when}"


@dataclass(frozen=True)
class DecodeRequest:
    """One utterance to decode: quantized latents float `[D, F]`, speaker vector `[S]` or None, length T, and
    for a decoder with the pitch-lag input the period of each frame, int64 `[F]` (`SpeechVQ.lag_periods`)."""

    latents: Tensor
    speaker: Optional[Tensor]
    n_samples: int
    period: Optional[Tensor] = None


@dataclass(frozen=True)
class Chunk:
    """A stream to generate: frames [start, stop) of request `request`, of which [own_start, stop) are kept."""

    request: int
    start: int
    own_start: int
    stop: int


def plan_chunks(n_frames: int, chunk_frames: Optional[int], overlap_frames: int, request: int = 0) -> list[Chunk]:
    """Cut frames [0, n_frames) into chunks of `chunk_frames` (None: one chunk), each warmed up on its overlap."""
    if chunk_frames is None or chunk_frames >= n_frames:
        return [Chunk(request, 0, 0, n_frames)]
    return [Chunk(request, max(0, own - overlap_frames), own, min(n_frames, own + chunk_frames))
            for own in range(0, n_frames, chunk_frames)]


def decode_requests(engine: GenerationEngine, requests: Sequence[DecodeRequest], options: DecodeOptions,
                    sample_rate: int, temperature: float = 1.0, generator: Optional[torch.Generator] = None,
                    first_input: Optional[int] = None,
                    progress: Optional[Callable[[int], None]] = None,
                    score: Optional[Scorer] = None, score_reach: tuple[int, int] = (0, 0)) -> list[Tensor]:
    """Decode utterances to waveforms at the model's level (float32 `[T]` each, in [-1, 1]).

    Args:
        engine: the generation engine of the model's decoder.
        requests: the utterances; they are decoded together as one batch of streams.
        options: chunking (see DecodeOptions).
        sample_rate: Hz, to turn the options' seconds into frames.
        temperature, generator, first_input: as in `WaveNet.generate`.
        progress: called with the number of output samples decoded since the last call (of the requested
            lengths, all utterances together; a chunk's warm-up samples and extra candidates are not counted):
            a bar with total sum(n_samples) ends full.
        score: with `options.best_of` > 1, ranks candidates, lower is better: called as
            score(chunk, first frame, waveforms, lo, hi) with a chunk's candidates' waveforms float32
            `[best_of, samples]` (mu-law decoded, before any transform of the model's) from frame `first frame`
            of the chunk's request on, to judge their frames [lo, hi) of the request (`chunk.request` is the
            request's index); it returns one score per candidate, `[best_of]`. Once per chunk, the
            waveforms are the whole chunk's, frames [chunk.start, chunk.stop), and [lo, hi) its own frames;
            with `options.choose_every_s`, [lo, hi) are the frames generated since the last choice, and the
            waveforms start score_reach[0] samples or more before frame lo (at a frame boundary) and reach
            score_reach[1] samples past frame hi - 1's hop, except at the chunk's end.
        score_reach: the samples (before, after) a frame's own hop that its score reads (`Encoder.reach`).

    Raises:
        ValueError: a decoder without codes, or candidates without a `score`.
    """
    decoder = engine.decoder
    if not decoder.local_channels:
        raise ValueError("decoding requests needs a decoder conditioned on codes")
    if options.best_of > 1 and score is None:
        raise ValueError("choosing among candidates needs a score")
    hop = decoder.hop_length
    frame_s = hop / sample_rate
    chunked = options.mode == "chunked" and len(requests) < options.wide_batch
    chunk_frames = max(1, round(options.chunk_s / frame_s)) if chunked else None
    overlap = round(options.overlap_s / frame_s) if chunked else 0
    crossfade = round(options.crossfade_s / frame_s) if chunked else 0
    chunks = [c for index, r in enumerate(requests)
              for c in plan_chunks(-(-r.n_samples // hop), chunk_frames, overlap, index)]
    # every chunk best_of times, next to each other: with best_of 1, the streams and draws of plain sampling
    streams = [(c, k) for c in chunks for k in range(options.best_of)]
    choosing = options.best_of > 1 and options.choose_every_s is not None
    # a chunk's candidates in one group, where they are chosen among as they go
    group_size = max(1, options.max_batch // options.best_of) * options.best_of if choosing else options.max_batch
    pieces: dict[tuple[Chunk, int], Tensor] = {}
    for group_start in range(0, len(streams), group_size):
        group = streams[group_start:group_start + group_size]
        length = max(c.stop - c.start for c, _ in group)
        conditioning = torch.stack([_chunk_conditioning(decoder, requests[c.request], c, length)
                                    for c, _ in group])
        # a chunk starts with nothing generated before it: its lag taps read silence until a period in
        period = None if not decoder.lag_taps else torch.stack([_chunk_periods(requests[c.request], c, length)
                                                               for c, _ in group])
        kept = sum(min(requests[c.request].n_samples, c.stop * hop) - c.own_start * hop for c, k in group if k == 0)
        reporter = None if progress is None else _OutputProgress(progress, kept, length * hop)
        chooser, every = None, None
        if choosing:
            every = max(1, round(options.choose_every_s / frame_s))
            chooser = _Chooser([c for c, k in group if k == 0], options.best_of, hop, every, length * hop, score,
                               score_reach, decoder.classes)
        # blocks no longer than the interval between choices (the triton kernel's launches are 64 frames)
        classes, _ = engine.generate(length * hop, temperature=temperature, first_input=first_input,
                                     generator=generator, progress=reporter, conditioning=conditioning,
                                     period=period, choose=chooser, block_frames=every)
        if reporter is not None:
            reporter.finish()
        waveforms = mu_law_decode(classes, decoder.classes)
        for row, stream in enumerate(group):
            pieces[stream] = waveforms[row, : (stream[0].stop - stream[0].start) * hop]
    if choosing:  # the last choice copied each chunk's best candidate over the others
        chosen = {c: pieces[c, 0] for c in chunks}
    else:
        chosen = {c: pieces[c, 0] if options.best_of == 1 else
                  pieces[c, _lowest(score(c, c.start, torch.stack([pieces[c, k] for k in range(options.best_of)]),
                                          c.own_start, c.stop))]
                  for c in chunks}
    outputs = []
    for index, request in enumerate(requests):
        own = [c for c in chunks if c.request == index]
        outputs.append(_assemble(own, chosen, request.n_samples, hop, crossfade))
    return outputs


# score(chunk, first frame of the waveforms, candidates' waveforms float32 [N, samples], lo, hi) -> [N], lower is better
Scorer = Callable[[Chunk, int, Tensor, int, int], Tensor]


def _lowest(scores) -> int:
    """Index of the lowest of a scorer's `[N]` scores (the first of equals)."""
    return int(torch.as_tensor(scores).argmin())


class _Chooser:
    """`GenerationEngine.generate`'s `choose` for candidates chosen among as they go (`choose_every_s`).

    The group's streams are `best_of` candidates of each chunk in turn. At the first call at or after each
    boundary (every `every` frames), each chunk's candidates are scored on the frames the scorer can judge
    and has not judged yet (all of a frame's reach generated), and all of them continue from the lowest;
    at the end (t = n_samples) every remaining frame is judged, up to the chunk's stop, so row 0 of each
    chunk is the choice.
    """

    def __init__(self, chunks: list[Chunk], best_of: int, hop: int, every: int, n_samples: int, score: Scorer,
                 reach: tuple[int, int], classes: int):
        self.chunks, self.best_of, self.hop, self.every, self.n_samples = chunks, best_of, hop, every, n_samples
        self.score, self.reach, self.classes = score, reach, classes
        self.judged = [0] * len(chunks)  # per chunk, frames (from its start) judged so far
        self.next_boundary = every * hop
        # whole frames of waveform before the first judged one (a model with pre-emphasis restarts its
        # de-emphasis there: at 0.85 its start-up has decayed to 3e-5 within one 64-sample frame)
        self.margin = -(-reach[0] // hop)

    def __call__(self, t: int, classes_so_far: Callable[[], Tensor]) -> Optional[Tensor]:
        final = t >= self.n_samples
        if t < self.next_boundary and not final:
            return None
        generated = classes_so_far().cpu()
        while self.next_boundary <= t:
            self.next_boundary += self.every * self.hop
        # frames whose reach lies within the t samples generated: f * hop + hop + after <= t
        ready = max(0, (t - self.reach[1]) // self.hop)
        source = torch.arange(generated.shape[0])
        for index, chunk in enumerate(self.chunks):
            n_frames = chunk.stop - chunk.start
            lo, hi = self.judged[index], n_frames if final else min(n_frames, ready)
            if hi <= lo:
                continue
            rows = slice(index * self.best_of, (index + 1) * self.best_of)
            first = max(0, lo - self.margin)
            end = n_frames * self.hop if final else t
            wavs = mu_law_decode(generated[rows, first * self.hop:min(t, end)], self.classes)
            source[rows] = rows.start + _lowest(self.score(chunk, chunk.start + first, wavs, chunk.start + lo,
                                                           chunk.start + hi))
            self.judged[index] = hi
        return source


class _OutputProgress:
    """Turns an engine's step progress (steps per stream) into output samples of a group of streams."""

    def __init__(self, progress: Callable[[int], None], kept: int, steps: int):
        self.progress, self.kept, self.steps = progress, kept, steps
        self.done_steps, self.reported = 0, 0

    def __call__(self, steps: int) -> None:
        self.done_steps += steps
        due = self.kept * self.done_steps // self.steps
        if due > self.reported:
            self.progress(due - self.reported)
            self.reported = due

    def finish(self) -> None:
        if self.kept > self.reported:
            self.progress(self.kept - self.reported)
            self.reported = self.kept


def _chunk_conditioning(decoder, request: DecodeRequest, chunk: Chunk, length: int) -> Tensor:
    """The chunk's per-layer conditioning `[length, L, G]`: computed with the conditioning's reach in real frames
    on each side (so every kept frame gets what the whole utterance would give it), then padded by repeating the
    last frame (those samples are generated and dropped)."""
    speaker = None if request.speaker is None else request.speaker[None]
    n_frames = request.latents.shape[-1]
    margin = decoder.config.cond_reach
    lo, hi = max(0, chunk.start - margin), min(n_frames, chunk.stop + margin)
    cond = decoder.layer_conditioning(request.latents[None, :, lo:hi], speaker)[0][chunk.start - lo:chunk.stop - lo]
    if cond.shape[0] < length:
        cond = torch.cat([cond, cond[-1:].expand(length - cond.shape[0], -1, -1)])
    return cond


def _chunk_periods(request: DecodeRequest, chunk: Chunk, length: int) -> Tensor:
    """The chunk's pitch periods int64 `[length]`, padded with 0 (unvoiced) past the utterance's end."""
    if request.period is None:
        raise ValueError("this decoder reads the pitch-lag input: each request needs its frames' periods")
    period = request.period[chunk.start:chunk.stop].long().cpu()
    return torch.nn.functional.pad(period, (0, length - period.shape[0]))


def _assemble(chunks: list[Chunk], pieces: dict[Chunk, Tensor], n_samples: int, hop: int, crossfade: int) -> Tensor:
    out = torch.zeros(n_samples)
    for chunk in chunks:
        wav = pieces[chunk]
        own_start, stop = chunk.own_start * hop, min(n_samples, chunk.stop * hop)
        offset = chunk.start * hop  # absolute position of the stream's first sample
        out[own_start:stop] = wav[own_start - offset:stop - offset]
        fade = min(crossfade * hop, own_start - offset)
        if chunk.own_start > 0 and fade > 0:
            ramp = (torch.arange(fade, dtype=torch.float32) + 0.5) / fade
            fade_in, fade_out = torch.sin(0.5 * math.pi * ramp), torch.cos(0.5 * math.pi * ramp)
            region = slice(own_start - fade, own_start)
            incoming = wav[own_start - fade - offset:own_start - offset]
            out[region] = out[region] * fade_out + incoming * fade_in
    return out.clamp_(-1.0, 1.0)  # equal-power fades of correlated signals can overshoot slightly
