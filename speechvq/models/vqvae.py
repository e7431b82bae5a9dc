"""SpeechVQ: encoder + vector quantizer + speaker table + WaveNet decoder, assembled.

    wav [B, 1, T] --Encoder--> z_e [B, D, F] --VectorQuantizer--> codes [B, F], z_q [B, D, F]
    z_q (+ speaker embedding) --WaveNet--> logits over mu-law classes of every sample [B, 256, T]

The waveforms here are already at the model's sample rate and level (see `speechvq.audio`); loading,
level normalisation and files live in the inference and data layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..audio import mu_law_decode, mu_law_encode, mu_law_silence
from ..config import ModelConfig
from .encoder import Encoder
from .quantizer import VectorQuantizer
from .wavenet import WaveNet


@dataclass
class VQVAEOutput:
    """Losses and codebook statistics of one training forward pass (all scalars are 0-dim tensors).

    Attributes:
        loss: the objective, nll + vq_loss.
        nll: mean negative log-likelihood of the mu-law targets, nats per sample.
        vq_loss: codebook_loss + commitment_weight * commitment_loss.
        codebook_loss, commitment_loss: the two quantizer terms.
        perplexity: exp(entropy) of the batch's code usage (K at best).
        used_codes: codes used at least once in the batch.
        restarts: dead codes re-seeded in this pass.
        codes: int64 `[B, F]`.
    """

    loss: Tensor
    nll: Tensor
    vq_loss: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor
    perplexity: Tensor
    used_codes: Tensor
    restarts: int
    codes: Tensor

    @property
    def bits_per_sample(self) -> float:
        """The NLL in bits per sample (8 for a uniform guess over 256 classes)."""
        return float(self.nll) / math.log(2.0)


class SpeechVQ(nn.Module):
    """The VQ-VAE speech model.

    Args:
        config: the model section of a Config.
        speakers: names of the training speakers, one row of the speaker table each (empty: no speaker
            conditioning). Saved with the weights, so a checkpoint knows who its rows are.
    """

    def __init__(self, config: ModelConfig, speakers: Sequence[str] = ()):
        super().__init__()
        if any(not isinstance(n, str) or not n for n in speakers) or len(set(speakers)) != len(speakers):
            raise ValueError("speaker names must be unique, non-empty strings")
        self.config = config
        self.speakers = tuple(speakers)
        n_speakers = self.n_speakers = len(self.speakers)
        self.sample_rate = config.sample_rate
        self.hop_length = config.hop_length
        self.classes = config.mu_law_classes
        self.encoder = Encoder(config.encoder)
        self.quantizer = VectorQuantizer(config.quantizer, config.encoder.latent_dim)
        use_speakers = n_speakers > 0 and config.speaker_dim > 0
        self.speaker_embedding = nn.Embedding(n_speakers, config.speaker_dim) if use_speakers else None
        self.decoder = WaveNet(config.decoder, classes=config.mu_law_classes, hop_length=config.hop_length,
                               local_channels=config.encoder.latent_dim,
                               global_channels=config.speaker_dim if use_speakers else 0)

    @property
    def has_speakers(self) -> bool:
        """Whether the decoder is conditioned on a speaker."""
        return self.speaker_embedding is not None

    def num_frames(self, n_samples: int) -> int:
        """Codes for `n_samples` samples: ceil(n_samples / hop_length)."""
        return self.encoder.num_frames(n_samples)

    def speaker_index(self, name: str) -> int:
        """Row of the speaker table for a speaker name.

        Raises:
            KeyError: the model has no such speaker (the message lists a few it has).
        """
        try:
            return self.speakers.index(name)
        except ValueError:
            known = ", ".join(self.speakers[:8]) + (", ..." if len(self.speakers) > 8 else "")
            raise KeyError(f"unknown speaker {name!r} (this model knows: {known or 'none'})") from None

    def speaker_vectors(self, speaker: Optional[Tensor]) -> Optional[Tensor]:
        """Embedding rows for speaker indices.

        Args:
            speaker: int64 `[B]` indices into the speaker table, or None for a model without one.

        Returns:
            float `[B, speaker_dim]`, or None.
        """
        if self.speaker_embedding is None:
            if speaker is not None:
                raise ValueError("this model has no speaker table; pass speaker=None")
            return None
        if speaker is None:
            raise ValueError(f"this model is conditioned on a speaker: pass indices in [0, {self.n_speakers})")
        if speaker.min() < 0 or speaker.max() >= self.n_speakers:
            raise ValueError(f"speaker index out of range [0, {self.n_speakers})")
        return self.speaker_embedding(speaker)

    @torch.no_grad()
    def encode(self, wav: Tensor, chunk_frames: Optional[int] = None) -> Tensor:
        """Encode waveforms into discrete codes (the quantizer in eval mode: no codebook updates).

        Args:
            wav: float32 `[B, 1, T]` at `sample_rate`, level-normalised, in [-1, 1].
            chunk_frames: encode this many frames at a time (bounded memory for long inputs, the same
                codes as a whole pass); None encodes in one pass.

        Returns:
            int64 codes `[B, F]`, F = ceil(T / hop_length), in [0, codebook_size).
        """
        was_training = self.quantizer.training
        self.quantizer.eval()
        try:
            if chunk_frames is None or self.num_frames(wav.shape[-1]) <= chunk_frames:
                return self.quantizer(self.encoder(wav)).codes
            return self.quantizer(self.encoder.forward_chunked(wav, chunk_frames)).codes
        finally:
            self.quantizer.train(was_training)

    @torch.no_grad()
    def decode(self, codes: Tensor, speaker: Optional[Tensor] = None, n_samples: Optional[int] = None,
               temperature: float = 1.0, generator: Optional[torch.Generator] = None,
               progress: Optional[Callable[[int], None]] = None) -> Tensor:
        """Generate waveforms from codes with the autoregressive decoder.

        Args:
            codes: int64 `[B, F]` in [0, codebook_size).
            speaker: int64 `[B]` speaker indices (None for a model without a speaker table).
            n_samples: samples T to generate, at most F * hop_length (default: F * hop_length).
            temperature: sampling temperature (0: argmax).
            generator: random generator for reproducible sampling.
            progress: called with the number of samples generated since the last call.

        Returns:
            float32 `[B, 1, T]` in [-1, 1] at `sample_rate`.
        """
        if codes.min() < 0 or codes.max() >= self.quantizer.codebook_size:
            raise ValueError(f"codes must lie in [0, {self.quantizer.codebook_size})")
        max_samples = codes.shape[1] * self.hop_length
        n_samples = max_samples if n_samples is None else n_samples
        if not 0 < n_samples <= max_samples:
            raise ValueError(f"n_samples must be in (0, {max_samples}] for {codes.shape[1]} frames")
        classes = self.decoder.generate(n_samples, local=self.quantizer.lookup(codes),
                                        speaker=self.speaker_vectors(speaker), temperature=temperature,
                                        first_input=mu_law_silence(self.classes), generator=generator,
                                        progress=progress)
        return mu_law_decode(classes, self.classes).unsqueeze(1)

    def forward(self, wav: Tensor, speaker: Optional[Tensor] = None) -> VQVAEOutput:
        """Training pass: encode, quantize, and score every sample under teacher forcing.

        Args:
            wav: float32 `[B, 1, T]` at `sample_rate`, level-normalised, in [-1, 1].
            speaker: int64 `[B]` speaker indices, or None for a model without a speaker table.

        Returns:
            VQVAEOutput with the loss to minimise and the codebook statistics.
        """
        vq = self.quantizer(self.encoder(wav))
        targets = mu_law_encode(wav[:, 0], self.classes)  # (B, T)
        # The decoder sees the previous sample: shift right, starting from silence.
        inputs = F.pad(targets[:, :-1], (1, 0), value=mu_law_silence(self.classes))
        logits = self.decoder(inputs, local=vq.z_q, speaker=self.speaker_vectors(speaker))
        nll = F.cross_entropy(logits.float(), targets)
        return VQVAEOutput(loss=nll + vq.loss, nll=nll, vq_loss=vq.loss, codebook_loss=vq.codebook_loss,
                           commitment_loss=vq.commitment_loss, perplexity=vq.perplexity,
                           used_codes=vq.used_codes, restarts=vq.restarts, codes=vq.codes)
