"""What the codes keep and what they drop: a speaker probe and the paper's phoneme purity.

The paper's claim (section 4.3) is that the discrete codes keep the content and drop the speaker. Two measures:

    speaker_probe    train a small classifier to tell the speaker from per-frame features (the codes' codebook
                     vectors, or the continuous encoder outputs) of some utterances, test it on others
    phone_purity     map each code to the phone it most often coincides with (time-aligned phone labels) and
                     count how many frames that mapping labels correctly, next to always guessing the most
                     frequent phone (the paper: 49.3% with 128 codes vs 7.2% chance)

And what the decoder takes from its own past:

    history_costs    the teacher-forced NLL of the same samples with their real past and with the past before
                     a point replaced by silence; the difference, against how much real past a sample kept,
                     says how far back the decoder looks (a voiced sample that used the previous pitch period
                     would cost more without the last 2.5-20 ms; `inference.scoring_inputs` gives an utterance's
                     inputs)

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
import torch.nn.functional as F

from .audio import mu_law_silence
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


def history_context(decoder_config, hop_length: int, lag_reach: int = 0) -> tuple[int, int]:
    """Samples of real past and of future that `history_costs` keeps around each scored span, both whole
    frames: the decoder's receptive field (and its pitch-lag taps' reach beyond it) plus the frame
    conditioning's reach (its convolutions' half-widths), so that within the span neither the crop's start nor
    its end changes anything.

    Args:
        decoder_config: the model's `DecoderConfig`; hop_length: samples per code frame.
        lag_reach: samples the pitch-lag taps read back beyond the receptive field (`SpeechVQ.lag_reach`).

    Returns:
        (lead, tail) in samples, multiples of hop_length: 2,240 and 192 for the paper model.
    """
    reach = decoder_config.cond_reach + 1
    lead = hop_length * (-(-(decoder_config.receptive_field + lag_reach) // hop_length) + reach)
    return lead, hop_length * reach


@torch.no_grad()
def history_costs(model, level_wav: torch.Tensor, local: torch.Tensor, vector: torch.Tensor | None,
                  starts: Sequence[int], span: int | None = None,
                  period: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced NLL of samples s, ..., s + span - 1 for each s in `starts`, once with their real past
    and once with every input before s replaced by silence, as a training crop starting at s sees it.

    Sample s + k keeps k samples of real past in the second pass; past the decoder's receptive field (plus the
    longest pitch period and n // 2 with the pitch-lag input) the two agree exactly. The code frames are the utterance's own in both passes (the frame conditioning of the whole
    utterance, cut with `history_context`'s margins), so the difference is the decoder's past alone.

    Args:
        model: a `SpeechVQ` in eval mode (CPU or GPU).
        level_wav: float `[T]` at the model's rate and level, in [-1, 1].
        local: float `[latent_dim, F]` the utterance's frame conditioning (`SpeechVQ.local_conditioning`).
        vector: float `[speaker_dim]` the voice, or None for a model without one.
        starts: multiples of `model.hop_length`, each with `history_context`'s lead before it and span plus
            its tail (rounded up to whole frames) inside the utterance.
        span: samples scored from each start (default: the receptive field).
        period: int64 `[F]` the frames' pitch-lag periods (`SpeechVQ.lag_periods`) for a decoder with the
            pitch-lag input, else None; in the cut pass its taps read the silence that replaced the past.

    Returns:
        (with the real past, from silence): float32 `[len(starts), span]` each, nats per sample.

    Raises:
        ValueError: a start off the frame grid or too near either end of the utterance.
    """
    hop, span = model.hop_length, span or model.decoder.receptive_field
    lead, tail = history_context(model.config.decoder, hop, model.lag_reach)
    length = lead + hop * -(-(span + tail) // hop)
    for s in starts:
        if s % hop or s < lead or s - lead + length > level_wav.numel():
            raise ValueError(f"start {s} must be a multiple of {hop} in [{lead}, {level_wav.numel() - length + lead}]")
    silence = mu_law_silence(model.classes)
    targets = model.mu_law_targets(level_wav.view(1, -1))[0]
    inputs = F.pad(targets[:-1], (1, 0), value=silence)
    real = torch.stack([inputs[s - lead:s - lead + length] for s in starts])
    cut = real.clone()
    cut[:, :lead + 1] = silence  # input s is sample s - 1: the first the crop no longer sees
    frames = torch.stack([local[:, (s - lead) // hop:(s - lead + length) // hop] for s in starts])
    scored = torch.stack([targets[s - lead:s - lead + length] for s in starts]).repeat(2, 1)
    speaker = None if vector is None else vector.view(1, -1).expand(2 * len(starts), -1)
    periods = None if period is None else torch.stack(
        [period[(s - lead) // hop:(s - lead + length) // hop] for s in starts]).repeat(2, 1)
    logits = model.decoder(torch.cat([real, cut]), local=frames.repeat(2, 1, 1), speaker=speaker, period=periods)
    nll = F.cross_entropy(logits.float(), scored, reduction="none")[:, lead:lead + span]
    return nll[:len(starts)], nll[len(starts):]
