"""The codec: waveform <-> .svq bytes with a model checkpoint, checking that the codes belong to the model.

    codec = Codec.from_checkpoint("model.pt")
    data = codec.compress(wav)                          # bytes of a .svq file (speechvq/bitstream.py)
    wav, info = codec.decompress(data)                  # in the recorded voice, at the input's level
    wav, info = codec.decompress(data, like=other_wav)  # in another recording's voice

A code file names the model that made it by a fingerprint of the weights that matter for inference; a file
from another model, or entropy-coded with other code statistics, is refused with one line rather than
decoded into noise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from . import bitstream, entropy
from .checkpoint import attach_code_statistics, load_checkpoint, weights_fingerprint
from .errors import SpeechVQError
from .inference import (DEFAULT_TEMPERATURE, Encoded, check_pitch, decode_codes, encode_waveform, reference_voice,
                        resolve_voice, speaker_row)
from .models import SpeechVQ
from .version import __version__

DEFAULT_CHUNK_FRAMES = 25_000  # 100 s of codes at 250 Hz per encoder pass: bounded memory on long files


def model_fingerprint(model: SpeechVQ) -> str:
    """A hex digest of the model's inference weights and speaker names (16 characters); see
    `speechvq.checkpoint.weights_fingerprint`."""
    return weights_fingerprint(model.state_dict(), model.speakers)


@dataclass(frozen=True)
class CodeFile:
    """A code file's header, completed by the model that reads it.

    Attributes:
        header: what the file itself holds (`bitstream.Header`).
        sample_rate, hop_length, codebook_size: the model's (a version-1 file also records them).
        code_entropy_bits: empirical zeroth-order entropy of its codes, bits per code.
        voice: how it decodes by default (see `inference.resolve_voice`).
        pitch_rate_hz, pitch_bits: a pitch stream's symbols per second and bits per symbol (0 without one).
        pitch_entropy_bits: empirical zeroth-order entropy of its pitch symbols, bits per symbol (0 without).
    """

    header: bitstream.Header
    sample_rate: int
    hop_length: int
    codebook_size: int
    code_entropy_bits: float
    voice: str
    pitch_rate_hz: float = 0.0
    pitch_bits: int = 0
    pitch_entropy_bits: float = 0.0

    @property
    def duration_s(self) -> float:
        """Seconds of audio the file decodes to."""
        return self.header.samples / self.sample_rate

    def bitrates(self, file_bytes: int) -> dict[str, float]:
        """The three bitrates, bits per second of audio: nominal (frame rate x log2 K), the codes' empirical
        entropy, and the whole file's size; the first two include a pitch stream's (nominal: its bits per
        symbol; entropy: its symbols' empirical entropy)."""
        frame_rate = self.sample_rate / self.hop_length
        return {"nominal_bps": frame_rate * math.log2(self.codebook_size) + self.pitch_rate_hz * self.pitch_bits,
                "entropy_bps": frame_rate * self.code_entropy_bits + self.pitch_rate_hz * self.pitch_entropy_bits,
                "file_bps": 8 * file_bytes / self.duration_s}


@dataclass
class Codec:
    """A model and, when measured, the code statistics for entropy coding.

    Attributes:
        model: in eval mode.
        statistics: code counts for the "markov1" coding, or None (files are then bit-packed).
    """

    model: SpeechVQ
    statistics: Optional[entropy.CodeStatistics] = None

    def __post_init__(self) -> None:
        self.fingerprint = model_fingerprint(self.model)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> "Codec":
        """Load the model and its code statistics from a checkpoint.

        Raises:
            SpeechVQError: see `speechvq.checkpoint.load_checkpoint`.
        """
        checkpoint = load_checkpoint(path)
        statistics = checkpoint.code_statistics
        return cls(checkpoint.build_model(device),
                   entropy.CodeStatistics.from_state(statistics) if statistics is not None else None)

    def file_fingerprint(self, coding: str) -> str:
        """The 32-bit fingerprint a version-2 file of this coding carries (8 hex digits): the model's, and for
        markov1 also the code statistics' (files coded with other statistics would decode into other codes)."""
        if coding != "markov1" or self.statistics is None:
            return self.fingerprint[:8]
        return hashlib.sha256(f"{self.fingerprint}:{self.statistics.fingerprint}".encode()).hexdigest()[:8]

    def encode(self, wav: Tensor, speaker: Optional[str] = None,
               chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> Encoded:
        """Encode a waveform (see `inference.encode_waveform`: a table model without `speaker` records its
        closest voice, an utterance model its own speaker vector)."""
        return encode_waveform(self.model, wav, speaker, chunk_frames=chunk_frames)

    def to_bytes(self, encoded: Encoded, coding: str = "auto", version: int = bitstream.FORMAT_VERSION,
                 metadata: Optional[dict] = None) -> bytes:
        """The bytes of a .svq file holding `encoded`.

        Args:
            coding: "packed", "markov1" (needs code statistics) or "auto" (markov1 when available).
            version: the format version: 2, or 1 for readers of speechvq 0.1 (a named voice only).
            metadata: a JSON object to store too (version 2; only when asked for: it costs bytes).

        Raises:
            SpeechVQError: an unknown coding, markov1 without statistics, or what `version` cannot hold.
        """
        if coding not in ("auto", *bitstream.CODINGS):
            raise SpeechVQError(f"unknown coding {coding!r} (auto, {', '.join(bitstream.CODINGS)})")
        if coding == "markov1" and self.statistics is None:
            raise SpeechVQError("this checkpoint has no code statistics for markov1 coding; "
                                "measure them with `speechvq code-stats` or use --coding packed")
        if version not in bitstream.VERSIONS:
            raise SpeechVQError(f"unknown format version {version} (known: {bitstream.VERSIONS})")
        coding = "markov1" if coding == "markov1" or (coding == "auto" and self.statistics is not None) else "packed"
        codes = encoded.codes.numpy()
        size = self.model.quantizer.codebook_size
        payload = entropy.encode(codes, self.statistics) if coding == "markov1" else \
            bitstream.pack_codes(codes.tolist(), size)
        common = dict(coding=coding, samples=encoded.n_samples, frames=int(codes.shape[0]), gain=float(encoded.gain))
        check_pitch(self.model, encoded)
        if version == 1:
            if encoded.pitch is not None:
                raise SpeechVQError("format version 1 cannot hold a pitch stream: use version 2")
            if encoded.speaker is None and encoded.speaker_levels is not None:
                raise SpeechVQError("format version 1 cannot hold a speaker vector: name a voice, or use version 2")
            if metadata:
                raise SpeechVQError("format version 1 holds no free-form metadata")
            extra = {"sample_rate": self.model.sample_rate, "hop_length": self.model.hop_length,
                     "codebook_size": size, "speechvq_version": __version__,
                     "entropy_model": self.statistics.fingerprint if coding == "markov1" else None,
                     "code_entropy_bits": round(entropy.entropy_bits(codes, size), 6)}
            header = bitstream.Header(model_fingerprint=self.fingerprint, speaker_name=encoded.speaker,
                                      metadata=extra, version=1, **common)
            return bitstream.serialize_v1(header, payload)
        voice = vector = None
        if encoded.speaker is not None:
            voice = speaker_row(self.model, encoded.speaker)
        elif encoded.speaker_levels is not None:
            vector = bitstream.pack_codes(encoded.speaker_levels.tolist(), self.model.speaker_encoder.levels)
        pitch = None
        if encoded.pitch is not None:
            pitch_counts = self._pitch_counts(coding)
            pitch = entropy.encode(encoded.pitch.numpy(), pitch_counts) if pitch_counts is not None else \
                bitstream.pack_codes(encoded.pitch.tolist(), self.model.config.pitch.symbols)
        header = bitstream.Header(model_fingerprint=self.file_fingerprint(coding), speaker_voice=voice,
                                  speaker_vector=vector, pitch=pitch, metadata=metadata, **common)
        try:
            return bitstream.serialize(header, payload)
        except ValueError as err:
            raise SpeechVQError(str(err)) from None

    def compress(self, wav: Tensor, speaker: Optional[str] = None, coding: str = "auto",
                 chunk_frames: int = DEFAULT_CHUNK_FRAMES, version: int = bitstream.FORMAT_VERSION,
                 metadata: Optional[dict] = None) -> bytes:
        """Encode a waveform into the bytes of a .svq file.

        Args:
            wav: float32 `[T]` mono at the model's sample rate, any level.
            speaker: a named voice to record (decoding uses it by default); None: a table model records the
                voice that explains the utterance best, an utterance model the utterance's own vector.
            coding, version, metadata: see `to_bytes`.
            chunk_frames: frames per encoder pass (bounded memory; the codes do not depend on it).

        Raises:
            SpeechVQError: bad audio, an unknown speaker, or see `to_bytes`.
        """
        return self.to_bytes(self.encode(wav, speaker, chunk_frames), coding, version, metadata)

    def read(self, data: bytes, source: str = "code file") -> tuple[Encoded, CodeFile]:
        """Parse and check .svq bytes (either format version) against this model.

        Returns:
            the codes ready for decoding, and the file's description.

        Raises:
            SpeechVQError: any defect of the file, or codes made by another model or other statistics.
        """
        header, payload = bitstream.parse(data, source)
        model = self.model
        size = model.quantizer.codebook_size
        if header.version == 1:
            self._check_v1(header, source)
        elif header.model_fingerprint != self.file_fingerprint(header.coding):
            other = ", or entropy-coded with code statistics this checkpoint does not carry" \
                if header.coding == "markov1" else ""
            raise SpeechVQError(f"{source} was made by a different model{other} (fingerprint "
                                f"{header.model_fingerprint}, this model {self.file_fingerprint(header.coding)})")
        if model.num_frames(header.samples) != header.frames:
            raise SpeechVQError(f"{source} has {header.frames} frames for {header.samples} samples: this model "
                                f"(hop {model.hop_length}) makes {model.num_frames(header.samples)}")
        if header.coding == "markov1":
            if self.statistics is None:
                raise SpeechVQError(f"{source} is entropy-coded, and this checkpoint carries no code statistics")
            try:
                codes = entropy.decode(payload, header.frames, self.statistics)
            except (ValueError, AssertionError, RuntimeError, OverflowError):
                raise SpeechVQError(f"{source} holds a payload that does not decode") from None
        else:
            codes = np.asarray(bitstream.unpack_codes(payload, header.frames, size), np.int64)
        speaker, levels = self._speaker(header, source)
        pitch = self._pitch(header, source)
        encoded = Encoded(torch.from_numpy(codes), header.samples, header.gain, speaker, levels, pitch=pitch)
        voice = resolve_voice(model, encoded).label
        pitch_info = {}
        if pitch is not None:
            symbols = model.config.pitch.symbols
            pitch_info = dict(pitch_rate_hz=model.sample_rate / model.pitch_hop, pitch_bits=model.config.pitch.bits,
                              pitch_entropy_bits=round(entropy.entropy_bits(pitch.numpy(), symbols), 6))
        info = CodeFile(header, model.sample_rate, model.hop_length, size,
                        round(entropy.entropy_bits(codes, size), 6), voice, **pitch_info)
        return encoded, info

    def _pitch_counts(self, coding: str) -> Optional[entropy.CodeStatistics]:
        """The counts a file of `coding` range-codes its pitch stream with: the statistics' pitch counts in a
        markov1 file, else None (bit-packed; also for statistics measured without them)."""
        return self.statistics.pitch if coding == "markov1" and self.statistics is not None else None

    def _pitch(self, header: bitstream.Header, source: str) -> Optional[Tensor]:
        """The pitch symbols a file carries, int64 `[ceil(F / frame_codes)]`, checked against the model."""
        model = self.model
        if header.pitch is None:
            if model.has_pitch:
                raise SpeechVQError(f"{source} carries no pitch stream, and this model needs one")
            return None
        if not model.has_pitch:
            raise SpeechVQError(f"{source} carries a pitch stream; this model has none")
        count = model.num_pitch_frames(header.frames)
        pitch_counts = self._pitch_counts(header.coding)
        try:
            if pitch_counts is not None:
                return torch.from_numpy(entropy.decode(header.pitch, count, pitch_counts))
            symbols = bitstream.unpack_codes(header.pitch, count, model.config.pitch.symbols)
        except (SpeechVQError, ValueError, AssertionError, RuntimeError, OverflowError):
            how = "range-coded" if pitch_counts is not None else f"of {model.config.pitch.bits} bits"
            raise SpeechVQError(f"{source} carries a pitch stream that does not fit this model ({count} "
                                f"symbols, {how})") from None
        return torch.tensor(symbols, dtype=torch.long)

    def _check_v1(self, header: bitstream.Header, source: str) -> None:
        meta = header.metadata or {}
        if header.model_fingerprint != self.fingerprint:
            raise SpeechVQError(f"{source} was made by a different model (fingerprint {header.model_fingerprint}, "
                                f"this model {self.fingerprint})")
        expected = (self.model.sample_rate, self.model.hop_length, self.model.quantizer.codebook_size)
        if (meta.get("sample_rate"), meta.get("hop_length"), meta.get("codebook_size")) != expected:
            raise SpeechVQError(f"{source} does not match this model's sample rate, hop or codebook size")
        if header.coding == "markov1" and (self.statistics is None
                                           or meta.get("entropy_model") != self.statistics.fingerprint):
            raise SpeechVQError(f"{source} was entropy-coded with code statistics this checkpoint does not "
                                f"carry (entropy model {meta.get('entropy_model')})")

    def _speaker(self, header: bitstream.Header, source: str) -> tuple[Optional[str], Optional[Tensor]]:
        """The named voice or the speaker levels a file records, checked against the model."""
        model = self.model
        if header.speaker_name is not None:
            if header.speaker_name not in model.speakers:
                raise SpeechVQError(f"{source} names speaker {header.speaker_name!r}, unknown to this model")
            return header.speaker_name, None
        if header.speaker_voice is not None:
            if not model.has_voices or header.speaker_voice >= model.n_speakers:
                raise SpeechVQError(f"{source} names voice {header.speaker_voice}; this model has "
                                    f"{model.n_speakers if model.has_voices else 'no'} named voices")
            return model.speakers[header.speaker_voice], None
        if header.speaker_vector is not None:
            if model.speaker_encoder is None:
                raise SpeechVQError(f"{source} carries a speaker vector; this model takes none")
            dims, levels = model.config.speaker_dim, model.speaker_encoder.levels
            try:
                values = bitstream.unpack_codes(header.speaker_vector, dims, levels)
            except SpeechVQError:
                raise SpeechVQError(f"{source} carries a speaker vector that does not fit this model "
                                    f"({dims} values of {model.config.speaker_bits} bits)") from None
            return None, torch.tensor(values, dtype=torch.long)
        return None, None

    def decompress(self, data: bytes, speaker: Optional[str] = None, like: Optional[Tensor] = None,
                   temperature: float = DEFAULT_TEMPERATURE, seed: Optional[int] = 0, progress: Optional[Callable[[int], None]] = None,
                   source: str = "code file") -> tuple[Tensor, CodeFile]:
        """Decode .svq bytes into a waveform: float32 `[T]` at the model rate, at the input's level.

        Args:
            speaker: a named voice to decode in (default: what the file records; see `resolve_voice`).
            like: float32 `[T]` audio of a reference speaker at the model rate: decode in that voice instead
                (any speaker for an utterance model; a table model's closest row).
            temperature, seed: sampling settings.
            progress: called with samples generated since the last call.
        """
        encoded, info = self.read(data, source)
        voice = reference_voice(self.model, like) if like is not None else speaker
        return decode_codes(self.model, encoded, voice, temperature, seed, progress), info


def measure_code_statistics(codec: Codec, waveforms, progress: Optional[Callable[[int], None]] = None
                            ) -> entropy.CodeStatistics:
    """Count codes and code pairs of the model over an iterable of float32 `[T]` waveforms, and for a
    pitch-stream model its pitch symbols and their pairs too (`CodeStatistics.pitch`)."""
    sequences, pitch_sequences = [], []
    for wav in waveforms:
        # the codes do not depend on the voice: no closest-voice scoring (a few decoder passes per file)
        encoded = encode_waveform(codec.model, wav, chunk_frames=DEFAULT_CHUNK_FRAMES, choose_voice=False)
        sequences.append(encoded.codes.numpy())
        if encoded.pitch is not None:
            pitch_sequences.append(encoded.pitch.numpy())
        if progress is not None:
            progress(1)
    statistics = entropy.CodeStatistics.from_sequences(sequences, codec.model.quantizer.codebook_size)
    if codec.model.has_pitch:
        pitch = entropy.CodeStatistics.from_sequences(pitch_sequences, codec.model.config.pitch.symbols)
        statistics = dataclasses.replace(statistics, pitch=pitch)
    return statistics


def save_code_statistics(path: str | os.PathLike, statistics: entropy.CodeStatistics) -> None:
    """Attach measured statistics to the checkpoint at `path` (atomically rewritten)."""

    def tensors(state: dict) -> dict:
        out = {"unigram": torch.from_numpy(state["unigram"]),
               "bigram": torch.from_numpy(state["bigram"].astype(np.int32)), "utterances": state["utterances"]}
        if "pitch" in state:
            out["pitch"] = tensors(state["pitch"])
        return out

    attach_code_statistics(path, tensors(statistics.to_state()))
