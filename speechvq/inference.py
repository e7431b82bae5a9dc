"""Compress, decompress, resynthesise and convert: waveforms in, waveforms out, around a loaded model.

    wav (any level)  --normalize_level-->  wav at model level  --encode-->  codes [F]     (+ gain, length)
    codes            --decode (WaveNet, chosen speaker)-->      wav at model level  --/ gain-->  wav

The level gain travels with the codes so that decoding gives back the input's level; voice conversion is
decoding the source's codes with another speaker vector: a named voice, or the vector of any reference
recording (an utterance model's own; a table model takes its closest row). Which voice a decode uses is
decided in one place, `resolve_voice`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .audio import mu_law_silence, normalize_level
from .config import DEFAULT_TEMPERATURE
from .entropy import entropy_bits
from .errors import SpeechVQError
from .generation import Chunk, DecodeOptions, DecodeRequest, GenerationEngine, Scorer, decode_requests
from .models import SpeechVQ
from .pitch import mean_voiced_bin, shift_symbols, symbol_f0_hz, voiced_f0
from .postfilter import pitch_postfilter


@dataclass
class Encoded:
    """The codes of one utterance and what decoding needs besides them.

    Attributes:
        codes: int64 `[F]` in [0, K).
        n_samples: samples of the input at the model rate (F = ceil(n_samples / hop)).
        gain: linear gain applied before encoding (decoding divides by it).
        speaker: the named voice to decode with by default (given, or for a table model the row that
            explained the utterance best), or None.
        speaker_levels: an utterance model's quantized speaker vector of the input, int64 `[speaker_dim]`,
            or None. It is what a code file carries: decoding uses it unless another voice is asked for.
        voice_scores: when the named voice was chosen rather than given: teacher-forced NLL (nats per
            sample) of the input under each voice, best first; else None.
        pitch: a pitch-stream model's pitch symbols of the input, int64 `[ceil(F / frame_codes)]`, or None.
    """

    codes: Tensor
    n_samples: int
    gain: float
    speaker: Optional[str] = None
    speaker_levels: Optional[Tensor] = None
    voice_scores: Optional[dict[str, float]] = None
    pitch: Optional[Tensor] = None


@dataclass(frozen=True)
class Voice:
    """The speaker vector a decode uses and how to name it to a user.

    Attributes:
        vector: float `[speaker_dim]`, or None for a model without speaker conditioning.
        label: e.g. "carlo", "its own voice (from the utterance)", "like ref.wav".
        pitch_bin: for a pitch-stream model converting into another voice, that voice's mean log-F0 bin:
            decoding moves the source's voiced pitch symbols so that their mean lands there; None keeps them.
    """

    vector: Optional[Tensor]
    label: str
    pitch_bin: Optional[float] = None


def model_device(model: SpeechVQ) -> torch.device:
    """The device the model's weights are on."""
    return next(model.parameters()).device


def _check_waveform(wav: Tensor) -> None:
    if wav.dim() != 1 or wav.numel() == 0:
        raise SpeechVQError("expected a non-empty mono waveform")
    if not torch.isfinite(wav).all():
        raise SpeechVQError("the audio holds NaN or infinite samples")


def encode_waveform(model: SpeechVQ, wav: Tensor, speaker: Optional[str] = None,
                    chunk_frames: Optional[int] = None, choose_voice: bool = True) -> Encoded:
    """Encode one utterance.

    Args:
        model: a model in eval mode.
        wav: float32 `[T]` mono at `model.sample_rate`, any level.
        speaker: a named voice to record with the codes (checked against the model's speakers); None: a
            table model records the row that explains the utterance best (`closest_voice`), an utterance
            model its own speaker vector.
        chunk_frames: encoder frames per pass (bounded memory on long inputs; the same codes).
        choose_voice: a table model without `speaker` chooses its closest row (False: records none).

    Returns:
        Encoded codes, length, level gain and speaker.

    Raises:
        SpeechVQError: empty or non-finite audio, or a speaker the model does not know.
    """
    _check_waveform(wav)
    if speaker is not None:
        speaker_row(model, speaker)
    level_wav, gain = normalize_level(wav, model.config.level_dbfs)
    level_wav = level_wav.clamp(-1.0, 1.0).view(1, 1, -1).to(model_device(model))
    codes, levels = model.encode_with_speaker(level_wav, chunk_frames)
    pitch = model.encode_pitch(level_wav)
    scores = None
    if speaker is None and choose_voice and model.speaker_mode == "table":
        if model.n_speakers == 1:  # nothing to choose between
            speaker = model.speakers[0]
        else:
            scores = closest_voice(model, level_wav[0, 0], codes[0], None if pitch is None else pitch[0])
            speaker = next(iter(scores))
    return Encoded(codes=codes[0].cpu(), n_samples=wav.numel(), gain=gain, speaker=speaker,
                   speaker_levels=None if levels is None else levels[0].cpu(), voice_scores=scores,
                   pitch=None if pitch is None else pitch[0].cpu())


