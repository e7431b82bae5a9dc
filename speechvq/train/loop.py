"""The training loop, written out: build, resume, then `for batch in loader` with the whole step in view.

    exp_dir/config.yaml     the resolved config (written once; a resume must match it)
    exp_dir/last.pt         written every `checkpoint_every` steps and on exit (atomic)
    exp_dir/best.pt         the checkpoint with the best validation NLL
    exp_dir/metrics.jsonl   interval means and validation scores, one JSON object per line
    exp_dir/tensorboard/    scalars, audio, spectrograms

Running the same command again resumes from last.pt: model, optimizer, schedule, step, RNG states and the
position in the data order, so the run continues as if it had not stopped. Ctrl-C finishes the current
step, saves last.pt and exits; kill -9 loses at most `checkpoint_every` steps.
"""

from __future__ import annotations

import contextlib
import math
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..atomic import write_bytes_atomic
from ..audio import mu_law_decode, mu_law_encode
from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import Config
from ..data import (AudioCache, Batch, ResumableBatchSampler, SegmentDataset, collate_segments, read_manifest,
                    read_speakers)
from ..errors import SpeechVQError
from ..models import SpeechVQ
from ..models.quantizer import code_perplexity
from .distributed import DistributedContext, any_rank, barrier, setup_distributed, teardown_distributed
from .logger import TrainingLogger
from .state import RunState, capture_rng, lr_factor, restore_rng, seed_everything

# Keys a resumed run may change: they alter when things are logged or saved, not what is computed.
RESUMABLE_CHANGES = {"train.log_every", "train.valid_every", "train.checkpoint_every", "train.max_steps",
                     "train.valid_audio_s", "data.num_workers", "data.cache_dir"}


@dataclass
class TrainResult:
    """How a `train` call ended: the step reached, the best validation NLL, and why it stopped."""

    step: int
    best_valid_nll: float
    stopped: str  # "max_steps", "stop_at_step" or "interrupted"


