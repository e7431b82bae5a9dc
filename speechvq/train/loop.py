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

import collections
import contextlib
import fnmatch
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..atomic import write_bytes_atomic
from ..audio import mu_law_decode
from ..checkpoint import Checkpoint, init_from_checkpoint, load_checkpoint, save_checkpoint
from ..config import Config, TrainConfig
from ..data import (AudioCache, Batch, ResumableBatchSampler, SegmentDataset, collate_segments, read_manifest,
                    read_speakers)
from ..data.device import DeviceBatches, DeviceCorpus
from ..errors import SpeechVQError
from ..models import SpeechVQ
from ..models.quantizer import code_perplexity
from .distributed import DistributedContext, any_rank, barrier, setup_distributed, teardown_distributed
from .logger import TrainingLogger
from .state import RunState, ScheduleEnd, capture_rng, lr_factor, restore_rng, seed_everything

# Keys a resumed run may change: they alter when things are logged or saved, not what is computed.
RESUMABLE_CHANGES = {"train.log_every", "train.valid_every", "train.checkpoint_every", "train.max_steps",
                     "train.valid_audio_s", "data.num_workers", "data.cache_dir"}


@dataclass
class TrainResult:
    """How a `train` call ended: the step reached, the best validation NLL, and why it stopped."""

    step: int
    best_valid_nll: float
    stopped: str  # "max_steps", "stop_at_step", "time_limit" or "interrupted"


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
          show_progress: bool = True, init: Optional[str | Path] = None,
          max_minutes: Optional[float] = None) -> TrainResult:
    """Train (or resume training) a model as `config` says, writing everything into `exp_dir`.

    Args:
        config: the resolved config; `config.data` names the manifests and speaker table.
        exp_dir: experiment folder; an existing `last.pt` there is resumed.
        device: "auto", "cpu", "cuda", "cuda:1", ...
        stop_at_step: end this invocation once this many steps are done (saving last.pt), without changing
            the schedule; a later run resumes from there.
        show_progress: draw a progress bar.
        init: a checkpoint or exported model whose weights a new run starts from (where shapes allow; see
            `checkpoint.init_from_checkpoint`); ignored when resuming.
        max_minutes: wall-clock budget of this invocation, start-up (data, compilation) included: the cosine
            schedule is fitted to end when it is spent (re-estimated from the measured step rate at every
            log interval), and the run stops with its final validation and checkpoint inside it.

    Raises:
        SpeechVQError: missing data, a config that differs from the one the run started with, or a loss
            that became NaN or infinite (last.pt is then left as it was).
    """
    started = time.monotonic()
    exp_dir = Path(exp_dir)
    context = setup_distributed(device)
    deadline = started + 60.0 * max_minutes if max_minutes is not None else None
    try:
        return _run(config, exp_dir, context, stop_at_step, show_progress, init, deadline, max_minutes)
    finally:
        teardown_distributed(context)


