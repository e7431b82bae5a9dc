"""What the codes keep and what they drop: a speaker probe and the paper's phoneme purity.

The paper's claim (section 4.3) is that the discrete codes keep the content and drop the speaker. Two measures:

    speaker_probe    train a small classifier to tell the speaker from per-frame features (the codes' codebook
                     vectors, or the continuous encoder outputs) of some utterances, test it on others
    phone_purity     map each code to the phone it most often coincides with (time-aligned phone labels) and
                     count how many frames that mapping labels correctly, next to always guessing the most
                     frequent phone (the paper: 49.3% with 128 codes vs 7.2% chance)

Phone labels come as CTM lines (`utterance channel start duration phone`) or Praat TextGrids (long text format,
as the Montreal Forced Aligner writes them), read by `read_ctm` / `read_textgrid`.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .errors import SpeechVQError

Interval = tuple[float, float, str]  # start (s), end (s), label


def read_ctm(path: str | os.PathLike) -> dict[str, list[Interval]]:
    """Phone intervals per utterance from a CTM file (`utt channel start duration phone [confidence]`).

    Raises:
        SpeechVQError: a missing file or a malformed line (named with its number).
    """
    path = Path(path)
    if not path.is_file():
        raise SpeechVQError(f"no such CTM file: {path}")
    intervals: dict[str, list[Interval]] = defaultdict(list)
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields or line.startswith(";;"):
            continue
        try:
            utterance, start, duration, phone = fields[0], float(fields[2]), float(fields[3]), fields[4]
        except (IndexError, ValueError):
            raise SpeechVQError(f"{path}:{number}: not a CTM line (utterance channel start duration phone)") from None
        intervals[utterance].append((start, start + duration, phone))
    return {u: sorted(v) for u, v in intervals.items()}


def read_textgrid(path: str | os.PathLike, tier: str = "phones") -> list[Interval]:
    """The non-empty intervals of one interval tier of a Praat TextGrid in the long text format.

    Raises:
        SpeechVQError: a missing file, or no interval tier of that name.
    """
    path = Path(path)
    if not path.is_file():
        raise SpeechVQError(f"no such TextGrid: {path}")
    text = path.read_text(encoding="utf-8", errors="replace")
    for block in re.split(r"\n\s*item \[\d+\]:", text)[1:]:
        name = re.search(r'name = "(.*?)"', block)
        if name is None or name.group(1) != tier or 'class = "IntervalTier"' not in block:
            continue
        found = re.findall(r'xmin = ([\d.eE+-]+)\s+xmax = ([\d.eE+-]+)\s+text = "(.*?)"', block, flags=re.S)
        return [(float(a), float(b), label.strip()) for a, b, label in found if label.strip()]
    raise SpeechVQError(f"{path} has no interval tier named {tier!r}")


def frame_labels(intervals: Sequence[Interval], n_frames: int, frame_s: float, silence: str = "") -> list[str]:
    """The label at the centre of each frame (`silence` where no interval covers it)."""
    labels, index = [], 0
    ordered = sorted(intervals)
    for frame in range(n_frames):
        centre = (frame + 0.5) * frame_s
        while index < len(ordered) and ordered[index][1] <= centre:
            index += 1
        inside = index < len(ordered) and ordered[index][0] <= centre < ordered[index][1]
        labels.append(ordered[index][2] if inside else silence)
    return labels


@dataclass
class Purity:
    """Phone purity of codes: accuracy of the code -> most frequent phone mapping, and chance."""

    purity: float
    chance: float
    frames: int
    codes_used: int
    phones: int


def phone_purity(codes: Sequence[np.ndarray], phones: Sequence[Sequence[str]], ignore: Sequence[str] = ("",)
                 ) -> Purity:
    """Map each code to the phone it most often coincides with; the fraction of frames this labels correctly.

    Args:
        codes: per utterance, int `[F]` codes.
        phones: per utterance, F frame labels (e.g. from `frame_labels`); frames labelled with one of
            `ignore` (silence, unaligned) are left out.

    Returns:
        Purity, with chance = the frequency of the most common phone among the counted frames.

    Raises:
        SpeechVQError: lengths that do not match, or no labelled frame at all.
    """
    pairs: dict[int, Counter] = defaultdict(Counter)
    totals: Counter = Counter()
    for utterance_codes, utterance_phones in zip(codes, phones, strict=True):
        if len(utterance_codes) != len(utterance_phones):
            raise SpeechVQError(f"{len(utterance_codes)} codes but {len(utterance_phones)} frame labels")
        for code, phone in zip(utterance_codes, utterance_phones):
            if phone not in ignore:
                pairs[int(code)][phone] += 1
                totals[phone] += 1
    n = sum(totals.values())
    if n == 0:
        raise SpeechVQError("no labelled frame to measure phone purity on")
    correct = sum(counter.most_common(1)[0][1] for counter in pairs.values())
    return Purity(purity=correct / n, chance=totals.most_common(1)[0][1] / n, frames=n, codes_used=len(pairs),
                  phones=len(totals))


@dataclass
class ProbeResult:
    """Speaker-probe accuracies on held-out utterances, per frame and per utterance (mean log-probability)."""

    frame_accuracy: float
    utterance_accuracy: float
    frame_chance: float
    utterance_chance: float
    train_frames: int
    test_frames: int


def speaker_probe(train: Sequence[tuple[np.ndarray, int]], test: Sequence[tuple[np.ndarray, int]],
                  n_speakers: int, hidden: int = 128, steps: int = 300, seed: int = 0) -> ProbeResult:
    """Train a one-hidden-layer classifier of the speaker on per-frame features; score it on other utterances.

    Args:
        train, test: (float `[F, D]` frame features, speaker index) per utterance; the features are
            standardised with the training frames' mean and deviation.
        n_speakers: classes.
        hidden, steps, seed: the classifier (ReLU MLP, full-batch Adam, lr 1e-2, weight decay 1e-4).
    """
    generator = torch.Generator().manual_seed(seed)
    x_train = torch.from_numpy(np.concatenate([f for f, _ in train])).float()
    y_train = torch.cat([torch.full((len(f),), s) for f, s in train])
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    dim = x_train.shape[1]
    layers = [torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_speakers)]
    for layer in (layers[0], layers[2]):
        torch.nn.init.normal_(layer.weight, std=(1.0 / layer.in_features) ** 0.5, generator=generator)
        torch.nn.init.zeros_(layer.bias)
    classifier = torch.nn.Sequential(*layers)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-2, weight_decay=1e-4)
    inputs = (x_train - mean) / std
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(classifier(inputs), y_train).backward()
        optimizer.step()
    frame_hits, frames, utterance_hits = 0, 0, 0
    test_counts = Counter()
    with torch.no_grad():
        for features, speaker in test:
            log_probs = classifier((torch.from_numpy(features).float() - mean) / std).log_softmax(-1)
            frame_hits += int((log_probs.argmax(-1) == speaker).sum())
            frames += len(features)
            utterance_hits += int(log_probs.mean(0).argmax() == speaker)
            test_counts[speaker] += len(features)
    utterance_counts = Counter(s for _, s in test)
    return ProbeResult(frame_accuracy=frame_hits / frames, utterance_accuracy=utterance_hits / len(test),
                       frame_chance=max(test_counts.values()) / frames,
                       utterance_chance=max(utterance_counts.values()) / len(test),
                       train_frames=len(x_train), test_frames=frames)