# How a table model finds the voice that explains an input best, by teacher-forced NLL (which costs about as
# much per sample and voice as generating does): every row on the loudest 1/8 s, then the best three on the
# loudest second. Measured with the shipped model on 20 test files: the true speaker first in 16 of 20 with
# 1/8 s alone, 19 of 20 with 1 s for every row; screening keeps most of that for a fraction of the cost.
SCREEN_SECONDS = 0.125
CLOSEST_VOICE_SECONDS = 1.0
FINALISTS = 3


@torch.no_grad()
def closest_voice(model: SpeechVQ, level_wav: Tensor, codes: Tensor, pitch: Optional[Tensor] = None,
                  max_seconds: float = CLOSEST_VOICE_SECONDS, screen_seconds: float = SCREEN_SECONDS,
                  finalists: int = FINALISTS) -> dict[str, float]:
    """The rows of a table model that best explain an utterance, by teacher-forced NLL, best (lowest) first.

    Args:
        level_wav: float `[T]`, level-normalised as for encoding, on the model's device.
        codes: int64 `[F]`, its codes; pitch: int64 `[P]`, its pitch symbols (a pitch-stream model) or None.
        max_seconds: the finalists are scored on the loudest stretch of this length (frame-aligned).
        screen_seconds, finalists: every row is first scored on the loudest `screen_seconds`, and the best
            `finalists` go on.

    Returns:
        {speaker name: nats per sample on the loudest `max_seconds`} of the finalists, best first.
    """
    if model.speaker_mode != "table":
        raise SpeechVQError("only a model with a speaker table chooses among its rows")
    rows = list(range(model.n_speakers))
    pitch_row = None if pitch is None else pitch.view(1, -1)
    local = model.local_conditioning(codes.view(1, -1), pitch_row)  # (1, D, F)
    period = model.lag_periods(pitch_row, local.shape[-1])
    if len(rows) > finalists:
        screened = _row_nll(model, level_wav, local, period, rows, screen_seconds)
        rows = sorted(rows, key=lambda row: screened[row])[:finalists]
    scores = _row_nll(model, level_wav, local, period, rows, max_seconds)
    return {model.speakers[row]: scores[row] for row in sorted(rows, key=lambda row: scores[row])}