def configure_cuda_math(precision: str) -> None:
    """Set cuDNN and cuBLAS (process-wide) as a training run of `train.precision` on CUDA uses them.

    cudnn.benchmark: crops have a fixed shape, so cuDNN times its algorithms once and keeps the fastest. TF32
    (operands rounded to a 10-bit mantissa, float32 accumulation) only under bf16, for what autocast leaves in
    float32: a float32 run computes in IEEE float32. Near a trained model's optimum TF32's rounding moves the
    gradient the same way in every batch, as bf16's does, eight times less (measured on the shipped model at
    32 x 0.5 s crops: error 4% of the gradient, cosine 0.89 between two batches' errors; bf16 35% and 0.91;
    docs/default_model/sessions/2026-12-04-cpu-4/), and every continuation that improved the shipped model
    computed in IEEE float32 (on the CPU).

    Args:
        precision: `train.precision`, "fp32" or "bf16".
    """
    torch.backends.cudnn.benchmark = True
    tf32 = precision == "bf16"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def _run(config: Config, exp_dir: Path, context: DistributedContext, stop_at_step: Optional[int],
         show_progress: bool, init: Optional[str | Path], deadline: Optional[float],
         max_minutes: Optional[float]) -> TrainResult:
    cfg, device = config, context.device
    seed_everything(cfg.train.seed)
    if device.type == "cuda":
        configure_cuda_math(cfg.train.precision)
    speakers = read_speakers(cfg.data.speakers)
    model = SpeechVQ(cfg.model, speakers=speakers).to(device)
    last = _last_checkpoint(cfg, exp_dir, context, model)
    resuming = last is not None
    if cfg.train.freeze_encoder:
        if init is None and not resuming:
            raise SpeechVQError("train.freeze_encoder keeps the encoder and codebook it starts from: give --init "
                                "a trained checkpoint or model")
        model.freeze_encoder()
    report = init_from_checkpoint(model, init) if init is not None and not resuming else None
    # A frozen encoder side keeps --init's codes, so its code statistics (entropy coding) stay true and
    # every checkpoint of the run carries them; an encoder that trains makes new codes, to be measured anew.
    if resuming:
        code_statistics = last.code_statistics
    else:
        code_statistics = report.code_statistics if report is not None and cfg.train.freeze_encoder else None
    if resuming:
        new_weights = RunState.from_dict(last.extra["run"]).new_weights
    elif report is not None and cfg.train.new_weights_lr_scale != 1.0:
        new_weights = _new_weights(model, set(report.kept) | set(report.untrained), cfg.train.new_weights_include)
    else:
        new_weights = []
    optimizer = torch.optim.Adam(_parameter_groups(model, new_weights, cfg.train), lr=cfg.train.lr,
                                 betas=tuple(cfg.train.adam_betas), weight_decay=cfg.train.weight_decay,
                                 # fused: one kernel for all parameters instead of several per tensor (CUDA only)
                                 fused=device.type == "cuda" and cfg.train.fused_optimizer)
    schedule_end = ScheduleEnd(cfg.train.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg.train, schedule_end))
    state = _resume_or_start(cfg, exp_dir, context, model, optimizer, scheduler, last)
    if state.fitted_max_steps:
        schedule_end.max_steps = state.fitted_max_steps
    logger = TrainingLogger(exp_dir, context.is_main, state.step, schedule_end.max_steps, show_progress)
    if init is not None and resuming:
        logger.message(f"resuming {exp_dir / 'last.pt'}: --init {init} is not applied again")
    elif report is not None:
        state.history, state.new_weights = report.history, new_weights
        if model.has_pitch and model.n_speakers:  # means --init brings are measured ones: training keeps them
            state.held_voice_pitch = [name for row, name in enumerate(model.speakers)
                                      if int(model.voice_pitch_updates[row]) > 0]
        logger.message(f"initialised from {init} (step {report.source_step}): {len(report.copied)} tensors copied, "
                       f"{report.rows} speaker rows by name, {len(report.kept)} kept as built"
                       + (f" ({', '.join(report.kept[:6])})" if report.kept else ""))
        if report.dropped:
            logger.message(f"warning: {len(report.dropped)} trained tensor(s) of {init} have no place in this "
                           f"config and are left out ({', '.join(report.dropped[:6])}): the run does not start "
                           f"from the model {init} is (e.g. model.decoder.pitch_lag_taps differs)")
        if code_statistics is not None:
            logger.message("the encoder side is frozen with --init's codes: its code statistics are kept")
        if state.held_voice_pitch:
            logger.message(f"the mean pitch of {len(state.held_voice_pitch)} voice(s) comes from --init and is kept")
        if new_weights:
            logger.message(f"{', '.join(new_weights)} learn at {cfg.train.new_weights_lr_scale:g} x lr "
                           f"(train.new_weights_lr_scale)")
    model.hold_voice_pitch(state.held_voice_pitch)
    cache = AudioCache(cfg.data.cache_dir, cfg.model.sample_rate, cfg.model.level_dbfs)
    segment = int(round(cfg.data.segment_s * cfg.model.sample_rate))
    if cfg.train.compile:
        if segment % cfg.model.hop_length:
            # A partial last frame takes another path through the decoder's conditioning, whose compiled
            # gradient was wrong (uninitialised, at times NaN) with torch 2.14.1's CPU backend.
            raise SpeechVQError(f"train.compile needs crops of whole code frames: data.segment_s = "
                                f"{cfg.data.segment_s} s is {segment} samples, not a multiple of "
                                f"{cfg.model.hop_length} (e.g. {cfg.model.hop_length * round(segment / cfg.model.hop_length) / cfg.model.sample_rate:g} s)")
        model.compile_training()
    train_entries = read_manifest(cfg.data.train_manifest)
    valid_set = SegmentDataset(read_manifest(cfg.data.valid_manifest)[:cfg.data.valid_max_utterances], speakers,
                               cache, segment, seed=cfg.train.seed)
    if cfg.data.loader == "device":
        with tqdm(total=len(train_entries), desc="loading onto " + device.type, unit="file", dynamic_ncols=True,
                  disable=not (show_progress and context.is_main)) as bar:
            corpus = DeviceCorpus(train_entries, speakers, cache, device, progress=bar.update)
        logger.message(f"training set on {device}: {len(corpus)} utterances, {corpus.nbytes / 2**20:.0f} MiB"
                       + (f", {corpus.skipped} unreadable left out" if corpus.skipped else ""))
        batches = DeviceBatches(corpus, cfg.data.batch_size, segment, cfg.train.seed, start_batch=state.batches,
                                rank=context.rank, world_size=context.world_size)
        epoch_of = batches.epoch_of
    else:
        train_set = SegmentDataset(train_entries, speakers, cache, segment, seed=cfg.train.seed,
                                   speed_perturb=cfg.data.speed_perturb)
        sampler = ResumableBatchSampler(len(train_set), cfg.data.batch_size, cfg.train.seed,
                                        start_batch=state.batches, rank=context.rank, world_size=context.world_size)
        batches = DataLoader(train_set, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                             collate_fn=collate_segments, pin_memory=device.type == "cuda",
                             persistent_workers=cfg.data.num_workers > 0,
                             # its own generator: creating the iterator must not draw from the global RNG,
                             # or a resumed run's random stream would be shifted by one draw
                             generator=torch.Generator().manual_seed(cfg.train.seed))
        epoch_of = sampler.epoch_of
    wrapped = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) \
        if context.world_size > 1 else model
    use_bf16 = cfg.train.precision == "bf16" and device.type == "cuda"
    if cfg.train.precision == "bf16" and not use_bf16:
        logger.message("precision bf16 applies on CUDA only; training in fp32 on the CPU")

    sums = _DeviceSums(device)
    clock = _StepClock(deadline, window_steps=cfg.train.valid_every)
    if max_minutes is not None:
        logger.message(f"time budget {max_minutes:g} min, start-up included: the schedule ends with it")
    if report is not None:
        # A continuation's first validation is of the weights it starts from: its log then says whether
        # training improved on them (both GPU leases' runs got worse from the first interval on), and a run
        # that never does keeps them as best.pt rather than its least bad step.
        with clock.validation():
            _validate_and_keep_best(model, valid_set, cfg, context, state, optimizer, scheduler, exp_dir, logger,
                                    code_statistics)
    saved_step, stopped = state.step, "max_steps"
    saved_step_at_start = saved_step
    with _StopRequest() as stop:
        for batch in batches:
            if state.step >= schedule_end.max_steps:
                break
            if stop_at_step is not None and state.step >= stop_at_step:
                stopped = "stop_at_step"
                break
            if state.step > saved_step_at_start and clock.out_of_time():  # at least one step: a checkpoint
                stopped = "time_limit"
                break
            state.batches += 1
            state.skipped_items += batch.skipped
            if batch.wav.shape[0] == 0:
                logger.message(f"batch {state.batches}: no readable file, skipped")
                continue
            _train_step(wrapped, model, optimizer, scheduler, batch.to(device), cfg, use_bf16, sums)
            state.step += 1
            n_samples = batch.wav.shape[0] * batch.wav.shape[-1] * context.world_size
            state.samples_seen += n_samples
            logger.advance(n_samples)
            at_log = state.step % cfg.train.log_every == 0
            at_valid = state.step % cfg.train.valid_every == 0
            at_checkpoint = state.step % cfg.train.checkpoint_every == 0
            if at_log or at_valid or at_checkpoint:
                # the one place a step waits for the device: the interval's sums, and the non-finite check
                # that must pass before anything is saved
                totals = sums.take(state.step, saved_step)
                if at_log:
                    logger.end_interval(state.step, scheduler.get_last_lr()[0], epoch_of(state.batches), totals)
                if clock.refit(state.step, schedule_end):
                    state.fitted_max_steps = schedule_end.max_steps
                    logger.set_total(schedule_end.max_steps)
            if at_valid:
                with clock.validation():
                    _validate_and_keep_best(model, valid_set, cfg, context, state, optimizer, scheduler, exp_dir,
                                            logger, code_statistics)
            if at_checkpoint:
                _save(exp_dir / "last.pt", model, cfg, state, optimizer, scheduler, context, code_statistics)
                saved_step = state.step
            if any_rank(context, stop.requested):
                stopped = "interrupted"
                break
    if state.step != saved_step:
        sums.take(state.step, saved_step)
        if state.step % cfg.train.valid_every != 0:
            _validate_and_keep_best(model, valid_set, cfg, context, state, optimizer, scheduler, exp_dir, logger,
                                    code_statistics)
        _save(exp_dir / "last.pt", model, cfg, state, optimizer, scheduler, context, code_statistics)
    logger.message(f"{stopped} at step {state.step}; best valid NLL {state.best_valid_nll:.4f}; "
                   f"{state.samples_seen / 1e6:.1f} M samples seen; {state.skipped_items} unreadable item(s) skipped")
    logger.close()
    return TrainResult(state.step, state.best_valid_nll, stopped)


