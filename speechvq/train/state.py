"""What a training run must carry across a restart besides weights: step, data position, RNG states, best score.

Everything is stored as plain types and tensors so that checkpoints load with `weights_only=True`.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Optional

import numpy as np
import torch

from ..config import TrainConfig


@dataclass
class RunState:
    """Progress of a training run.

    Attributes:
        step: optimizer steps taken.
        batches: global batches drawn from the sampler (can exceed `step` when a batch was all unreadable).
        best_valid_nll: the best validation NLL so far (nats per sample), inf before the first validation.
        skipped_items: training items dropped because their file could not be read.
        samples_seen: audio samples trained on in this run (all ranks).
        fitted_max_steps: the step count a `--max-minutes` run fitted its schedule to (0: not fitted).
        history: the runs this one continues (`--init`), oldest first: each {"step", "samples_seen", "source",
            "fingerprint"} (the source's file name and `speechvq.checkpoint.weights_fingerprint`).
        new_weights: names of the parameters that learn at `train.new_weights_lr_scale` x lr (those `--init`'s
            source lacked or held all at zero); kept so that a resumed run builds the same optimizer groups.
        held_voice_pitch: the voices whose mean pitch bin came from `--init` already measured, which the run
            leaves as it is (`SpeechVQ.hold_voice_pitch`); kept so that a resumed run holds the same ones.
    """

    step: int = 0
    batches: int = 0
    best_valid_nll: float = math.inf
    skipped_items: int = 0
    samples_seen: int = 0
    fitted_max_steps: int = 0
    history: list = field(default_factory=list)
    new_weights: list = field(default_factory=list)
    held_voice_pitch: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunState":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})  # older checkpoints lack the newer keys


def capture_rng() -> dict[str, Any]:
    """Every random generator the run draws from: torch (CPU and CUDA), Python, NumPy."""
    version, mt_state, gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, torch.tensor(mt_state, dtype=torch.int64), gauss],
        "numpy": [np_kind, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what `capture_rng` recorded."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(int(v) for v in mt_state.tolist()), gauss))
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_kind, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))


def lr_factor(config: TrainConfig, schedule_end: Optional["ScheduleEnd"] = None) -> Callable[[int], float]:
    """Multiplier of the base learning rate at each step: linear warm-up, then constant or cosine to zero.

    Args:
        config: warm-up, schedule kind and `max_steps`.
        schedule_end: where the cosine ends, when it can move during the run (a time-fitted run); None: at
            `config.max_steps`.
    """

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.lr_schedule == "constant":
            return 1.0
        end = schedule_end.max_steps if schedule_end is not None else config.max_steps
        progress = (step - config.warmup_steps) / max(1, end - config.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


@dataclass
class ScheduleEnd:
    """The step at which the schedule ends; a `--max-minutes` run sets it once it has timed its steps."""

    max_steps: int


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), Python and NumPy."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