class _StopRequest:
    """SIGINT sets a flag the loop checks between steps; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = None

    def __enter__(self) -> "_StopRequest":
        with contextlib.suppress(ValueError):  # not the main thread: no handler, Ctrl-C behaves as usual
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train(config: Config, exp_dir: str | Path, device: str = "auto", stop_at_step: Optional[int] = None,
          show_progress: bool = True) -> TrainResult:
    """Train (or resume training) a model as `config` says, writing everything into `exp_dir`.

    Args:
        config: the resolved config; `config.data` names the manifests and speaker table.
        exp_dir: experiment folder; an existing `last.pt` there is resumed.
        device: "auto", "cpu", "cuda", "cuda:1", ...
        stop_at_step: end this invocation once this many steps are done (saving last.pt), without changing
            the schedule; a later run resumes from there.
        show_progress: draw a progress bar.

    Raises:
        SpeechVQError: missing data, a config that differs from the one the run started with, or a loss
            that became NaN or infinite (last.pt is then left as it was).
    """
    exp_dir = Path(exp_dir)
    context = setup_distributed(device)
    try:
        return _run(config, exp_dir, context, stop_at_step, show_progress)
    finally:
        teardown_distributed(context)


def _run(config: Config, exp_dir: Path, context: DistributedContext, stop_at_step: Optional[int],
         show_progress: bool) -> TrainResult:
    cfg, device = config, context.device
    seed_everything(cfg.train.seed)
    if device.type == "cuda":
        # Fixed crop shapes: let cuDNN pick its fastest convolutions; TF32 for what stays in fp32.
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    speakers = read_speakers(cfg.data.speakers)
    model = SpeechVQ(cfg.model, speakers=speakers).to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr,
                                 betas=tuple(cfg.train.adam_betas), weight_decay=cfg.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg.train))
    state = _resume_or_start(cfg, exp_dir, context, model, optimizer, scheduler)

    cache = AudioCache(cfg.data.cache_dir, cfg.model.sample_rate, cfg.model.level_dbfs)
    segment = int(round(cfg.data.segment_s * cfg.model.sample_rate))
    train_set = SegmentDataset(read_manifest(cfg.data.train_manifest), speakers, cache, segment, seed=cfg.train.seed,
                               speed_perturb=cfg.data.speed_perturb)
    valid_set = SegmentDataset(read_manifest(cfg.data.valid_manifest)[:cfg.data.valid_max_utterances], speakers,
                               cache, segment, seed=cfg.train.seed)
    sampler = ResumableBatchSampler(len(train_set), cfg.data.batch_size, cfg.train.seed, start_batch=state.batches,
                                    rank=context.rank, world_size=context.world_size)
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                        collate_fn=collate_segments, pin_memory=device.type == "cuda",
                        persistent_workers=cfg.data.num_workers > 0,
                        # its own generator: creating the iterator must not draw from the global RNG,
                        # or a resumed run's random stream would be shifted by one draw
                        generator=torch.Generator().manual_seed(cfg.train.seed))
    wrapped = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) \
        if context.world_size > 1 else model
    use_bf16 = cfg.train.precision == "bf16" and device.type == "cuda"
    logger = TrainingLogger(exp_dir, context.is_main, state.step, cfg.train.max_steps, show_progress)
    if cfg.train.precision == "bf16" and not use_bf16:
        logger.message("precision bf16 applies on CUDA only; training in fp32 on the CPU")

    saved_step, stopped = state.step, "max_steps"
    with _StopRequest() as stop:
        for batch in loader:
            if state.step >= cfg.train.max_steps:
                break
            if stop_at_step is not None and state.step >= stop_at_step:
                stopped = "stop_at_step"
                break
            state.batches += 1
            state.skipped_items += batch.skipped
            if batch.wav.shape[0] == 0:
                logger.message(f"batch {state.batches}: no readable file, skipped")
                continue
            metrics = _train_step(wrapped, model, optimizer, scheduler, batch.to(device), cfg, use_bf16, context,
                                  state, saved_step)
            state.step += 1
            logger.step(metrics, batch.wav.shape[0] * batch.wav.shape[-1] * context.world_size)
            if state.step % cfg.train.log_every == 0:
                logger.end_interval(state.step, scheduler.get_last_lr()[0], sampler.epoch_of(state.batches))
            if state.step % cfg.train.valid_every == 0:
                _validate_and_keep_best(model, valid_set, cfg, context, state, optimizer, scheduler, exp_dir, logger)
            if state.step % cfg.train.checkpoint_every == 0:
                _save(exp_dir / "last.pt", model, cfg, state, optimizer, scheduler, context)
                saved_step = state.step
            if any_rank(context, stop.requested):
                stopped = "interrupted"
                break
    if state.step != saved_step:
        if state.step % cfg.train.valid_every != 0:
            _validate_and_keep_best(model, valid_set, cfg, context, state, optimizer, scheduler, exp_dir, logger)
        _save(exp_dir / "last.pt", model, cfg, state, optimizer, scheduler, context)
    logger.message(f"{stopped} at step {state.step}; best valid NLL {state.best_valid_nll:.4f}; "
                   f"{state.skipped_items} unreadable item(s) skipped")
    logger.close()
    return TrainResult(state.step, state.best_valid_nll, stopped)


def _resume_or_start(cfg: Config, exp_dir: Path, context: DistributedContext, model: SpeechVQ,
                     optimizer: torch.optim.Optimizer, scheduler) -> RunState:
    last = exp_dir / "last.pt"
    if not last.is_file():
        if context.is_main:
            write_bytes_atomic(exp_dir / "config.yaml", cfg.to_yaml().encode("utf-8"))
        return RunState()
    checkpoint = load_checkpoint(last, map_location=context.device)
    changed = _changed_keys(checkpoint.config.to_dict(), cfg.to_dict()) - RESUMABLE_CHANGES
    if changed:
        raise SpeechVQError(f"{exp_dir} was started with a different config ({', '.join(sorted(changed))}); "
                            f"use another --exp or the original settings")
    if list(checkpoint.speakers) != list(model.speakers):
        raise SpeechVQError(f"{exp_dir} was started with another speaker table than {cfg.data.speakers}")
    model.load_state_dict(checkpoint.model_state)
    optimizer.load_state_dict(checkpoint.optimizer_state)
    scheduler.load_state_dict(checkpoint.scheduler_state)
    state = RunState.from_dict(checkpoint.extra["run"])
    restore_rng(checkpoint.extra["rng"])
    if context.is_main:
        write_bytes_atomic(exp_dir / "config.yaml", cfg.to_yaml().encode("utf-8"))
        print(f"resuming {last} at step {state.step}", flush=True)
    return state


def _changed_keys(old: dict, new: dict, prefix: str = "") -> set[str]:
    changed = set()
    for key in old.keys() | new.keys():
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed |= _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.add(f"{prefix}{key}")
    return changed


def _train_step(wrapped, model: SpeechVQ, optimizer, scheduler, batch: Batch, cfg: Config, use_bf16: bool,
                context: DistributedContext, state: RunState, saved_step: int) -> dict[str, float]:
    model.train()
    with torch.autocast(device_type=batch.wav.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        out = wrapped(batch.wav, batch.speaker if model.has_speakers else None)
    if any_rank(context, not bool(torch.isfinite(out.loss))):
        raise SpeechVQError(f"the loss became {out.loss.item()} at step {state.step + 1}; stopping. The last good "
                            f"checkpoint (step {saved_step}) is intact; try a lower train.lr or train.grad_clip")
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip or math.inf)
    optimizer.step()
    scheduler.step()
    return {"loss": out.loss.item(), "nll": out.nll.item(), "vq_loss": out.vq_loss.item(),
            "commitment_loss": out.commitment_loss.item(), "perplexity": out.perplexity.item(),
            "used_codes": float(out.used_codes), "restarts": float(out.restarts), "grad_norm": float(grad_norm)}


@torch.no_grad()
def evaluate(model: SpeechVQ, dataset: SegmentDataset, device: torch.device, batch_size: int) -> dict[str, float]:
    """Teacher-forced scores on fixed crops (epoch 0) of every item of `dataset`.

    Returns:
        nll (nats per sample), bits_per_sample, vq_loss, perplexity and used_codes over all crops together.
    """
    model.eval()
    totals = {"nll": 0.0, "vq_loss": 0.0}
    counts = torch.zeros(model.quantizer.codebook_size, device=device)
    n = 0
    for start in range(0, len(dataset), batch_size):
        batch = collate_segments([dataset[(i, 0)] for i in range(start, min(start + batch_size, len(dataset)))])
        if batch.wav.shape[0] == 0:
            continue
        batch = batch.to(device)
        out = model(batch.wav, batch.speaker if model.has_speakers else None)
        weight = batch.wav.shape[0]
        totals["nll"] += out.nll.item() * weight
        totals["vq_loss"] += out.vq_loss.item() * weight
        counts += torch.bincount(out.codes.reshape(-1), minlength=counts.numel()).float()
        n += weight
    if n == 0:
        raise SpeechVQError("no validation utterance could be read")
    perplexity = code_perplexity(counts).item()
    nll = totals["nll"] / n
    return {"nll": nll, "bits_per_sample": nll / math.log(2), "vq_loss": totals["vq_loss"] / n,
            "perplexity": perplexity, "used_codes": float((counts > 0).sum())}


def _validate_and_keep_best(model: SpeechVQ, valid_set: SegmentDataset, cfg: Config, context: DistributedContext,
                            state: RunState, optimizer, scheduler, exp_dir: Path, logger: TrainingLogger) -> None:
    if context.is_main:
        metrics = evaluate(model, valid_set, context.device, cfg.data.batch_size)
        logger.validation(state.step, metrics, cfg.model.sample_rate, _resynthesis_sample(model, valid_set, cfg))
        if metrics["nll"] < state.best_valid_nll:
            state.best_valid_nll = metrics["nll"]
            save_checkpoint(exp_dir / "best.pt", model, cfg, state.step, optimizer, scheduler,
                            extra={"run": state.to_dict(), "rng": capture_rng()})
    barrier(context)
    best = torch.tensor([state.best_valid_nll], device=context.device)
    if context.world_size > 1:  # every rank carries the same best score into its checkpoint state
        torch.distributed.broadcast(best, src=0)
    state.best_valid_nll = float(best.item())


def _resynthesis_sample(model: SpeechVQ, valid_set: SegmentDataset, cfg: Config):
    n_samples = int(cfg.train.valid_audio_s * cfg.model.sample_rate)
    item = valid_set[(0, 0)]
    if n_samples <= 0 or item is None:
        return None
    device = next(model.parameters()).device
    # Resynthesise through mu-law, as the decoder's targets are, so the pair compares like with like.
    original = mu_law_decode(mu_law_encode(item["wav"][:, :n_samples]), cfg.model.mu_law_classes)
    codes, levels = model.encode_with_speaker(original.unsqueeze(0).to(device))
    speaker = torch.tensor([item["speaker"]], device=device) if model.speaker_mode == "table" else None
    vector = model.speaker_from_levels(levels) if levels is not None else None
    generator = torch.Generator().manual_seed(cfg.train.seed)  # its own (CPU) generator: the global RNG is untouched
    resynthesis = model.decode(codes, speaker, original.shape[-1], generator=generator, speaker_vector=vector)
    return original[0], resynthesis[0, 0].cpu()


def _save(path: Path, model: SpeechVQ, cfg: Config, state: RunState, optimizer, scheduler,
          context: DistributedContext) -> None:
    if context.is_main:
        save_checkpoint(path, model, cfg, state.step, optimizer, scheduler,
                        extra={"run": state.to_dict(), "rng": capture_rng()})
    barrier(context)