class _DeviceSums:
    """Per-step statistics summed on the device, read once per interval: a step never waits for the GPU."""

    KEYS = ("loss", "nll", "vq_loss", "commitment_loss", "perplexity", "used_codes", "restarts", "grad_norm")

    def __init__(self, device: torch.device):
        self.total = torch.zeros(len(self.KEYS) + 1, device=device)  # the last slot counts non-finite losses
        self.steps = 0
        self.first_step = 0

    def add(self, out, grad_norm: torch.Tensor) -> None:
        values = [out.loss, out.nll, out.vq_loss, out.commitment_loss, out.perplexity, out.used_codes,
                  out.restarts, grad_norm]
        step_values = torch.stack([v.detach().float().reshape(()) for v in values])
        nonfinite = (~torch.isfinite(out.loss.detach())).float().reshape(1)
        self.total += torch.cat([torch.nan_to_num(step_values, nan=0.0, posinf=0.0, neginf=0.0), nonfinite])
        self.steps += 1

    def take(self, step: int, saved_step: int) -> tuple[dict[str, float], int]:
        """The sums since the last call and their step count; resets.

        Raises:
            SpeechVQError: a loss was NaN or infinite in these steps.
        """
        values = self.total.tolist()
        count, first = self.steps, step - self.steps + 1
        self.total.zero_()
        self.steps = 0
        if values[-1] > 0:
            raise SpeechVQError(f"the loss became NaN or infinite between steps {first} and {step}; stopping. The "
                                f"last good checkpoint (step {saved_step}) is intact; try a lower train.lr or "
                                f"train.grad_clip")
        return dict(zip(self.KEYS, values[:-1])), count


