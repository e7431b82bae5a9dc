"""Corpus scanners: find the utterances of VCTK 0.92, VCTK 0.80, LibriSpeech and speaker-folder corpora.

Each scanner walks the layout, reads every file's header (not its samples) for the duration, and returns
manifest entries. Files the header reader cannot open, and stray files (READMEs, logs, hidden files) are
skipped and counted, never fatal. Layouts:

    VCTK 0.92     VCTK-Corpus-0.92/wav48_silence_trimmed/p225/p225_001_mic2.flac, txt/p225/p225_001.txt
    VCTK 0.80     VCTK-Corpus/wav48/p225/p225_001.wav, txt/p225/p225_001.txt
    LibriSpeech   LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac, <speaker>-<chapter>.trans.txt
    folder        <root>/<speaker>/**/<name>.{wav,flac,ogg}  (any depth below the speaker folder)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from ..audio import is_audio_file
from ..errors import SpeechVQError
from .manifest import Utterance

CORPORA = ("vctk", "vctk080", "librispeech", "folder")


@dataclass
class ScanResult:
    """Entries found, and what was skipped (file -> reason)."""

    entries: list[Utterance] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def audio_duration_s(path: Path) -> float:
    """Duration from the file header, in seconds; raises RuntimeError/ValueError for an unreadable file."""
    import soundfile

    info = soundfile.info(str(path))
    if info.samplerate <= 0:
        raise ValueError("no sample rate in header")
    return info.frames / info.samplerate


def scan_corpus(kind: str, root: str | os.PathLike, *, mic: str = "mic2",
                subsets: Optional[Iterable[str]] = None,
                progress: Optional[Callable[[int], None]] = None) -> ScanResult:
    """Scan a corpus into manifest entries.

    Args:
        kind: one of `CORPORA`: "vctk" (0.92), "vctk080", "librispeech", "folder".
        root: the corpus folder (the archive's top folder, or the folder above it).
        mic: VCTK 0.92 microphone, "mic1" or "mic2".
        subsets: LibriSpeech subsets to include (e.g. ["train-clean-100"]); default all found.
        progress: called with 1 per file examined.

    Raises:
        SpeechVQError: the root is missing or holds none of the expected layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise SpeechVQError(f"no such corpus folder: {root}")
    scanners = {"vctk": lambda: _scan_vctk092(root, mic), "vctk080": lambda: _scan_vctk080(root),
                "librispeech": lambda: _scan_librispeech(root, subsets), "folder": lambda: _scan_folder(root)}
    if kind not in scanners:
        raise SpeechVQError(f"unknown corpus kind {kind!r} (choose from {', '.join(CORPORA)})")
    result = ScanResult()
    seen: dict[str, str] = {}
    for candidate in scanners[kind]():
        if progress is not None:
            progress(1)
        if isinstance(candidate, tuple):  # (path, reason): a stray file
            result.skipped[str(candidate[0])] = candidate[1]
            continue
        try:
            duration = audio_duration_s(Path(candidate.path))
        except (RuntimeError, ValueError, TypeError) as err:
            result.skipped[candidate.path] = f"unreadable header: {err}".splitlines()[0]
            continue
        if duration <= 0:
            result.skipped[candidate.path] = "no samples"
            continue
        if candidate.id in seen:
            raise SpeechVQError(f"two files map to utterance id {candidate.id}: {seen[candidate.id]}, {candidate.path}")
        seen[candidate.id] = candidate.path
        result.entries.append(Utterance(candidate.id, candidate.path, candidate.speaker, round(duration, 4),
                                        candidate.text))
    if not result.entries:
        raise SpeechVQError(f"no {kind} utterances found under {root}")
    result.entries.sort(key=lambda e: e.id)
    return result


# Each scanner yields Utterance candidates (duration filled in later) or (path, reason) for stray files.

def _find_dir(root: Path, name: str, parents: tuple[str, ...]) -> Path:
    for base in (root, *[root / p for p in parents]):
        if (base / name).is_dir():
            return base
    raise SpeechVQError(f"{root} does not look like the expected corpus: no {name}/ folder found")


def _read_text(path: Path) -> Optional[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None


def _scan_vctk092(root: Path, mic: str):
    if mic not in ("mic1", "mic2"):
        raise SpeechVQError(f"VCTK mic must be mic1 or mic2, got {mic!r}")
    base = _find_dir(root, "wav48_silence_trimmed", ("VCTK-Corpus-0.92",))
    pattern = re.compile(rf"(?P<id>(?P<speaker>[a-z]+\d*)_\d+)_{mic}\.flac")
    for speaker_dir in sorted(p for p in (base / "wav48_silence_trimmed").iterdir() if p.is_dir()):
        for path in sorted(speaker_dir.iterdir()):
            match = pattern.fullmatch(path.name)
            if match:
                # p315 has no transcripts in 0.92: the text stays None, the audio is used all the same
                text = _read_text(base / "txt" / match["speaker"] / f"{match['id']}.txt")
                yield Utterance(match["id"], str(path.resolve()), match["speaker"], 0.0, text)
            elif not re.fullmatch(r".+_mic[12]\.flac", path.name):
                yield path, "not a VCTK 0.92 audio file"


def _scan_vctk080(root: Path):
    base = _find_dir(root, "wav48", ("VCTK-Corpus",))
    for speaker_dir in sorted(p for p in (base / "wav48").iterdir() if p.is_dir()):
        for path in sorted(speaker_dir.iterdir()):
            if path.suffix.lower() == ".wav" and not path.name.startswith("."):
                text = _read_text(base / "txt" / speaker_dir.name / f"{path.stem}.txt")
                yield Utterance(path.stem, str(path.resolve()), speaker_dir.name, 0.0, text)
            else:
                yield path, "not a VCTK 0.80 audio file"


def _scan_librispeech(root: Path, subsets: Optional[Iterable[str]]):
    base = root / "LibriSpeech" if (root / "LibriSpeech").is_dir() else root
    found = sorted(p.name for p in base.iterdir() if p.is_dir() and re.fullmatch(r"(train|dev|test)-\w+(-\d+)?", p.name))
    wanted = list(subsets) if subsets else found
    missing = sorted(set(wanted) - set(found))
    if missing or not wanted:
        raise SpeechVQError(f"LibriSpeech subsets not found under {base}: {', '.join(missing) or 'none at all'}")
    pattern = re.compile(r"(\d+)-(\d+)-\d+\.flac")
    for subset in wanted:
        for chapter_dir in sorted(p for p in (base / subset).glob("*/*") if p.is_dir()):
            transcripts = _librispeech_transcripts(chapter_dir)
            for path in sorted(chapter_dir.iterdir()):
                match = pattern.fullmatch(path.name)
                if match:
                    yield Utterance(path.stem, str(path.resolve()), match[1], 0.0, transcripts.get(path.stem))
                elif not path.name.endswith(".trans.txt"):
                    yield path, "not a LibriSpeech audio file"


def _librispeech_transcripts(chapter_dir: Path) -> dict[str, str]:
    transcripts = {}
    for trans in chapter_dir.glob("*.trans.txt"):
        for line in (_read_text(trans) or "").splitlines():
            utterance_id, _, text = line.partition(" ")
            transcripts[utterance_id] = text
    return transcripts


def _scan_folder(root: Path):
    speaker_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for path in sorted(p for p in root.iterdir() if p.is_file()):
        yield path, "a file directly in the corpus root belongs to no speaker"
    for speaker_dir in speaker_dirs:
        for path in sorted(p for p in speaker_dir.rglob("*") if p.is_file()):
            relative = path.relative_to(speaker_dir)
            if is_audio_file(path) and not any(part.startswith(".") for part in relative.parts):
                stem = "_".join(relative.with_suffix("").parts)
                yield Utterance(f"{speaker_dir.name}/{stem}", str(path.resolve()), speaker_dir.name, 0.0)
            else:
                yield path, "not an audio file (.wav, .flac, .ogg)"

