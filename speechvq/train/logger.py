"""Training logs: a tqdm bar, TensorBoard scalars, audio and spectrogram images, and metrics.jsonl.

Only rank 0 logs. Scalars are averaged over each `log_every` interval; `metrics.jsonl` gets one line per
interval and per validation, so a run's curves can be plotted without TensorBoard.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import torch

from ..audio import log_mel_spectrogram
from ..errors import SpeechVQError


class TrainingLogger:
    """Collects per-step metrics and writes them out per interval.

    Args:
        exp_dir: the experiment folder (TensorBoard events go to `exp_dir/tensorboard`).
        enabled: False on ranks other than 0: every method is then a no-op.
        start_step, max_steps: for the progress bar.
        show_progress: draw the tqdm bar (on stderr).
    """

    def __init__(self, exp_dir: Path, enabled: bool, start_step: int, max_steps: int, show_progress: bool = True):
        self.enabled = enabled
        self.samples = 0
        self.interval_start = time.perf_counter()
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise SpeechVQError("training logs need TensorBoard: pip install 'speechvq[train]'") from None
        from tqdm import tqdm

        self.writer = SummaryWriter(str(exp_dir / "tensorboard"))
        self.metrics_path = exp_dir / "metrics.jsonl"
        self.bar = tqdm(total=max_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True,
                        disable=not show_progress)

    def advance(self, n_samples: int) -> None:
        """Count one step and the audio samples it consumed (the bar moves; nothing is read from the device)."""
        if not self.enabled:
            return
        self.samples += n_samples
        self.bar.update(1)

    def set_total(self, max_steps: int) -> None:
        """A time-fitted run moved the end of its schedule."""
        if self.enabled:
            self.bar.total = max_steps
            self.bar.refresh()

    def end_interval(self, step: int, lr: float, epoch: float, totals: tuple[dict[str, float], int]) -> None:
        """Write the interval's means (restarts: the sum) to TensorBoard and metrics.jsonl.

        Args:
            totals: (sum of each metric over the interval's steps, number of steps).
        """
        sums, count = totals
        if not self.enabled or count == 0:
            return
        elapsed = time.perf_counter() - self.interval_start
        values = {key: (total if key == "restarts" else total / count) for key, total in sums.items()}
        values.update(lr=lr, epoch=epoch, samples_per_s=self.samples / max(elapsed, 1e-9))
        for key, value in values.items():
            self.writer.add_scalar(f"train/{key}", value, step)
        self._append({"kind": "train", "step": step, **values})
        self.bar.set_postfix(loss=f"{values['loss']:.3f}", ppl=f"{values['perplexity']:.0f}",
                             codes=f"{values['used_codes']:.0f}", refresh=False)
        self.samples = 0
        self.interval_start = time.perf_counter()

    def validation(self, step: int, metrics: dict[str, float], sample_rate: int,
                   audio: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> None:
        """Validation scalars, and optionally an original/resynthesis pair as audio and a spectrogram image."""
        if not self.enabled:
            return
        for key, value in metrics.items():
            self.writer.add_scalar(f"valid/{key}", value, step)
        self._append({"kind": "valid", "step": step, **metrics})
        self.bar.write(f"step {step}: " + ", ".join(f"valid {k} {v:.4g}" for k, v in metrics.items()))
        if audio is not None:
            original, resynthesis = audio
            self.writer.add_audio("valid/original", original.clamp(-1, 1).unsqueeze(0), step, sample_rate)
            self.writer.add_audio("valid/resynthesis", resynthesis.clamp(-1, 1).unsqueeze(0), step, sample_rate)
            self.writer.add_figure("valid/spectrograms", spectrogram_figure(original, resynthesis, sample_rate), step)
        self.interval_start = time.perf_counter()  # validation time is not training throughput

    def message(self, text: str) -> None:
        if self.enabled:
            self.bar.write(text)

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.writer.close()

    def _append(self, record: dict) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def spectrogram_figure(original: torch.Tensor, resynthesis: torch.Tensor, sample_rate: int):
    """A matplotlib figure: log-mel spectrograms of the original (top) and resynthesis (bottom), same scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mels = [log_mel_spectrogram(w, sample_rate) for w in (original, resynthesis)]
    top = max(float(m.max()) for m in mels)
    figure, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for axis, mel, title in zip(axes, mels, ("original", "resynthesis")):
        image = axis.imshow(mel.numpy(), origin="lower", aspect="auto", vmin=top - 80, vmax=top, cmap="magma",
                            extent=(0, original.shape[-1] / sample_rate, 0, mel.shape[0]))
        axis.set_title(title)
        axis.set_ylabel("mel band")
    axes[-1].set_xlabel("time (s)")
    figure.colorbar(image, ax=axes, label="dB")
    return figure