class _StepClock:
    """Fits the schedule of a `--max-minutes` run to its deadline and says when to stop.

    The first reading after warm-up steps (compilation, cuDNN autotuning) starts the clock; from then on the
    end of the schedule is `step + rate x time left`, the rate measured over the last `window_steps` steps or
    more (one validation interval, so that its pause counts). Not over the whole run: runs that share a GPU
    share its time (the first lease's three compiled runs made 3.56 M samples/s each, one alone 11.0 M), so a
    run speeds up when its neighbours end, and a whole-run mean would lag behind. The run stops early enough
    to validate and save once more before the deadline.
    """

    def __init__(self, deadline: Optional[float], window_steps: int = 1):
        self.deadline = deadline
        self.window_steps = max(1, window_steps)
        self.readings: collections.deque[tuple[int, float]] = collections.deque()
        self.validation_s = 0.0
        self.save_margin_s = 5.0

    def out_of_time(self) -> bool:
        return self.deadline is not None and \
            time.monotonic() + self.validation_s + self.save_margin_s >= self.deadline

    @contextlib.contextmanager
    def validation(self):
        began = time.monotonic()
        yield
        self.validation_s = max(self.validation_s, time.monotonic() - began)

    def refit(self, step: int, schedule_end: ScheduleEnd) -> bool:
        """Move the end of the schedule to what the time left allows; True when it moved."""
        if self.deadline is None:
            return False
        now = time.monotonic()
        self.readings.append((step, now))
        # drop readings while the next one is still at least a window old: the oldest kept spans >= the window
        while len(self.readings) > 2 and self.readings[1][0] <= step - self.window_steps:
            self.readings.popleft()
        first_step, first_time = self.readings[0]
        if step <= first_step or now <= first_time:
            return False
        rate = (step - first_step) / (now - first_time)
        left = self.deadline - now - self.validation_s - self.save_margin_s
        fitted = max(step + 1, step + int(rate * max(left, 0.0)))
        if fitted == schedule_end.max_steps:
            return False
        schedule_end.max_steps = fitted
        return True


def _last_checkpoint(cfg: Config, exp_dir: Path, context: DistributedContext,
                     model: SpeechVQ) -> Optional[Checkpoint]:
    """EXP/last.pt when the run resumes (checked against this config and speaker table), else None."""
    last = exp_dir / "last.pt"
    if not last.is_file():
        return None
    checkpoint = load_checkpoint(last, map_location=context.device)
    changed = _changed_keys(checkpoint.config.to_dict(), cfg.to_dict()) - RESUMABLE_CHANGES
    if changed:
        raise SpeechVQError(f"{exp_dir} was started with a different config ({', '.join(sorted(changed))}); "
                            f"use another --exp or the original settings")
    if list(checkpoint.speakers) != list(model.speakers):
        raise SpeechVQError(f"{exp_dir} was started with another speaker table than {cfg.data.speakers}")
    return checkpoint


