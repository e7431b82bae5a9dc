"""Figures people would rather look at than read: spectrograms side by side, code-usage histograms.

matplotlib is imported inside the functions (Agg backend, no display needed); files are written atomically.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from torch import Tensor

from .atomic import atomic_path
from .audio import log_mel_spectrogram


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_spectrograms(path: str | os.PathLike, named: Sequence[tuple[str, Tensor]], sample_rate: int,
                      title: str = "") -> None:
    """One PNG with the log-mel spectrogram of each waveform, stacked, on a shared time and dB scale.

    Args:
        named: (label, float `[T]` waveform) pairs, all at `sample_rate` Hz.
    """
    save_spectrogram_grid(path, [[item] for item in named], sample_rate, title=title)


def save_spectrogram_grid(path: str | os.PathLike, rows: Sequence[Sequence[tuple[str, Tensor]]], sample_rate: int,
                          row_titles: Sequence[str] = (), title: str = "") -> None:
    """One PNG with a grid of log-mel spectrograms (one row per list in `rows`) on one dB scale.

    Args:
        rows: per row, (label, float `[T]` waveform) pairs at `sample_rate` Hz; rows may differ in length.
        row_titles: prefixed to the labels of each row's first panel.
    """
    with atomic_path(path) as tmp:
        _spectrogram_figure(tmp, rows, sample_rate, row_titles, title)


def _spectrogram_figure(target, rows: Sequence[Sequence[tuple[str, Tensor]]], sample_rate: int,
                        row_titles: Sequence[str], title: str) -> None:
    """Draw the grid of `save_spectrogram_grid` and save it as PNG to a path or binary file object."""
    plt = _pyplot()
    grid = [[(label, log_mel_spectrogram(wav, sample_rate).numpy()) for label, wav in row] for row in rows]
    top = max(float(s.max()) for row in grid for _, s in row)
    columns, hop_s = max(len(row) for row in grid), 0.010
    width = 8.0 if columns == 1 else 3.6 * columns + 0.8
    # one column: the panels show the same span, so one time axis; a grid's rows may differ in length
    figure, axes = plt.subplots(len(grid), columns, figsize=(width, 1.9 * len(grid) + 0.6), dpi=90,
                                squeeze=False, sharex=columns == 1, constrained_layout=True)
    image = None
    for r, row in enumerate(grid):
        for c in range(columns):
            axis = axes[r, c]
            if c >= len(row):
                axis.axis("off")
                continue
            label, spectrogram = row[c]
            image = axis.imshow(spectrogram, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                                extent=(0, spectrogram.shape[1] * hop_s, 0, spectrogram.shape[0]))
            prefix = f"{row_titles[r]}: " if c == 0 and r < len(row_titles) else ""
            axis.set_title(prefix + label, fontsize=9, loc="left")
            if c == 0:
                axis.set_ylabel("mel band")
            if r == len(grid) - 1:
                axis.set_xlabel("time (s)")
    figure.colorbar(image, ax=axes.ravel().tolist(), label="dB", pad=0.01, fraction=0.03)
    if title:
        figure.suptitle(title, fontsize=11)
    figure.savefig(target, format="png")
    plt.close(figure)


def spectrograms_png(named: Sequence[tuple[str, Tensor]], sample_rate: int, title: str = "") -> bytes:
    """The PNG `save_spectrograms` writes, as bytes (nothing touches the disk).

    Args:
        named: (label, float `[T]` waveform) pairs, all at `sample_rate` Hz.
    """
    import io

    buffer = io.BytesIO()
    _spectrogram_figure(buffer, [[item] for item in named], sample_rate, (), title)
    return buffer.getvalue()


def save_code_histogram(path: str | os.PathLike, counts: np.ndarray, title: str = "") -> None:
    """One PNG of code usage: how often each code occurs, codes sorted by frequency (log scale).

    Args:
        counts: int or float `[K]` occurrences of each code.
    """
    plt = _pyplot()
    counts = np.asarray(counts, dtype=np.float64)
    ordered = np.sort(counts)[::-1]
    used = int((counts > 0).sum())
    figure, axis = plt.subplots(figsize=(8, 2.8), dpi=100)
    # one filled step outline, not a bar per code (K rectangles took about a second to draw at K = 512); unused
    # codes keep a sliver from 0.3 to 0.5
    axis.stairs(np.maximum(ordered, 0.5), np.arange(len(ordered) + 1) - 0.5, baseline=0.3, fill=True,
                color="#3b6ea5")
    axis.set_yscale("log")
    axis.set_xlabel("codes, most used first")
    axis.set_ylabel("occurrences")
    axis.set_title(title or f"{used} of {len(counts)} codes used", fontsize=10)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)

