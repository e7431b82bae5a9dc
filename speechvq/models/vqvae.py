"""SpeechVQ: encoder + vector quantizer + speaker vector + WaveNet decoder, assembled.

    wav [B, 1, T] --Encoder--> z_e [B, D, F] --VectorQuantizer--> codes [B, F], z_q [B, D, F]
    z_q (+ speaker vector) --WaveNet--> logits over mu-law classes of every sample [B, 256, T]

With a pitch stream (`model.pitch.bits` > 0), the encoder side also tracks the log-F0 and voicing of every
`frame_codes` frames (`speechvq.pitch`, no learned weights), and the decoder's local conditioning is the code
vectors plus a learned vector per pitch symbol (zero at first, so a model continued from one without a pitch
stream starts out unchanged).

The speaker vector (`model.speaker_mode`) is a learned row of a table of the training speakers ("table"),
or computed from the utterance itself ("utterance", `speaker.UtteranceSpeakerEncoder`: any speaker), or
absent ("none"). An utterance model also keeps a named voice per training speaker: the running mean of that
speaker's vectors during training (`voice_vectors`), so that `--speaker NAME` works in both modes.

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

from ..audio import de_emphasis, mu_law_decode, mu_law_encode, mu_law_silence, pre_emphasis
from ..config import ModelConfig
from ..pitch import encode_pitch, symbol_f0_hz
from .encoder import Encoder
from .quantizer import VectorQuantizer, index_counts
from .speaker import UtteranceSpeakerEncoder
from .wavenet import WaveNet

VOICE_DECAY = 0.99  # running mean of each training speaker's vectors: the last ~100 crops of that speaker


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
    restarts: Tensor
    codes: Tensor

    @property
    def bits_per_sample(self) -> float:
        """The NLL in bits per sample (8 for a uniform guess over 256 classes)."""
        return float(self.nll) / math.log(2.0)


class SpeechVQ(nn.Module):
    """The VQ-VAE speech model.

    Args:
        config: the model section of a Config.
        speakers: names of the training speakers (empty: none known). In table mode, one row of the speaker
            table each (no rows: no speaker conditioning); in utterance mode, one named voice each. Saved with
            the weights, so a checkpoint knows who its rows are.
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
        mode = config.speaker_mode if config.conditions_on_speaker else "none"
        if mode == "table" and n_speakers == 0:
            mode = "none"  # no rows to condition on
        self.speaker_mode = mode
        self.speaker_embedding = nn.Embedding(n_speakers, config.speaker_dim) if mode == "table" else None
        self.speaker_encoder = UtteranceSpeakerEncoder(config) if mode == "utterance" else None
        if mode == "utterance":
            self.register_buffer("voice_vectors", torch.zeros(n_speakers, config.speaker_dim))
            self.register_buffer("voice_updates", torch.zeros(n_speakers, dtype=torch.long))
        self.pitch_embedding = None
        if config.pitch.enabled:
            self.pitch_embedding = nn.Embedding(config.pitch.symbols, config.encoder.latent_dim)
            nn.init.zeros_(self.pitch_embedding.weight)
            if n_speakers:  # each named voice's mean log-F0 bin, for moving a source's pitch in conversion
                self.register_buffer("voice_pitch", torch.zeros(n_speakers))
                self.register_buffer("voice_pitch_updates", torch.zeros(n_speakers, dtype=torch.long))
                # voices whose mean training leaves as it is (`hold_voice_pitch`); not saved: the run decides
                self.register_buffer("voice_pitch_held", torch.zeros(n_speakers, dtype=torch.bool),
                                     persistent=False)
        self.decoder = WaveNet(config.decoder, classes=config.mu_law_classes, hop_length=config.hop_length,
                               local_channels=config.encoder.latent_dim,
                               global_channels=config.speaker_dim if mode != "none" else 0)
        self._compiled_nll: Optional[Callable] = None
        self.encoder_frozen = False

    def freeze_encoder(self) -> None:
        """Keep the encoder side as it is from now on: train the decoder side only (`train.freeze_encoder`).

        The encoder, the codebook and an utterance model's speaker encoder stop requiring gradients and stay
        in eval mode under `train()` (so the quantizer neither restarts codes nor moves an EMA codebook), and
        the encoder runs without building a graph. The codes of an input are then fixed.
        """
        self.encoder_frozen = True
        for module in self._encoder_side():
            module.requires_grad_(False)
        self.train(self.training)

    def _encoder_side(self) -> list[nn.Module]:
        return [m for m in (self.encoder, self.quantizer, self.speaker_encoder) if m is not None]

    def encoder_side_keys(self) -> list[str]:
        """The state_dict keys of the encoder side (`freeze_encoder`'s modules): what, with the code-side
        config, decides the codes of an input."""
        names = {id(module): name for name, module in self.named_children()}
        return [f"{names[id(module)]}.{key}" for module in self._encoder_side() for key in module.state_dict()]

    def train(self, mode: bool = True) -> "SpeechVQ":
        """nn.Module.train, except that a frozen encoder side (`freeze_encoder`) stays in eval mode."""
        super().train(mode)
        if self.encoder_frozen:
            for module in self._encoder_side():
                module.train(False)
        return self

    @property
    def has_speakers(self) -> bool:
        """Whether the decoder is conditioned on a speaker vector (a table row or an utterance's own)."""
        return self.speaker_mode != "none"

    @property
    def has_pitch(self) -> bool:
        """Whether the model has a pitch stream (its codes come with pitch symbols)."""
        return self.pitch_embedding is not None

    @property
    def pitch_hop(self) -> int:
        """Samples per pitch symbol: `frame_codes` x hop_length."""
        return self.config.pitch.frame_codes * self.hop_length

    def num_pitch_frames(self, n_frames: int) -> int:
        """Pitch symbols for `n_frames` code frames: ceil(n_frames / frame_codes)."""
        return -(-n_frames // self.config.pitch.frame_codes)

    @property
    def has_voices(self) -> bool:
        """Whether named voices can be chosen (`speaker_vectors` of rows): a table, or an utterance model's
        running means of its training speakers."""
        return self.speaker_mode != "none" and self.n_speakers > 0

    def num_frames(self, n_samples: int) -> int:
        """Codes for `n_samples` samples: ceil(n_samples / hop_length)."""
        return self.encoder.num_frames(n_samples)

    def speaker_index(self, name: str) -> int:
        """Row of the speaker table (or named voice) for a speaker name.

        Raises:
            KeyError: the model has no such speaker (the message lists a few it has).
        """
        try:
            return self.speakers.index(name)
        except ValueError:
            known = ", ".join(self.speakers[:8]) + (", ..." if len(self.speakers) > 8 else "")
            raise KeyError(f"unknown speaker {name!r} (this model knows: {known or 'none'})") from None

    def speaker_vectors(self, speaker: Optional[Tensor]) -> Optional[Tensor]:
        """The vectors of named voices: table rows, or an utterance model's running means.

        Args:
            speaker: int64 `[B]` indices into the speakers, or None for a model without speaker conditioning.

        Returns:
            float `[B, speaker_dim]`, or None.
        """
        if not self.has_speakers:
            if speaker is not None:
                raise ValueError("this model has no speaker conditioning; pass speaker=None")
            return None
        if speaker is None:
            raise ValueError(f"this model is conditioned on a speaker: pass indices in [0, {self.n_speakers})")
        # Checked where indices come from a caller; in training they come from the speaker table, and the
        # check would make every CUDA step wait for the device (reading min and max back).
        if not self.training and speaker.numel() and (speaker.min() < 0 or speaker.max() >= self.n_speakers):
            raise ValueError(f"speaker index out of range [0, {self.n_speakers})")
        if self.speaker_embedding is not None:
            return self.speaker_embedding(speaker)
        return self.voice_vectors[speaker]

    def utterance_speaker(self, wav: Tensor, z_e: Tensor, z_q: Tensor) -> Tensor:
        """An utterance model's speaker vector of each waveform, on the quantization grid (straight-through).

        Args:
            wav: float32 `[B, 1, T]`; z_e, z_q: float `[B, D, F]` of the same waveforms.

        Returns:
            float `[B, speaker_dim]` in [-1, 1].
        """
        if self.speaker_encoder is None:
            raise ValueError("only an utterance model computes speaker vectors from the audio")
        return self.speaker_encoder.straight_through(self.speaker_encoder(wav, z_e, z_q))

    def speaker_from_levels(self, levels: Tensor) -> Tensor:
        """The speaker vector `[B, speaker_dim]` of quantized levels int64 `[B, speaker_dim]` (from a code file)."""
        if self.speaker_encoder is None:
            raise ValueError("only an utterance model reads quantized speaker vectors")
        if levels.numel() and (levels.min() < 0 or levels.max() >= self.speaker_encoder.levels):
            raise ValueError(f"speaker levels must lie in [0, {self.speaker_encoder.levels})")
        return self.speaker_encoder.dequantize(levels).to(next(self.parameters()).dtype)

    @torch.no_grad()
    def encode_pitch(self, wav: Tensor) -> Optional[Tensor]:
        """The pitch symbols of waveforms (`speechvq.pitch`), or None for a model without a pitch stream.

        Args:
            wav: float `[B, 1, T]`, level-normalised as for `encode`.

        Returns:
            int64 `[B, P]`, P = ceil(T / pitch_hop), in [0, 2**bits): 0 unvoiced, else a log-F0 bin.
        """
        if not self.has_pitch:
            return None
        return encode_pitch(wav[:, 0], self.sample_rate, self.pitch_hop, self.config.pitch)

    def local_conditioning(self, codes: Tensor, pitch: Optional[Tensor] = None) -> Tensor:
        """What the decoder is conditioned on per frame: the code vectors, plus the pitch symbols' vectors.

        Args:
            codes: int64 `[B, F]` in [0, codebook_size).
            pitch: int64 `[B, ceil(F / frame_codes)]` pitch symbols; required exactly when `has_pitch`.

        Returns:
            float `[B, latent_dim, F]`.
        """
        return self.add_pitch(self.quantizer.lookup(codes), pitch)

    def add_pitch(self, local: Tensor, pitch: Optional[Tensor], check_range: bool = True) -> Tensor:
        """Code vectors float `[B, D, F]` plus the vectors of their pitch symbols (int64 `[B, P]`), each
        repeated for its `frame_codes` frames; `local` itself for a model without a pitch stream.
        `check_range=False` skips the range check, which waits for the device (training passes its own
        tracker's symbols).

        Raises:
            ValueError: pitch given to a model without a pitch stream or missing from one with it, a wrong
                number of symbols, or symbols out of range.
        """
        if self.pitch_embedding is None:
            if pitch is not None:
                raise ValueError("this model has no pitch stream; pass pitch=None")
            return local
        if pitch is None:
            raise ValueError("this model has a pitch stream: pass the pitch symbols with the codes")
        frames = local.shape[-1]
        if pitch.shape != (local.shape[0], self.num_pitch_frames(frames)):
            raise ValueError(f"{frames} frames take {self.num_pitch_frames(frames)} pitch symbols each, "
                             f"got shape {tuple(pitch.shape)}")
        if check_range and pitch.numel() and (pitch.min() < 0 or pitch.max() >= self.config.pitch.symbols):
            raise ValueError(f"pitch symbols must lie in [0, {self.config.pitch.symbols})")
        vectors = self.pitch_embedding(pitch).transpose(1, 2).to(local.dtype)  # (B, D, P)
        return local + vectors.repeat_interleave(self.config.pitch.frame_codes, dim=-1)[..., :frames]

    @property
    def lag_reach(self) -> int:
        """Samples the pitch-lag taps read back beyond the decoder's receptive field: the longest period of
        the pitch stream plus n // 2 (0 without the pitch-lag input)."""
        if not self.decoder.lag_taps:
            return 0
        return round(self.sample_rate / self.config.pitch.fmin_hz) + self.decoder.lag_taps // 2

    def lag_periods(self, pitch: Optional[Tensor], n_frames: int) -> Optional[Tensor]:
        """The pitch-lag input's period of each code frame: round(sample_rate / F0) of its pitch symbol's bin
        centre, 0 where unvoiced; None for a decoder without the pitch-lag input.

        Args:
            pitch: int64 `[B, P]` pitch symbols (`encode_pitch`), P >= ceil(n_frames / frame_codes).
            n_frames: code frames F.

        Returns:
            int64 `[B, F]` periods in samples, or None.
        """
        if not self.decoder.lag_taps:
            return None
        f0 = symbol_f0_hz(pitch, self.config.pitch)
        period = torch.where(f0 > 0, torch.round(self.sample_rate / f0.clamp(min=1.0)), torch.zeros_like(f0)).long()
        return period.repeat_interleave(self.config.pitch.frame_codes, dim=-1)[..., :n_frames]

    def voice_pitch_bin(self, row: int) -> Optional[float]:
        """A named voice's mean log-F0 bin (mean over the batches it trained in), or None when the model
        has no pitch stream or has not seen that voice speak voiced."""
        if not self.has_pitch or not self.n_speakers or int(self.voice_pitch_updates[row]) == 0:
            return None
        return float(self.voice_pitch[row])

    def hold_voice_pitch(self, names: list[str]) -> None:
        """Keep these named voices' mean pitch bins as they are while training (the others still update).

        For a continuation whose means were measured on whole utterances (`tools/add_pitch_stream.py`,
        frame-weighted, what conversion compares a source with): training folds in per-batch means of short
        crops instead, and a 110.8 M-sample CPU continuation (2026-12-02) moved them by 0.42 bins on average,
        up to 1.47, towards that other estimate.
        """
        if not self.has_pitch or not self.n_speakers:
            return
        held = set(names)
        self.voice_pitch_held.copy_(torch.tensor([name in held for name in self.speakers], dtype=torch.bool))

    @torch.no_grad()
    def _update_voice_pitch(self, rows: Tensor, pitch: Tensor) -> None:
        """Fold a batch's mean voiced bin per speaker into each voice's mean over every batch it has been in
        (tensor operations only).

        A cumulative mean, not the voice vectors' running one: a speaker's mean pitch does not change during
        training, and a running mean over the last ~100 short crops wandered by up to 2.2 bins (a semitone)
        from the whole-corpus means that `tools/add_pitch_stream.py` measured, in a 52 M-sample CPU
        continuation (2026-12-02). `voice_pitch_updates` counts the batches (or measured utterances) folded in.
        """
        voiced = (pitch > 0).float()
        counts = torch.zeros_like(self.voice_pitch).index_add_(0, rows, voiced.sum(1))
        sums = torch.zeros_like(self.voice_pitch).index_add_(0, rows, (pitch.float() * voiced).sum(1))
        present = (counts > 0) & ~self.voice_pitch_held
        batch_mean = sums / counts.clamp(min=1)
        weight = 1.0 / (self.voice_pitch_updates + 1).to(self.voice_pitch.dtype)
        blended = self.voice_pitch + weight * (batch_mean - self.voice_pitch)
        self.voice_pitch.copy_(torch.where(present, blended, self.voice_pitch))
        self.voice_pitch_updates.add_(present.long())

    @torch.no_grad()
    def _update_voices(self, rows: Tensor, vectors: Tensor) -> None:
        """Fold a batch's vectors into the running mean of each row's speaker (the first batch sets it);
        tensor operations only, so that no training step waits for the device."""
        counts = index_counts(rows, self.n_speakers)
        sums = torch.zeros_like(self.voice_vectors).index_add_(0, rows, vectors.float())
        present = (counts > 0).unsqueeze(1)
        batch_mean = sums / counts.clamp(min=1).unsqueeze(1)
        first = present & (self.voice_updates == 0).unsqueeze(1)
        blended = VOICE_DECAY * self.voice_vectors + (1 - VOICE_DECAY) * batch_mean
        self.voice_vectors.copy_(torch.where(first, batch_mean, torch.where(present, blended, self.voice_vectors)))
        self.voice_updates.add_(counts.clamp(max=1).long())

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
        return self.encode_with_speaker(wav, chunk_frames)[0]

    @torch.no_grad()
    def encode_with_speaker(self, wav: Tensor, chunk_frames: Optional[int] = None) -> tuple[Tensor, Optional[Tensor]]:
        """Codes and, for an utterance model, the quantized speaker vector of each waveform.

        Args: as for `encode`.

        Returns:
            (int64 codes `[B, F]`, int64 speaker levels `[B, speaker_dim]` in [0, 2**speaker_bits), or None
            for a model that does not take its speaker from the utterance).
        """
        was_training = self.quantizer.training
        self.quantizer.eval()
        try:
            if chunk_frames is None or self.num_frames(wav.shape[-1]) <= chunk_frames:
                z_e = self.encoder(wav)
            else:
                z_e = self.encoder.forward_chunked(wav, chunk_frames)
            vq = self.quantizer(z_e)
        finally:
            self.quantizer.train(was_training)
        if self.speaker_encoder is None:
            return vq.codes, None
        return vq.codes, self.speaker_encoder.quantize(self.speaker_encoder(wav, z_e, vq.z_q))

    @torch.no_grad()
    def decode(self, codes: Tensor, speaker: Optional[Tensor] = None, n_samples: Optional[int] = None,
               temperature: float = 1.0, generator: Optional[torch.Generator] = None,
               progress: Optional[Callable[[int], None]] = None, speaker_vector: Optional[Tensor] = None,
               pitch: Optional[Tensor] = None) -> Tensor:
        """Generate waveforms from codes with the autoregressive decoder.

        Args:
            codes: int64 `[B, F]` in [0, codebook_size).
            pitch: int64 `[B, ceil(F / frame_codes)]` pitch symbols (`encode_pitch`), for a model with a
                pitch stream; None otherwise.
            speaker: int64 `[B]` indices of named voices (None for a model without speaker conditioning, or
                when `speaker_vector` is given).
            speaker_vector: float `[B, speaker_dim]`, the speaker vectors themselves (e.g. an utterance's own).
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
        vector = speaker_vector if speaker_vector is not None else self.speaker_vectors(speaker)
        classes = self.decoder.generate(n_samples, local=self.local_conditioning(codes, pitch),
                                        speaker=vector, temperature=temperature,
                                        first_input=mu_law_silence(self.classes), generator=generator,
                                        progress=progress, period=self.lag_periods(pitch, codes.shape[1]))
        return self.waveform_from_classes(mu_law_decode(classes, self.classes)).unsqueeze(1)

    def mu_law_targets(self, wav: Tensor) -> Tensor:
        """The decoder's targets for a waveform: mu-law classes of it, pre-emphasised when configured.

        Args:
            wav: float `[..., T]`, level-normalised, in [-1, 1].

        Returns:
            int64 `[..., T]` in [0, classes).
        """
        return mu_law_encode(pre_emphasis(wav, self.config.pre_emphasis), self.classes)

    def waveform_from_classes(self, decoded: Tensor) -> Tensor:
        """Undo the target transform on the decoder's mu-law-decoded output: de-emphasis when configured.

        Args:
            decoded: float `[..., T]`, `mu_law_decode` of generated classes (whole utterances: the filter runs
                from each one's start).

        Returns:
            float `[..., T]` in [-1, 1] (de-emphasis has a gain of 1 / (1 - c) at 0 Hz: an untrained decoder's
            drift is clipped rather than returned out of range).
        """
        if self.config.pre_emphasis == 0.0:
            return decoded
        return de_emphasis(decoded, self.config.pre_emphasis).clamp(-1.0, 1.0)

    def forward(self, wav: Tensor, speaker: Optional[Tensor] = None) -> VQVAEOutput:
        """Training pass: encode, quantize, and score every sample under teacher forcing.

        Args:
            wav: float32 `[B, 1, T]` at `sample_rate`, level-normalised, in [-1, 1].
            speaker: int64 `[B]` speaker indices: the table rows (table mode; required), the voices whose
                running means the batch updates (utterance mode, in training; optional), or None.

        Returns:
            VQVAEOutput with the loss to minimise and the codebook statistics.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_frozen):
            z_e = self.encoder(wav)
        if self._compiled_nll is not None and self.training:
            # k-means runs outside the compiled region, once (see VectorQuantizer.initialize_from)
            self.quantizer.initialize_from(z_e)
        vq = self.quantizer(z_e)
        if self.speaker_mode == "utterance":
            vector = self.utterance_speaker(wav, z_e, vq.z_q)
            if self.training and speaker is not None and self.n_speakers:
                self._update_voices(speaker, vector.detach())
        else:
            vector = self.speaker_vectors(speaker)
        local = jitter_frames(vq.z_q, self.config.code_jitter) if self.training else vq.z_q
        pitch = self.encode_pitch(wav)
        if pitch is not None and self.training and speaker is not None and self.n_speakers:
            self._update_voice_pitch(speaker, pitch)
        local = self.add_pitch(local, pitch, check_range=False)
        period = self.lag_periods(pitch, local.shape[-1])
        nll_fn = self._compiled_nll if (self._compiled_nll is not None and self.training) else self.teacher_forced_nll
        nll = nll_fn(wav, local, vector, period)
        return VQVAEOutput(loss=nll + vq.loss, nll=nll, vq_loss=vq.loss, codebook_loss=vq.codebook_loss,
                           commitment_loss=vq.commitment_loss, perplexity=vq.perplexity,
                           used_codes=vq.used_codes, restarts=vq.restarts, codes=vq.codes)

    def teacher_forced_nll(self, wav: Tensor, local: Tensor, vector: Optional[Tensor],
                           period: Optional[Tensor] = None) -> Tensor:
        """Mean NLL (nats per sample) of the mu-law targets of `wav` given the previous samples.

        Args:
            wav: float32 `[B, 1, T]`; local: float `[B, D, F]` code vectors; vector: float `[B, speaker_dim]`
                or None; period: int64 `[B, F]` (`lag_periods`) for a decoder with the pitch-lag input.

        Returns:
            a 0-dim float32 tensor.
        """
        targets = self.mu_law_targets(wav[:, 0])  # (B, T)
        # The decoder sees the previous sample: shift right, starting from silence.
        inputs = F.pad(targets[:, :-1], (1, 0), value=mu_law_silence(self.classes))
        logits = self.decoder(inputs, local=local, speaker=vector, period=period)
        return F.cross_entropy(logits.float(), targets)

    def compile_training(self, enabled: bool = True) -> None:
        """Run `teacher_forced_nll` through torch.compile in training passes (evaluation stays eager).

        The decoder's gates, residual and skip sums and the cross-entropy fuse into a few kernels; with the
        fixed crop shape of training it compiles once (about a minute on a GPU). Weights and state_dict keys
        are unchanged, so checkpoints do not depend on it.
        """
        self._compiled_nll = torch.compile(self.teacher_forced_nll, dynamic=False) if enabled else None


def jitter_frames(local: Tensor, probability: float) -> Tensor:
    """Time jitter of code vectors (Chorowski et al. 2019): each frame takes its left or right neighbour's
    vector with probability `probability` (half each way; the edges clamp to themselves).

    Args:
        local: float `[B, D, F]`.
        probability: in [0, 1]; 0 returns `local` unchanged.

    Returns:
        float `[B, D, F]`; gradients flow to the vectors that were used.
    """
    if probability <= 0.0:
        return local
    batch, dim, frames = local.shape
    draw = torch.rand(batch, frames, device=local.device)
    shift = (draw < probability / 2).long() * -1 + ((draw >= probability / 2) & (draw < probability)).long()
    index = (torch.arange(frames, device=local.device) + shift).clamp(0, frames - 1)
    return local.gather(2, index.unsqueeze(1).expand(batch, dim, frames))