def _new_weights(model: SpeechVQ, fresh: set[str], include: Sequence[str]) -> list[str]:
    """The trainable parameters that learn at train.new_weights_lr_scale x lr, in model order: those in `fresh`
    (what --init's source lacked or held at zero) and those whose names match a pattern of `include`
    (train.new_weights_include, fnmatch). Raises SpeechVQError for a pattern that matches no trainable parameter,
    which is a typo or a frozen tensor, not a silent no-op."""
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    for pattern in include:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in trainable):
            raise SpeechVQError(f"train.new_weights_include: {pattern!r} matches no trainable parameter of this "
                                f"model (e.g. {', '.join(trainable[:3])})")
    return [name for name in trainable
            if name in fresh or any(fnmatch.fnmatchcase(name, pattern) for pattern in include)]


def _parameter_groups(model: SpeechVQ, new_weights: list[str], train_cfg: TrainConfig) -> list[dict]:
    """Adam's parameter groups: the trainable parameters at train.lr, and those named in `new_weights` (what
    --init's source lacked, or held at zero, untrained) in a second group at train.lr x
    train.new_weights_lr_scale. The schedule's factor multiplies each group's own rate."""
    new = set(new_weights)
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for name, p in trainable if name not in new]}]
    if new:
        groups.append({"params": [p for name, p in trainable if name in new],
                       "lr": train_cfg.lr * train_cfg.new_weights_lr_scale})
    return groups


def _resume_or_start(cfg: Config, exp_dir: Path, context: DistributedContext, model: SpeechVQ,
                     optimizer: torch.optim.Optimizer, scheduler, checkpoint: Optional[Checkpoint]) -> RunState:
    """Load `checkpoint` (`_last_checkpoint`'s) into the run, or start a new one when it is None; either way
    EXP/config.yaml is (re)written."""
    if checkpoint is None:
        if context.is_main:
            write_bytes_atomic(exp_dir / "config.yaml", cfg.to_yaml().encode("utf-8"))
        return RunState()
    last = exp_dir / "last.pt"
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
                sums: _DeviceSums) -> None:
    """One optimizer step; nothing here waits for the device (statistics go to `sums`)."""
    model.train()
    with torch.autocast(device_type=batch.wav.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        out = wrapped(batch.wav, batch.speaker if model.has_speakers else None)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip or math.inf, foreach=True)
    optimizer.step()
    scheduler.step()
    sums.add(out, grad_norm)


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
                            state: RunState, optimizer, scheduler, exp_dir: Path, logger: TrainingLogger,
                            code_statistics: Optional[dict]) -> None:
    if context.is_main:
        metrics = evaluate(model, valid_set, context.device, cfg.data.batch_size)
        logger.validation(state.step, metrics, cfg.model.sample_rate, _resynthesis_sample(model, valid_set, cfg))
        if metrics["nll"] < state.best_valid_nll:
            state.best_valid_nll = metrics["nll"]
            save_checkpoint(exp_dir / "best.pt", model, cfg, state.step, optimizer, scheduler,
                            extra={"run": state.to_dict(), "rng": capture_rng()}, code_statistics=code_statistics)
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
    original = model.waveform_from_classes(
        mu_law_decode(model.mu_law_targets(item["wav"][:, :n_samples]), cfg.model.mu_law_classes))
    codes, levels = model.encode_with_speaker(original.unsqueeze(0).to(device))
    pitch = model.encode_pitch(original.unsqueeze(0).to(device))
    speaker = torch.tensor([item["speaker"]], device=device) if model.speaker_mode == "table" else None
    vector = model.speaker_from_levels(levels) if levels is not None else None
    generator = torch.Generator().manual_seed(cfg.train.seed)  # its own (CPU) generator: the global RNG is untouched
    resynthesis = model.decode(codes, speaker, original.shape[-1], generator=generator, speaker_vector=vector,
                               pitch=pitch)
    return original[0], resynthesis[0, 0].cpu()


def _save(path: Path, model: SpeechVQ, cfg: Config, state: RunState, optimizer, scheduler,
          context: DistributedContext, code_statistics: Optional[dict]) -> None:
    if context.is_main:
        save_checkpoint(path, model, cfg, state.step, optimizer, scheduler,
                        extra={"run": state.to_dict(), "rng": capture_rng()}, code_statistics=code_statistics)
    barrier(context)
