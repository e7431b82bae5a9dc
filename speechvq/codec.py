"""The codec: waveform <-> .svq bytes with a model checkpoint, checking that the codes belong to the model.

    codec = Codec.from_checkpoint("model.pt")
    data = codec.compress(wav, speaker="p225")          # bytes of a .svq file (speechvq/bitstream.py)
    wav, header = codec.decompress(data)                # in the recorded speaker's voice, at the input's level

A code file names the model that made it by a fingerprint of the weights that matter for inference; a file
from another model, or entropy-coded with other code statistics, is refused with one line rather than
decoded into noise.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from . import bitstream, entropy
from .checkpoint import attach_code_statistics, load_checkpoint
from .errors import SpeechVQError
from .inference import Encoded, decode_codes, encode_waveform
from .models import SpeechVQ
from .version import __version__

DEFAULT_CHUNK_FRAMES = 25_000  # 100 s of codes at 250 Hz per encoder pass: bounded memory on long files
# Quantizer state that only training uses: it does not change what a code decodes to.
_TRAINING_ONLY = ("quantizer.ema_cluster_size", "quantizer.ema_embed_sum", "quantizer.steps_unused",
                  "quantizer.total_restarts", "quantizer.initialized")


def model_fingerprint(model: SpeechVQ) -> str:
    """A hex digest of the model's inference weights and speaker names (16 characters)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name in _TRAINING_ONLY:
            continue
        value = tensor.detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}:{tuple(value.shape)}".encode())
        digest.update(value.numpy().tobytes())
    digest.update("\0".join(model.speakers).encode())
    return digest.hexdigest()[:16]


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

    def compress(self, wav: Tensor, speaker: Optional[str] = None, coding: str = "auto",
                 chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> bytes:
        """Encode a waveform into the bytes of a .svq file.

        Args:
            wav: float32 `[T]` mono at the model's sample rate, any level.
            speaker: the voice decoding uses by default (a name from the model's table), or None.
            coding: "packed", "markov1" (needs code statistics) or "auto" (markov1 when available).
            chunk_frames: frames per encoder pass (bounded memory; the codes do not depend on it).

        Raises:
            SpeechVQError: bad audio, an unknown speaker, or markov1 without statistics.
        """
        if coding not in ("auto", *bitstream.CODINGS):
            raise SpeechVQError(f"unknown coding {coding!r} (auto, {', '.join(bitstream.CODINGS)})")
        if coding == "markov1" and self.statistics is None:
            raise SpeechVQError("this checkpoint has no code statistics for markov1 coding; "
                                "measure them with `speechvq code-stats` or use --coding packed")
        use_markov = coding == "markov1" or (coding == "auto" and self.statistics is not None)
        encoded = encode_waveform(self.model, wav, speaker, chunk_frames=chunk_frames)
        codes = encoded.codes.numpy()
        size = self.model.quantizer.codebook_size
        payload = entropy.encode(codes, self.statistics) if use_markov else bitstream.pack_codes(codes.tolist(), size)
        header = bitstream.Header(
            sample_rate=self.model.sample_rate, hop_length=self.model.hop_length, codebook_size=size,
            frames=int(codes.shape[0]), samples=encoded.n_samples, gain=float(encoded.gain),
            model_fingerprint=self.fingerprint, speaker=speaker, speechvq_version=__version__,
            coding="markov1" if use_markov else "packed",
            entropy_model=self.statistics.fingerprint if use_markov else None,
            code_entropy_bits=round(entropy.entropy_bits(codes, size), 6))
        return bitstream.serialize(header, payload)

    def read(self, data: bytes, source: str = "code file") -> tuple[Encoded, bitstream.Header]:
        """Parse and check .svq bytes against this model; returns the codes ready for decoding.

        Raises:
            SpeechVQError: any defect of the file, or codes made by another model or other statistics.
        """
        header, payload = bitstream.parse(data, source)
        if header.model_fingerprint != self.fingerprint:
            raise SpeechVQError(f"{source} was made by a different model (fingerprint {header.model_fingerprint}, "
                                f"this model {self.fingerprint})")
        expected = (self.model.sample_rate, self.model.hop_length, self.model.quantizer.codebook_size)
        if (header.sample_rate, header.hop_length, header.codebook_size) != expected:
            raise SpeechVQError(f"{source} does not match this model's sample rate, hop or codebook size")
        if header.coding == "markov1":
            if self.statistics is None or header.entropy_model != self.statistics.fingerprint:
                raise SpeechVQError(f"{source} was entropy-coded with code statistics this checkpoint does not "
                                    f"carry (entropy model {header.entropy_model})")
            try:
                codes = entropy.decode(payload, header.frames, self.statistics)
            except (ValueError, AssertionError, RuntimeError, OverflowError):
                raise SpeechVQError(f"{source} holds a payload that does not decode") from None
        else:
            codes = np.asarray(bitstream.unpack_codes(payload, header.frames, header.codebook_size), np.int64)
        if header.speaker is not None and header.speaker not in self.model.speakers:
            raise SpeechVQError(f"{source} names speaker {header.speaker!r}, unknown to this model")
        encoded = Encoded(torch.from_numpy(codes), header.samples, header.gain, header.speaker)
        return encoded, header

    def decompress(self, data: bytes, speaker: Optional[str] = None, temperature: float = 1.0,
                   seed: Optional[int] = 0, progress: Optional[Callable[[int], None]] = None,
                   source: str = "code file") -> tuple[Tensor, bitstream.Header]:
        """Decode .svq bytes into a waveform: float32 `[T]` at the model rate, at the input's level.

        Args:
            speaker: the voice to decode in (default: the one the file records, else the table's first).
            temperature, seed: sampling settings.
            progress: called with samples generated since the last call.
        """
        encoded, header = self.read(data, source)
        return decode_codes(self.model, encoded, speaker, temperature, seed, progress), header


def measure_code_statistics(codec: Codec, waveforms, progress: Optional[Callable[[int], None]] = None
                            ) -> entropy.CodeStatistics:
    """Count codes and code pairs of the model over an iterable of float32 `[T]` waveforms."""
    sequences = []
    for wav in waveforms:
        sequences.append(encode_waveform(codec.model, wav, chunk_frames=DEFAULT_CHUNK_FRAMES).codes.numpy())
        if progress is not None:
            progress(1)
    return entropy.CodeStatistics.from_sequences(sequences, codec.model.quantizer.codebook_size)


def save_code_statistics(path: str | os.PathLike, statistics: entropy.CodeStatistics) -> None:
    """Attach measured statistics to the checkpoint at `path` (atomically rewritten)."""
    state = statistics.to_state()
    attach_code_statistics(path, {"unigram": torch.from_numpy(state["unigram"]),
                                  "bigram": torch.from_numpy(state["bigram"].astype(np.int32)),
                                  "utterances": state["utterances"]})
