"""Corpus scanners and splits on small fake trees in each layout, odd cases included."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from speechvq.data.corpora import scan_corpus
from speechvq.data.manifest import (SplitSpec, Utterance, read_manifest, read_speakers, select_files,
                                    split_corpus, write_splits)
from speechvq.errors import SpeechVQError


def tone(path, seconds: float = 0.1, rate: int = 16000, subtype: str = "PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * rate)
    soundfile.write(path, (0.3 * np.sin(np.arange(n) * 0.05)).astype(np.float32), rate, subtype=subtype)


def test_vctk_092(tmp_path):
    base = tmp_path / "VCTK-Corpus-0.92"
    for speaker, n in [("p225", 3), ("p315", 2)]:
        for i in range(1, n + 1):
            for mic in ("mic1", "mic2"):
                tone(base / "wav48_silence_trimmed" / speaker / f"{speaker}_{i:03d}_{mic}.flac", rate=48000)
            if speaker != "p315":  # p315 has no transcripts in the real corpus
                (base / "txt" / speaker).mkdir(parents=True, exist_ok=True)
                (base / "txt" / speaker / f"{speaker}_{i:03d}.txt").write_text(f"sentence {i}\n")
    (base / "wav48_silence_trimmed" / "p225" / "log.txt").write_text("stray")
    (base / "speaker-info.txt").write_text("ID AGE GENDER")
    result = scan_corpus("vctk", tmp_path, mic="mic1")
    assert [e.id for e in result.entries] == ["p225_001", "p225_002", "p225_003", "p315_001", "p315_002"]
    first = result.entries[0]
    assert first.speaker == "p225" and first.path.endswith("p225_001_mic1.flac")
    assert first.duration_s == pytest.approx(0.1) and first.text == "sentence 1"
    assert result.entries[3].text is None  # missing transcript: kept, without text
    assert any(p.endswith("log.txt") for p in result.skipped)
    assert scan_corpus("vctk", base, mic="mic2").entries[0].path.endswith("_mic2.flac")


def test_vctk_080(tmp_path):
    base = tmp_path / "VCTK-Corpus"
    tone(base / "wav48" / "p226" / "p226_001.wav", rate=48000)
    tone(base / "wav48" / "p226" / "p226_002.wav", rate=48000)
    (base / "wav48" / "p226" / ".DS_Store").write_bytes(b"\0")
    (base / "txt" / "p226").mkdir(parents=True)
    (base / "txt" / "p226" / "p226_001.txt").write_text("hello\n")
    result = scan_corpus("vctk080", tmp_path)
    assert [(e.id, e.speaker, e.text) for e in result.entries] == [("p226_001", "p226", "hello"),
                                                                    ("p226_002", "p226", None)]
    assert len(result.skipped) == 1


def test_librispeech_subsets_and_transcripts(tmp_path):
    base = tmp_path / "LibriSpeech"
    for subset, speaker in [("dev-clean", "84"), ("train-clean-100", "19")]:
        chapter = base / subset / speaker / "121123"
        for i in range(2):
            tone(chapter / f"{speaker}-121123-{i:04d}.flac")
        (chapter / f"{speaker}-121123.trans.txt").write_text(f"{speaker}-121123-0000 FIRST LINE\n")
    (base / "README.TXT").write_text("readme")
    everything = scan_corpus("librispeech", tmp_path)
    assert [e.id for e in everything.entries] == ["19-121123-0000", "19-121123-0001",
                                                  "84-121123-0000", "84-121123-0001"]
    assert everything.entries[0].text == "FIRST LINE" and everything.entries[1].text is None
    only_train = scan_corpus("librispeech", base, subsets=["train-clean-100"])
    assert {e.speaker for e in only_train.entries} == {"19"}
    with pytest.raises(SpeechVQError, match="test-other"):
        scan_corpus("librispeech", tmp_path, subsets=["test-other"])


def test_folder_corpus_with_mixed_rates_formats_and_strays(tmp_path):
    tone(tmp_path / "alice" / "a.wav", 0.5, rate=16000)
    tone(tmp_path / "alice" / "session2" / "b.flac", 0.25, rate=44100)
    tone(tmp_path / "bob" / "c.ogg", 0.2, rate=22050, subtype="VORBIS")
    tone(tmp_path / "bob" / "d.WAV", 0.1, rate=8000, subtype="FLOAT")
    (tmp_path / "bob" / "notes.txt").write_text("stray")
    (tmp_path / "bob" / "broken.wav").write_bytes(b"RIFF not really")
    (tmp_path / "README.md").write_text("stray in the root")
    (tmp_path / ".hidden").mkdir()
    tone(tmp_path / ".hidden" / "x.wav")
    result = scan_corpus("folder", tmp_path)
    by_id = {e.id: e for e in result.entries}
    assert set(by_id) == {"alice/a", "alice/session2_b", "bob/c", "bob/d"}
    assert by_id["alice/session2_b"].duration_s == pytest.approx(0.25, abs=1e-3)
    assert by_id["bob/c"].duration_s == pytest.approx(0.2, abs=1e-3)
    assert by_id["bob/d"].duration_s == pytest.approx(0.1, abs=1e-3)
    skipped = {p.rsplit("/", 1)[-1]: reason for p, reason in result.skipped.items()}
    assert set(skipped) == {"notes.txt", "broken.wav", "README.md"}
    assert "unreadable" in skipped["broken.wav"]


def test_empty_or_missing_corpus_is_an_error(tmp_path):
    with pytest.raises(SpeechVQError, match="no such corpus folder"):
        scan_corpus("folder", tmp_path / "missing")
    (tmp_path / "alice").mkdir()
    with pytest.raises(SpeechVQError, match="no folder utterances found"):
        scan_corpus("folder", tmp_path)
    with pytest.raises(SpeechVQError, match="wav48_silence_trimmed"):
        scan_corpus("vctk", tmp_path)


def make_entries(speakers: dict[str, int]):
    from speechvq.data.manifest import Utterance

    return [Utterance(f"{s}_{i:03d}", f"/x/{s}/{i}.wav", s, 1.0) for s, n in speakers.items() for i in range(n)]


def test_split_by_utterance_with_holdout_speakers():
    entries = make_entries({"a": 10, "b": 10, "c": 5, "d": 2})
    splits, speakers = split_corpus(entries, SplitSpec(valid_per_speaker=2, test_per_speaker=3,
                                                       holdout_speakers=("c",), seed=1))
    assert speakers == ["a", "b", "d"]
    assert {e.speaker for e in splits["unseen"]} == {"c"} and len(splits["unseen"]) == 5
    ids = [e.id for name in ("train", "valid", "test") for e in splits[name]]
    assert len(ids) == len(set(ids)) == 22  # disjoint and complete
    assert sum(e.speaker == "a" for e in splits["valid"]) == 2 and sum(e.speaker == "a" for e in splits["test"]) == 3
    # a speaker with two utterances keeps one for training
    assert sum(e.speaker == "d" for e in splits["train"]) == 1
    again, _ = split_corpus(list(reversed(entries)), SplitSpec(2, 3, ("c",), seed=1))
    assert again == splits  # deterministic, whatever the input order
    with pytest.raises(SpeechVQError, match="zed"):
        split_corpus(entries, SplitSpec(holdout_speakers=("zed",)))


def test_write_splits_round_trip(tmp_path):
    entries = make_entries({"a": 6, "b": 6})
    counts = write_splits(tmp_path, entries, SplitSpec(1, 1))
    assert counts == {"all": 12, "train": 8, "valid": 2, "test": 2, "unseen": 0}
    assert read_speakers(tmp_path / "speakers.json") == ["a", "b"]
    assert read_manifest(tmp_path / "all.jsonl") == sorted(entries, key=lambda e: e.id)
    line = json.loads((tmp_path / "train.jsonl").read_text().splitlines()[0])
    assert set(line) == {"id", "path", "speaker", "duration_s"}


def test_bad_manifest_names_the_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a", "path": "/a.wav", "speaker": "s", "duration_s": 1}\n{"id": "b"}\n')
    with pytest.raises(SpeechVQError, match=r"m.jsonl:2"):
        read_manifest(path)


def test_select_files_takes_the_first_or_every_speaker():
    # a manifest as written: each speaker's utterances together
    entries = [Utterance(f"{speaker}/{i}", f"{speaker}/{i}.wav", speaker, 1.0) for speaker in "abcd" for i in range(5)]
    assert [e.id for e in select_files(entries, 4)] == ["a/0", "a/1", "a/2", "a/3"]
    spread = select_files(entries, 4, spread=True)
    assert [e.id for e in spread] == ["a/0", "b/0", "c/0", "d/0"]
    assert {e.speaker for e in select_files(entries, 8, spread=True)} == set("abcd")
    assert len(set(e.id for e in select_files(entries, 19, spread=True))) == 19  # never the same file twice
    for spread in (False, True):
        assert select_files(entries, None, spread) == entries == select_files(entries, 50, spread)
        assert select_files(entries, 0, spread) == []

