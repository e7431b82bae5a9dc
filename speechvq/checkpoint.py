"""One checkpoint format for training and inference: weights, config, speakers, optimiser state, step.

A checkpoint is a `torch.save`d dict of plain types and tensors only:

    {"format": "speechvq-checkpoint", "format_version": 1, "speechvq_version": "0.1.0",
     "config": {...nested plain dict...}, "speakers": ["p225", ...], "step": 1200,
     "model": state_dict, "optimizer": state_dict | None, "scheduler": state_dict | None, "extra": {...}}

It is read with `torch.load(..., weights_only=True)`, which refuses to unpickle arbitrary objects, so a
checkpoint from an untrusted source cannot run code. Writes go to a temporary file that is renamed into
place, so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from .atomic import atomic_path
from .config import Config
from .errors import ConfigError, SpeechVQError
from .models.vqvae import SpeechVQ
from .version import __version__

CHECKPOINT_FORMAT = "speechvq-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class Checkpoint:
    """The contents of a checkpoint file.

    Attributes:
        config: the resolved Config the model was built with.
        speakers: speaker names, one per row of the model's speaker table.
        model_state: the model's state_dict (CPU tensors).
        step: training steps taken.
        optimizer_state, scheduler_state: state_dicts, or None (e.g. an exported inference model).
        extra: more plain data a training run needs to resume (RNG states, data order, best score).
        speechvq_version: the version that wrote the file.
        code_statistics: code counts measured on training data, for entropy coding; None until measured.
    """

    config: Config
    speakers: list[str]
    model_state: dict[str, torch.Tensor]
    step: int = 0
    optimizer_state: Optional[dict[str, Any]] = None
    scheduler_state: Optional[dict[str, Any]] = None
    extra: dict[str, Any] = field(default_factory=dict)
    speechvq_version: str = __version__
    code_statistics: Optional[dict[str, Any]] = None  # counts for entropy coding (speechvq.entropy), if measured

    def build_model(self, device: torch.device | str = "cpu") -> SpeechVQ:
        """Instantiate the model and load its weights, in eval mode."""
        model = SpeechVQ(self.config.model, speakers=self.speakers)
        try:
            model.load_state_dict(self.model_state)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise SpeechVQError(f"checkpoint weights do not match its own config: {first}") from None
        return model.to(device).eval()


def save_checkpoint(path: str | os.PathLike, model: SpeechVQ, config: Config, step: int = 0,
                    optimizer: Optional[torch.optim.Optimizer] = None, scheduler: Any = None,
                    extra: Optional[dict[str, Any]] = None,
                    code_statistics: Optional[dict[str, Any]] = None) -> None:
    """Write a checkpoint atomically.

    Args:
        path: output file (conventionally `*.pt`).
        model: the model; its speaker names are saved with it.
        config: the full resolved Config (its model section must be the model's).
        step: training steps taken.
        optimizer, scheduler: saved by their state_dict when given.
        extra: plain data (dicts, lists, numbers, strings, tensors) for resuming.
        code_statistics: `CodeStatistics.to_state()` as tensors, when the model's codes are those they
            were measured on (e.g. carried from `--init` while the encoder is frozen); None: not measured.
    """
    if config.model != model.config:
        raise ValueError("config.model differs from the config the model was built with")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "speechvq_version": __version__,
        "config": config.to_dict(),
        "speakers": list(model.speakers),
        "step": int(step),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "extra": dict(extra or {}),
        "code_statistics": code_statistics,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: torch.device | str = "cpu") -> Checkpoint:
    """Read a checkpoint without unpickling arbitrary objects.

    Raises:
        SpeechVQError: missing, unreadable or corrupt file; not a speechvq checkpoint; a newer format;
            an invalid stored config.
    """
    path = Path(path)
    if not path.is_file():
        raise SpeechVQError(f"no such checkpoint: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a damaged file; all mean the same to a user
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpeechVQError(f"cannot read checkpoint {path}: {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise SpeechVQError(f"{path} is not a speechvq checkpoint")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise SpeechVQError(f"{path} has checkpoint format {version}; this speechvq ({__version__}) "
                            f"reads up to {CHECKPOINT_VERSION}")
    try:
        config = Config.from_dict(payload["config"])
    except ConfigError as err:
        raise SpeechVQError(f"checkpoint {path} holds an invalid config: {err}") from None
    return Checkpoint(config=config, speakers=list(payload["speakers"]), model_state=payload["model"],
                      step=int(payload["step"]), optimizer_state=payload.get("optimizer"),
                      scheduler_state=payload.get("scheduler"), extra=dict(payload.get("extra") or {}),
                      speechvq_version=str(payload.get("speechvq_version", "unknown")),
                      code_statistics=payload.get("code_statistics"))


def attach_code_statistics(path: str | os.PathLike, statistics: dict[str, Any]) -> None:
    """Store code statistics in an existing checkpoint (rewritten atomically; everything else is kept)."""
    load_checkpoint(path)  # the same checks as any load
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload["code_statistics"] = statistics
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def export_checkpoint(source: str | os.PathLike, target: str | os.PathLike) -> Checkpoint:
    """Write an inference copy of a checkpoint: weights, config, speakers, step and code statistics only.

    Drops the optimiser and scheduler state and the resume data (RNG states, data order), which a trained
    model needs no more (an Adam state is twice the size of the weights). The best validation score and
    the step stay, for the record.

    Returns:
        The exported checkpoint as read back from `target`.
    """
    checkpoint = load_checkpoint(source)
    run = checkpoint.extra.get("run", {})
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "speechvq_version": checkpoint.speechvq_version,
        "config": checkpoint.config.to_dict(),
        "speakers": list(checkpoint.speakers),
        "step": checkpoint.step,
        "model": checkpoint.model_state,
        "optimizer": None,
        "scheduler": None,
        # the record of the run: its score, the samples it saw and the runs it continued (model card history)
        "extra": {key: run[key] for key in ("best_valid_nll", "samples_seen", "history") if key in run},
        "code_statistics": checkpoint.code_statistics,
    }
    with atomic_path(target) as tmp:
        torch.save(payload, tmp)
    return load_checkpoint(target)


@dataclass
class InitReport:
    """What `init_from_checkpoint` carried over.

    Attributes:
        source_step: training steps of the source checkpoint.
        copied: state_dict keys copied whole.
        rows: speaker rows (table or named voices) carried over by name.
        kept: keys the model keeps as built (absent from the source, or of another shape).
        history: the source's own history plus itself, for the new run's record.
        untrained: copied keys whose source values are all zero: a layer added at zero that has not trained
            yet (e.g. the pitch vectors `tools/add_pitch_stream.py` gives a trained model), new in all but name.
        code_statistics: the source's code statistics when its codes and pitch symbols are this model's
            (`_same_codes`), else None. They stay valid only while the encoder side does not train
            (`train.freeze_encoder`); a run that trains it must measure its own.
        dropped: the source's trained weights this model has no place for (e.g. the pitch-lag tables of a
            source with `model.decoder.pitch_lag_taps`, given to a config without them): the run starts
            from another function than the source's, so the trainer names them.
    """

    source_step: int
    copied: list[str]
    rows: int
    kept: list[str]
    history: list[dict]
    untrained: list[str] = field(default_factory=list)
    code_statistics: Optional[dict[str, Any]] = None
    dropped: list[str] = field(default_factory=list)


def _same_codes(source: Checkpoint, model: SpeechVQ, copied: list[str]) -> bool:
    """Whether `model` (just initialised from `source`) turns any waveform into the source's codes and
    pitch symbols: the same code-side config (the pitch section includes whether there is a pitch stream)
    and every encoder-side tensor copied from the source."""
    def code_side(cfg):
        return cfg.sample_rate, cfg.level_dbfs, cfg.encoder, cfg.quantizer.codebook_size, cfg.pitch

    if code_side(source.config.model) != code_side(model.config):
        return False
    done = set(copied)
    return all(key in done for key in model.encoder_side_keys())


# Quantizer state that only training uses: it does not change what a code decodes to.
_TRAINING_ONLY = ("quantizer.ema_cluster_size", "quantizer.ema_embed_sum", "quantizer.steps_unused",
                  "quantizer.total_restarts", "quantizer.initialized", "voice_updates", "voice_pitch_updates")


def weights_fingerprint(state: dict[str, torch.Tensor], speakers: list[str]) -> str:
    """A hex digest (16 characters) of a model's inference weights (`state`, its state_dict, any dtype and
    device, hashed as float32) and speaker names: the fingerprint code files carry (`speechvq.codec`), and
    the name a continued run's history gives its start model."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        if name in _TRAINING_ONLY:
            continue
        value = tensor.detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}:{tuple(value.shape)}".encode())
        digest.update(value.numpy().tobytes())
    digest.update("\0".join(speakers).encode())
    return digest.hexdigest()[:16]