def _row_nll(model: SpeechVQ, level_wav: Tensor, local: Tensor, period: Optional[Tensor], rows: list[int],
             seconds: float) -> dict[int, float]:
    """Teacher-forced NLL (nats per sample) under each table row, on the loudest `seconds` of the input, given
    its local conditioning `[1, D, F]` (and pitch-lag periods `[1, F]` or None)."""
    hop, n_frames = model.hop_length, local.shape[-1]
    frames = max(1, min(n_frames, int(seconds * model.sample_rate) // hop))
    padded = F.pad(level_wav, (0, n_frames * hop - level_wav.numel()))  # F * hop samples
    energy = padded.view(-1, hop).pow(2).sum(1)  # (F,)
    start = int(energy.unfold(0, frames, 1).sum(1).argmax())  # the loudest `frames` frames
    excerpt = padded[start * hop:(start + frames) * hop]
    targets = model.mu_law_targets(excerpt).view(1, -1)
    inputs = F.pad(targets[:, :-1], (1, 0), value=mu_law_silence(model.classes))
    local = local[..., start:start + frames]
    period = None if period is None else period[..., start:start + frames]
    scores = {}
    for first in range(0, len(rows), 4):  # four voices per pass: bounded memory
        group = torch.tensor(rows[first:first + 4], device=level_wav.device)
        logits = model.decoder(inputs.expand(len(group), -1), local=local.expand(len(group), -1, -1),
                               speaker=model.speaker_vectors(group),
                               period=None if period is None else period.expand(len(group), -1))
        nll = F.cross_entropy(logits.float(), targets.expand(len(group), -1), reduction="none").mean(dim=1)
        scores.update({row: float(value) for row, value in zip(group.tolist(), nll)})
    return scores


def reference_voice(model: SpeechVQ, wav: Tensor, label: str = "the reference") -> Voice:
    """The voice of a reference recording (for `convert --like`): an utterance model's speaker vector of it
    (quantized, as a code file would carry it); for a table model, the row that explains it best.

    Args:
        wav: float32 `[T]` mono at the model's rate, any level.
        label: how to name the reference in messages (e.g. its file name).

    Raises:
        SpeechVQError: bad audio, or a model without speaker conditioning.
    """
    if not model.has_speakers:
        raise SpeechVQError("this model has no speaker conditioning, so it cannot take on a reference's voice")
    encoded = encode_waveform(model, wav)
    pitch_bin = None if encoded.pitch is None else mean_voiced_bin(encoded.pitch)
    if encoded.speaker_levels is not None:
        vector = model.speaker_from_levels(encoded.speaker_levels.view(1, -1).to(model_device(model)))[0]
        return Voice(vector, f"like {label}", pitch_bin)
    row = torch.tensor([speaker_row(model, encoded.speaker)], device=model_device(model))
    return Voice(model.speaker_vectors(row)[0], f"{encoded.speaker} (the training voice closest to {label})",
                 pitch_bin)


def resolve_voice(model: SpeechVQ, encoded: Encoded, request: Union[str, Voice, None] = None) -> Voice:
    """Which voice codes decode in: the one policy the CLI, the API and evaluation share.

    Order: the requested voice (a name, or a Voice such as `reference_voice`'s); else what the codes
    record: an utterance model's own speaker vector, or a named voice; else the first named voice (a file
    that records no speaker, e.g. a version-1 file written without one). A pitch-stream model converting
    into a named voice other than the recorded one also moves the pitch into that voice's range (`pitch_bin`).

    Raises:
        SpeechVQError: an unknown name, or a model with no voice at all to fall back on.
    """
    if not model.has_speakers:
        return Voice(None, "none (the model has no speaker conditioning)")
    if isinstance(request, Voice):
        return request
    device = model_device(model)
    name = request or (None if encoded.speaker_levels is not None else encoded.speaker)
    if name is None and encoded.speaker_levels is not None:
        vector = model.speaker_from_levels(encoded.speaker_levels.view(1, -1).to(device))[0]
        return Voice(vector, "its own voice (the vector in the file)")
    label = name
    if name is None:
        if not model.has_voices:
            raise SpeechVQError("these codes record no speaker and the model has no named voice to use")
        name = model.speakers[0]
        label = f"{name} (the codes record no speaker)"
    index = speaker_row(model, name)
    row = torch.tensor([index], device=device)
    converting = request is not None and request != encoded.speaker
    return Voice(model.speaker_vectors(row)[0], label, model.voice_pitch_bin(index) if converting else None)


@dataclass
class ScoringInputs:
    """What teacher-forced scoring of one utterance needs, as decoding would see it (`scoring_inputs`).

    Attributes:
        level_wav: float `[T]` at the model's rate and level, in [-1, 1].
        local: float `[latent_dim, F]` the frame conditioning of its codes (and pitch stream).
        vector: float `[speaker_dim]` the voice it decodes in, or None for a model without one.
        period: int64 `[F]` the pitch-lag periods for a decoder with the pitch-lag input, else None.
        voiced: bool `[T']` per sample, the pitch tracker's voicing (T' = T rounded up to whole pitch frames).
    """

    level_wav: Tensor
    local: Tensor
    vector: Optional[Tensor]
    period: Optional[Tensor]
    voiced: Tensor


@torch.no_grad()
def scoring_inputs(model: SpeechVQ, wav: Tensor, speaker: Optional[str]) -> ScoringInputs:
    """Encode one utterance and gather its teacher-forcing inputs (`tools/history_use.py`, session scripts).

    Args:
        model: a `SpeechVQ` in eval mode; wav: float32 `[T]` mono at `model.sample_rate`, any level.
        speaker: its speaker's name, used as the voice when the model has it (else the codes' own choice).
    """
    encoded = encode_waveform(model, wav, speaker if speaker in model.speakers else None)
    pitch = None if encoded.pitch is None else encoded.pitch.view(1, -1)
    local = model.local_conditioning(encoded.codes.view(1, -1), pitch)[0]
    level_wav = normalize_level(wav, model.config.level_dbfs)[0].clamp(-1.0, 1.0)
    period = model.lag_periods(pitch, local.shape[-1])
    pitch_hop = model.config.pitch.frame_codes * model.hop_length
    voiced = voiced_f0(level_wav, model.sample_rate, pitch_hop, model.config.pitch)[1].repeat_interleave(pitch_hop)
    return ScoringInputs(level_wav, local, resolve_voice(model, encoded).vector,
                         None if period is None else period[0], voiced)


def decode_codes(model: SpeechVQ, encoded: Encoded, speaker: Union[str, Voice, None] = None,
                 temperature: float = DEFAULT_TEMPERATURE, seed: Optional[int] = 0, progress: Optional[Callable[[int], None]] = None,
                 options: Optional[DecodeOptions] = None) -> Tensor:
    """Generate the waveform of encoded codes, at the level of the original input.

    Args:
        model: a model in eval mode.
        encoded: codes, length, gain and recorded speaker.
        speaker: the voice to decode in: a name, a `Voice` (e.g. `reference_voice`), or None for what the
            codes record (see `resolve_voice`); ignored by a model without speaker conditioning.
        temperature: sampling temperature (0: argmax; default `config.DEFAULT_TEMPERATURE`, chosen by measurement).
        seed: seed of the sampling generator (None: nondeterministic).
        progress: called with samples generated since the last call (warm-up samples of chunks included).
        options: engine, chunking and post-filter (default: the compiled engine when available, chunk-parallel,
            the pitch post-filter where the codes carry a pitch stream).

    Returns:
        float32 `[T]` with T = encoded.n_samples.
    """
    return decode_many(model, [encoded], [speaker], temperature, seed, progress, options)[0]


def build_engine(model: SpeechVQ, options: Optional[DecodeOptions] = None) -> GenerationEngine:
    """The generation engine `options` asks for, for this model's decoder (weights packed once, here).

    Raises:
        SpeechVQError: an engine this machine or model cannot run (e.g. no C compiler for native, numba
            missing, a GPU-only choice).
    """
    options = options or DecodeOptions()
    try:
        return GenerationEngine(model.decoder, options.engine, options.threads, precision=options.precision)
    except ValueError as err:
        raise SpeechVQError(str(err)) from None


def decode_many(model: SpeechVQ, encoded: Sequence[Encoded], speakers: Sequence[Union[str, Voice, None]],
                temperature: float = DEFAULT_TEMPERATURE, seed: Optional[int] = 0, progress: Optional[Callable[[int], None]] = None,
                options: Optional[DecodeOptions] = None, engine: Optional[GenerationEngine] = None) -> list[Tensor]:
    """Decode several utterances together, as one batch of generation streams (see `decode_codes`).

    Args:
        speakers: per utterance, the voice: a name, a `Voice`, or None (what it records; `resolve_voice`).
        engine: a generation engine of this model to reuse (default: one built for `options.engine`).

    Returns:
        per utterance, float32 `[T]` at its input's level.
    """
    options = options or DecodeOptions()
    device = model_device(model)
    engine = engine or build_engine(model, options)
    if options.best_of > 1 and options.choose_every_s is not None and engine.engine == "reference":
        raise SpeechVQError("the reference engine cannot choose among samples as they are generated "
                            "(--choose-every): use another engine, or --choose-every 0 to choose once per chunk")
    requests, pitches, codes = [], [], []
    for item, request in zip(encoded, speakers):
        voice = resolve_voice(model, item, request)
        pitch = voice_pitch(model, item, voice)
        pitches.append(pitch)
        pitch_row = None if pitch is None else pitch.view(1, -1).to(device)
        codes.append(item.codes.view(1, -1).to(device))
        latents = model.local_conditioning(codes[-1], pitch_row)[0]
        period = model.lag_periods(pitch_row, latents.shape[-1])
        vector = voice.vector
        requests.append(DecodeRequest(latents.detach(), None if vector is None else vector.detach(), item.n_samples,
                                      None if period is None else period[0]))
    generator = torch.Generator(device="cpu")
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    with torch.no_grad():
        waveforms = decode_requests(engine, requests, options, model.sample_rate, temperature, generator,
                                    first_input=None, progress=progress,
                                    score=code_distance(model, codes) if options.best_of > 1 else None,
                                    score_reach=model.encoder.reach)
    outputs = []
    for wav, item, pitch in zip(waveforms, encoded, pitches):
        wav = model.waveform_from_classes(wav.cpu())
        if pitch is not None and options.postfilter > 0:  # the symbols decoded with: a conversion's moved ones
            wav = pitch_postfilter(wav, symbol_f0_hz(pitch.cpu(), model.config.pitch), model.pitch_hop,
                                   model.sample_rate, options.postfilter)
        outputs.append((wav / item.gain).clamp(-1.0, 1.0))
    return outputs


def code_distance(model: SpeechVQ, codes: Sequence[Tensor]) -> Scorer:
    """How far decoded candidates lie from the codes they were decoded from, for choosing among them
    (`DecodeOptions.best_of`): the encoder's output for each candidate against the codebook vectors of the
    codes, mean squared distance over the frames judged. A sample whose words or timing drifted from what
    the codes say is re-encoded farther from them; the encoder is the codec's own, so no other model is
    needed. Its reach (`Encoder.reach`) is what `decode_requests` takes as `score_reach`.

    Args:
        codes: per request, int64 codes `[1, F]` on the model's device.

    Returns:
        score(chunk, first frame, waveforms float32 `[N, samples]` from that frame of the chunk's request on at
        the model's level, mu-law decoded, lo, hi): float64 `[N]`, each candidate's distance over the request's
        frames [lo, hi), lower is closer. The N candidates are encoded as one batch: one call per candidate
        took 17% of a best-of-8 decode (2026-12-04: 720 calls, 1.05 of 6.20 s for a 4.83-s file).
    """
    targets = [model.quantizer.lookup(row)[0].detach() for row in codes]  # [D, F] each

    @torch.no_grad()
    def score(chunk: Chunk, first: int, wavs: Tensor, lo: int, hi: int) -> Tensor:
        target = targets[chunk.request]
        hi = min(hi, target.shape[-1])
        z_e = model.encoder(model.waveform_from_classes(wavs).unsqueeze(1).to(target.device))  # [N, D, F]
        return (z_e[:, :, lo - first:hi - first] - target[:, lo:hi]).pow(2).mean((1, 2)).double().cpu()

    return score


def voice_pitch(model: SpeechVQ, encoded: Encoded, voice: Voice) -> Optional[Tensor]:
    """The pitch symbols to decode `encoded` with in `voice`: its own, moved by whole log-F0 bins so that
    their voiced mean lands on the voice's (`Voice.pitch_bin`) when converting; None without a pitch stream.

    Raises:
        SpeechVQError: see `check_pitch`.
    """
    check_pitch(model, encoded)
    if encoded.pitch is None or voice.pitch_bin is None:
        return encoded.pitch
    source = mean_voiced_bin(encoded.pitch)
    if source is None:
        return encoded.pitch
    return shift_symbols(encoded.pitch, round(voice.pitch_bin - source), model.config.pitch)


def check_pitch(model: SpeechVQ, encoded: Encoded) -> None:
    """Raise SpeechVQError unless `encoded` carries pitch symbols exactly when the model has a pitch stream."""
    if model.has_pitch != (encoded.pitch is not None):
        raise SpeechVQError("these codes carry no pitch symbols, and this model needs them" if model.has_pitch
                            else "these codes carry pitch symbols, and this model has no pitch stream")


def speaker_row(model: SpeechVQ, name: str) -> int:
    """Row of `name` among the model's named voices, as a SpeechVQError for an unknown name."""
    if not model.has_voices:
        raise SpeechVQError("this model has no named voices, so it cannot decode in a chosen one")
    try:
        return model.speaker_index(name)
    except KeyError as err:
        raise SpeechVQError(str(err.args[0])) from None


@dataclass
class Timing:
    """Wall-clock seconds and the real-time factor (seconds of compute per second of audio)."""

    seconds: float
    audio_seconds: float

    @property
    def real_time_factor(self) -> float:
        return self.seconds / max(self.audio_seconds, 1e-9)


def timed_call(function: Callable[[], object], audio_seconds: float):
    """Run `function`; return (its result, Timing)."""
    start = time.perf_counter()
    result = function()
    return result, Timing(time.perf_counter() - start, audio_seconds)


def bitrates(model: SpeechVQ, codes: Tensor, pitch: Optional[Tensor] = None) -> dict[str, float]:
    """Nominal (frame rate x ceil(log2 K), plus a pitch stream's) and empirical-entropy bitrates of `codes`
    (and of `pitch`, int64 symbols, when given), in bits per second."""
    frame_rate = model.sample_rate / model.hop_length
    pitch_bps = 0.0 if pitch is None else \
        model.sample_rate / model.pitch_hop * entropy_bits(pitch.numpy(), model.config.pitch.symbols)
    return {"nominal_bps": model.config.bitrate_bps,
            "entropy_bps": frame_rate * entropy_bits(codes.numpy(), model.quantizer.codebook_size) + pitch_bps,
            "log2_codebook_bps": frame_rate * math.log2(model.quantizer.codebook_size)}
