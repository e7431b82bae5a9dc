"""Compress, decompress, resynthesise and convert: waveforms in, waveforms out, around a loaded model.

    wav (any level)  --normalize_level-->  wav at model level  --encode-->  codes [F]     (+ gain, length)
    codes            --decode (WaveNet, chosen speaker)-->      wav at model level  --/ gain-->  wav

The level gain travels with the codes so that decoding gives back the input's level; voice conversion is
decoding the source's codes with another speaker's embedding.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from .audio import normalize_level
from .entropy import entropy_bits
from .errors import SpeechVQError
from .generation import DecodeOptions, DecodeRequest, GenerationEngine, decode_requests
from .models import SpeechVQ


@dataclass
class Encoded:
    """The codes of one utterance and what decoding needs besides them.

    Attributes:
        codes: int64 `[F]` in [0, K).
        n_samples: samples of the input at the model rate (F = ceil(n_samples / hop)).
        gain: linear gain applied before encoding (decoding divides by it).
        speaker: the speaker to decode with by default (the source speaker, when known), or None.
    """

    codes: Tensor
    n_samples: int
    gain: float
    speaker: Optional[str] = None


def model_device(model: SpeechVQ) -> torch.device:
    """The device the model's weights are on."""
    return next(model.parameters()).device


def encode_waveform(model: SpeechVQ, wav: Tensor, speaker: Optional[str] = None,
                    chunk_frames: Optional[int] = None) -> Encoded:
    """Encode one utterance.

    Args:
        model: a model in eval mode.
        wav: float32 `[T]` mono at `model.sample_rate`, any level.
        speaker: the speaker to record with the codes (checked against the model's table).
        chunk_frames: encoder frames per pass (bounded memory on long inputs; the same codes).

    Returns:
        Encoded codes, length and level gain.

    Raises:
        SpeechVQError: empty or non-finite audio, or a speaker the model does not know.
    """
    if wav.dim() != 1 or wav.numel() == 0:
        raise SpeechVQError("expected a non-empty mono waveform")
    if not torch.isfinite(wav).all():
        raise SpeechVQError("the audio holds NaN or infinite samples")
    if speaker is not None:
        speaker_row(model, speaker)
    level_wav, gain = normalize_level(wav, model.config.level_dbfs)
    codes = model.encode(level_wav.clamp(-1.0, 1.0).view(1, 1, -1).to(model_device(model)), chunk_frames)[0].cpu()
    return Encoded(codes=codes, n_samples=wav.numel(), gain=gain, speaker=speaker)


def decode_codes(model: SpeechVQ, encoded: Encoded, speaker: Optional[str] = None, temperature: float = 1.0,
                 seed: Optional[int] = 0, progress: Optional[Callable[[int], None]] = None,
                 options: Optional[DecodeOptions] = None) -> Tensor:
    """Generate the waveform of encoded codes, at the level of the original input.

    Args:
        model: a model in eval mode.
        encoded: codes, length and gain.
        speaker: whose voice to decode in (default: `encoded.speaker`, else the first speaker of the table);
            ignored by a model without speaker conditioning.
        temperature: sampling temperature (0: argmax).
        seed: seed of the sampling generator (None: nondeterministic).
        progress: called with samples generated since the last call (warm-up samples of chunks included).
        options: engine and chunking (default: the compiled engine when available, chunk-parallel).

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


def decode_many(model: SpeechVQ, encoded: Sequence[Encoded], speakers: Sequence[Optional[str]],
                temperature: float = 1.0, seed: Optional[int] = 0, progress: Optional[Callable[[int], None]] = None,
                options: Optional[DecodeOptions] = None, engine: Optional[GenerationEngine] = None) -> list[Tensor]:
    """Decode several utterances together, as one batch of generation streams (see `decode_codes`).

    Args:
        speakers: per utterance, the voice (None: its recorded speaker, else the table's first).
        engine: a generation engine of this model to reuse (default: one built for `options.engine`).

    Returns:
        per utterance, float32 `[T]` at its input's level.
    """
    options = options or DecodeOptions()
    device = model_device(model)
    engine = engine or build_engine(model, options)
    requests = []
    for item, name in zip(encoded, speakers):
        name = name or item.speaker
        vector = None
        if model.has_speakers:
            row = torch.tensor([speaker_row(model, name) if name else 0], device=device)
            vector = model.speaker_vectors(row)[0]
        latents = model.quantizer.lookup(item.codes.view(1, -1).to(device))[0]
        requests.append(DecodeRequest(latents.detach(), None if vector is None else vector.detach(), item.n_samples))
    generator = torch.Generator(device="cpu")
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    with torch.no_grad():
        waveforms = decode_requests(engine, requests, options, model.sample_rate, temperature, generator,
                                    first_input=None, progress=progress)
    return [(wav.cpu() / item.gain).clamp(-1.0, 1.0) for wav, item in zip(waveforms, encoded)]


def speaker_row(model: SpeechVQ, name: str) -> int:
    """Row of `name` in the model's speaker table, as a SpeechVQError for an unknown name."""
    if not model.has_speakers:
        raise SpeechVQError("this model has no speaker table, so it cannot decode in a chosen voice")
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


def bitrates(model: SpeechVQ, codes: Tensor) -> dict[str, float]:
    """Nominal (frame rate x ceil(log2 K)) and empirical-entropy bitrates of `codes`, in bits per second."""
    frame_rate = model.sample_rate / model.hop_length
    return {"nominal_bps": model.config.bitrate_bps,
            "entropy_bps": frame_rate * entropy_bits(codes.numpy(), model.quantizer.codebook_size),
            "log2_codebook_bps": frame_rate * math.log2(model.quantizer.codebook_size)}
