"""Manifests: one JSON object per line, `{id, path, speaker, duration_s}`, plus splits and the speaker table.

    data/manifests/
      all.jsonl         every usable utterance of the corpus
      train.jsonl       by utterance, from the training speakers
      valid.jsonl       a few utterances of every training speaker
      test.jsonl        likewise, disjoint from valid
      unseen.jsonl      every utterance of the held-out speakers (voice-conversion tests); empty when none are
      speakers.json     {"speakers": [...]}: the training speakers in table order (it travels into checkpoints)
"""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from ..atomic import write_bytes_atomic
from ..errors import SpeechVQError

SPLITS = ("train", "valid", "test", "unseen")


@dataclass(frozen=True)
class Utterance:
    """One manifest line.

    Attributes:
        id: unique within the corpus (e.g. `p225_001`, `1272-128104-0000`).
        path: absolute path of the audio file.
        speaker: speaker name as the corpus spells it.
        duration_s: length in seconds, from the file header.
        text: the transcript where the corpus has one (not used by the model).
    """

    id: str
    path: str
    speaker: str
    duration_s: float
    text: Optional[str] = field(default=None, compare=False)

    def to_json(self) -> str:
        values = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(values, ensure_ascii=False)


def select_files(entries: Sequence[Utterance], count: Optional[int], spread: bool = False) -> list[Utterance]:
    """At most `count` entries (all of them when `count` is None): the first ones, or with `spread` ones
    spread evenly over the list (the i-th of `count` is entries[floor(i * len / count)]). Manifests list each
    speaker's utterances together, so a spread takes every speaker in proportion where the first `count`
    take the first speakers only (the first 3,000 of the offline corpus's training files hold 5 of its 12)."""
    if count is None or count >= len(entries):
        return list(entries)
    if not spread:
        return list(entries[:max(0, count)])
    return [entries[i * len(entries) // count] for i in range(max(0, count))]


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a JSON-lines manifest.

    Raises:
        SpeechVQError: a missing file, or a line that is not a manifest entry (named by line number).
    """
    path = Path(path)
    if not path.is_file():
        raise SpeechVQError(f"no such manifest: {path}")
    entries = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                values = json.loads(line)
                entries.append(Utterance(id=str(values["id"]), path=str(values["path"]),
                                         speaker=str(values["speaker"]), duration_s=float(values["duration_s"]),
                                         text=values.get("text")))
            except (ValueError, KeyError, TypeError) as err:
                raise SpeechVQError(f"{path}:{number}: not a manifest entry ({err})") from None
    return entries


def write_manifest(path: str | os.PathLike, entries: Iterable[Utterance]) -> None:
    """Write entries as JSON lines, atomically."""
    write_bytes_atomic(path, "".join(e.to_json() + "\n" for e in entries).encode("utf-8"))


def read_speakers(path: str | os.PathLike) -> list[str]:
    """The speaker table written by `write_speakers`.

    Raises:
        SpeechVQError: missing or malformed file.
    """
    path = Path(path)
    try:
        speakers = json.loads(path.read_text(encoding="utf-8"))["speakers"]
    except FileNotFoundError:
        raise SpeechVQError(f"no such speaker table: {path}") from None
    except (ValueError, KeyError, TypeError):
        raise SpeechVQError(f"{path} is not a speaker table ({{\"speakers\": [...]}})") from None
    if not isinstance(speakers, list) or not all(isinstance(s, str) and s for s in speakers):
        raise SpeechVQError(f"{path}: speakers must be a list of names")
    return speakers


def write_speakers(path: str | os.PathLike, speakers: Sequence[str]) -> None:
    """Write the speaker table (row order = embedding order), atomically."""
    write_bytes_atomic(path, (json.dumps({"speakers": list(speakers)}, indent=1) + "\n").encode("utf-8"))


@dataclass(frozen=True)
class SplitSpec:
    """How to split a corpus.

    Attributes:
        valid_per_speaker: utterances of each training speaker for validation.
        test_per_speaker: utterances of each training speaker for the test split.
        holdout_speakers: speakers whose every utterance goes to `unseen` (not in the speaker table).
        seed: the shuffle seed; the same corpus and spec give the same split.
    """

    valid_per_speaker: int = 2
    test_per_speaker: int = 4
    holdout_speakers: tuple[str, ...] = ()
    seed: int = 0


def split_corpus(entries: Sequence[Utterance], spec: SplitSpec) -> tuple[dict[str, list[Utterance]], list[str]]:
    """Split utterances into train / valid / test (per speaker) and unseen (held-out speakers).

    A speaker with too few utterances keeps at least one for training; valid and test get what is left.

    Returns:
        (splits keyed by name, each sorted by id; the training speakers, sorted).

    Raises:
        SpeechVQError: a held-out speaker not in the corpus, or no training speaker left.
    """
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for entry in entries:
        by_speaker[entry.speaker].append(entry)
    missing = sorted(set(spec.holdout_speakers) - set(by_speaker))
    if missing:
        raise SpeechVQError(f"held-out speakers not in the corpus: {', '.join(missing)}")
    splits: dict[str, list[Utterance]] = {name: [] for name in SPLITS}
    rng = random.Random(spec.seed)
    for speaker in sorted(by_speaker):
        utterances = sorted(by_speaker[speaker], key=lambda e: e.id)
        if speaker in spec.holdout_speakers:
            splits["unseen"] += utterances
            continue
        rng.shuffle(utterances)
        spare = max(0, len(utterances) - 1)
        n_valid = min(spec.valid_per_speaker, spare)
        n_test = min(spec.test_per_speaker, spare - n_valid)
        splits["valid"] += utterances[:n_valid]
        splits["test"] += utterances[n_valid:n_valid + n_test]
        splits["train"] += utterances[n_valid + n_test:]
    speakers = sorted({e.speaker for e in splits["train"]})
    if not speakers:
        raise SpeechVQError("no training speakers left after holding out speakers")
    return {name: sorted(items, key=lambda e: e.id) for name, items in splits.items()}, speakers


def write_splits(out_dir: str | os.PathLike, entries: Sequence[Utterance], spec: SplitSpec) -> dict[str, int]:
    """Split a corpus and write all.jsonl, the split manifests and speakers.json into `out_dir`.

    Returns:
        utterance count per file written.
    """
    out_dir = Path(out_dir)
    splits, speakers = split_corpus(entries, spec)
    write_manifest(out_dir / "all.jsonl", sorted(entries, key=lambda e: e.id))
    counts = {"all": len(entries)}
    for name, items in splits.items():  # unseen.jsonl is written empty too, so no stale file survives a re-split
        write_manifest(out_dir / f"{name}.jsonl", items)
        counts[name] = len(items)
    write_speakers(out_dir / "speakers.json", speakers)
    return counts