_SPEAKER_ROW_KEYS = ("speaker_embedding.weight", "voice_vectors", "voice_updates", "voice_pitch",
                     "voice_pitch_updates")


def init_from_checkpoint(model: SpeechVQ, path: str | os.PathLike) -> InitReport:
    """Start `model` from the weights of a checkpoint or exported model, where shapes allow.

    Tensors of the same name and shape are copied; speaker rows are matched by speaker name (a new speaker
    keeps its fresh row); anything else keeps the value the model was built with. A structural option that
    adds a layer must therefore build it so that it changes nothing at first (e.g. zero weights). Switching
    the codebook to EMA updates re-seeds the EMA statistics from the copied codebook, so that the first
    update does not pull it back to stale sums.

    Raises:
        SpeechVQError: see `load_checkpoint`; also a source with a different code rate or codebook size
            (its codes would mean nothing to this model).
    """
    source = load_checkpoint(path)
    mine, theirs = source.config.model, model.config
    if (mine.hop_length, mine.quantizer.codebook_size, mine.sample_rate) != \
            (theirs.hop_length, theirs.quantizer.codebook_size, theirs.sample_rate):
        raise SpeechVQError(f"--init {path}: its codes ({mine.sample_rate} Hz, hop {mine.hop_length}, "
                            f"K = {mine.quantizer.codebook_size}) do not match this config's")
    state = model.state_dict()
    copied, kept, untrained = [], [], []
    for key, value in state.items():
        other = source.model_state.get(key)
        if key in _SPEAKER_ROW_KEYS:
            continue
        if other is not None and other.shape == value.shape:
            state[key] = other.to(value.dtype)
            copied.append(key)
            if other.numel() and other.is_floating_point() and not bool(other.any()):
                untrained.append(key)
        else:
            kept.append(key)
    rows = 0
    by_name = {name: row for row, name in enumerate(source.speakers)}
    for key in _SPEAKER_ROW_KEYS:
        if key not in state:
            continue
        other = source.model_state.get(key)
        if other is None or other.shape[1:] != state[key].shape[1:]:
            kept.append(key)
            continue
        for row, name in enumerate(model.speakers):
            if name in by_name:
                state[key][row] = other[by_name[name]].to(state[key].dtype)
                rows += key in ("speaker_embedding.weight", "voice_vectors")  # one count per voice
        copied.append(key)
    if theirs.quantizer.ema and not mine.quantizer.ema:
        state["quantizer.ema_cluster_size"] = torch.ones_like(state["quantizer.ema_cluster_size"])
        state["quantizer.ema_embed_sum"] = state["quantizer.codebook"].clone()
    model.load_state_dict(state)
    run = source.extra.get("run", {})
    record = {"step": source.step, "samples_seen": run.get("samples_seen", source.extra.get("samples_seen")),
              "source": Path(path).name,  # a file name may be a scratch copy: the fingerprint names the model
              "fingerprint": weights_fingerprint(source.model_state, source.speakers)}
    history = list(run.get("history", source.extra.get("history", []))) + [record]
    statistics = source.code_statistics if _same_codes(source, model, copied) else None
    dropped = [key for key, value in source.model_state.items()
               if key not in state and value.is_floating_point() and bool(value.any())]
    return InitReport(source.step, copied, rows, kept, history, untrained, statistics, dropped)


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> SpeechVQ:
    """Load a model for inference (eval mode) from a checkpoint file.

    Raises:
        SpeechVQError: see `load_checkpoint`; also weights that do not fit the stored config.
    """
    return load_checkpoint(path).build_model(device)

