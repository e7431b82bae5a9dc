"""Prepared-audio cache, crops, the resumable sampler, and skipping unreadable files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from speechvq.audio import rms_dbfs
from speechvq.data import AudioCache, ResumableBatchSampler, SegmentDataset, collate_segments
from speechvq.data.check import check_manifests
from speechvq.data.corpora import scan_corpus
from speechvq.data.manifest import SplitSpec, Utterance, read_manifest, write_splits
from speechvq.errors import SpeechVQError
from tests.helpers import make_folder_corpus, voiced_signal


def test_cache_prepares_once_at_model_rate_and_level(tmp_path):
    source = tmp_path / "a.wav"
    soundfile.write(source, np.stack([voiced_signal(44100, 44100).numpy() * 0.05] * 2, axis=1), 44100)
    cache = AudioCache(tmp_path / "cache", 16000, -23.0)
    first = cache.load(source)
    assert first.dtype == np.int16 and abs(first.shape[0] - 16000) <= 1
    assert abs(rms_dbfs(torch.from_numpy(first / 32767.0)) + 23.0) < 0.1
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1
    # a second read comes from the cache (memory-mapped), with the same samples
    again = cache.load(source)
    assert isinstance(again, np.memmap) and np.array_equal(np.asarray(again), np.asarray(first))
    # another level is another cache entry; an edited source is prepared again
    AudioCache(tmp_path / "cache", 16000, -30.0).load(source)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2
    uncached = AudioCache(None, 16000, -23.0).load(source)
    assert uncached.dtype == np.float32 and np.abs(uncached - first / 32767.0).max() < 1e-4


def test_crops_are_a_function_of_seed_epoch_and_index(tmp_path):
    paths = make_folder_corpus(tmp_path / "corpus", speakers=2, utterances=2, seconds=0.5)
    entries = scan_corpus("folder", tmp_path / "corpus").entries
    dataset = SegmentDataset(entries, ["spk0", "spk1"], AudioCache(None, 16000, -23.0), segment_samples=1000, seed=3)
    a, b = dataset[(1, 0)], dataset[(1, 0)]
    assert torch.equal(a["wav"], b["wav"]) and a["wav"].shape == (1, 1000)
    assert not torch.equal(dataset[(1, 1)]["wav"], a["wav"])  # another epoch, another crop
    assert a["speaker"] == 0 and dataset[(3, 0)]["speaker"] == 1
    long_crop = SegmentDataset(entries, ["spk0", "spk1"], AudioCache(None, 16000, None), segment_samples=9000)
    padded = long_crop[(0, 0)]["wav"]
    assert padded.shape == (1, 9000) and padded[0, 8000:].abs().max() == 0  # 0.5 s of audio, then silence
    assert len(paths) == 4


def test_speed_perturbation_moves_pitch_within_its_range(tmp_path):
    # a 200 Hz tone played at speed f comes out at 200 f Hz: every crop a pseudo-speaker, f in [0.9, 1.1]
    source = tmp_path / "spk0" / "tone.wav"
    source.parent.mkdir()
    t = np.arange(16000 * 2) / 16000
    soundfile.write(source, (0.3 * np.sin(2 * np.pi * 200.0 * t)).astype(np.float32), 16000)
    entries = scan_corpus("folder", tmp_path).entries
    plain = SegmentDataset(entries, ["spk0"], AudioCache(None, 16000, None), 8000, seed=1)
    perturbed = SegmentDataset(entries, ["spk0"], AudioCache(None, 16000, None), 8000, seed=1, speed_perturb=0.1)
    pitches = []
    for epoch in range(12):
        wav = perturbed[(0, epoch)]["wav"][0].numpy()
        assert wav.shape == (8000,)
        spectrum = np.abs(np.fft.rfft(wav * np.hanning(8000)))
        pitches.append(np.argmax(spectrum) * 16000 / 8000)
    assert all(178 <= p <= 222 for p in pitches) and max(pitches) - min(pitches) >= 10  # bins of 2 Hz
    base = np.abs(np.fft.rfft(plain[(0, 0)]["wav"][0].numpy() * np.hanning(8000)))
    assert np.argmax(base) * 2 == 200


def test_unknown_speaker_and_empty_manifest_are_errors():
    entries = [Utterance("x", "/x.wav", "carol", 1.0)]
    with pytest.raises(SpeechVQError, match="carol"):
        SegmentDataset(entries, ["alice"], AudioCache(None, 16000, None), 100)
    with pytest.raises(SpeechVQError, match="empty"):
        SegmentDataset([], ["alice"], AudioCache(None, 16000, None), 100)


def test_unreadable_file_is_skipped_and_counted(tmp_path, caplog):
    make_folder_corpus(tmp_path / "corpus", speakers=1, utterances=2, seconds=0.2)
    entries = scan_corpus("folder", tmp_path / "corpus").entries
    (tmp_path / "corpus" / "spk0" / "utt01.wav").write_bytes(b"garbage now")
    dataset = SegmentDataset(entries, ["spk0"], AudioCache(tmp_path / "cache", 16000, -23.0), 500)
    batch = collate_segments([dataset[(0, 0)], dataset[(1, 0)]])
    assert batch.wav.shape == (1, 1, 500) and batch.skipped == 1
    assert "utt01" in caplog.text
    empty = collate_segments([None, None])
    assert empty.wav.shape[0] == 0 and empty.skipped == 2


def test_sampler_order_is_deterministic_resumable_and_sharded():
    full = ResumableBatchSampler(10, 4, seed=5)
    stream = iter(full)
    batches = [next(stream) for _ in range(6)]
    # every epoch is a permutation of all items
    flat = [key for batch in batches for key in batch]
    assert sorted(i for i, epoch in flat if epoch == 0) == list(range(10))
    assert sorted(i for i, epoch in flat if epoch == 1) == list(range(10))
    # starting at batch 4 gives exactly batches 4 and 5
    resumed = iter(ResumableBatchSampler(10, 4, seed=5, start_batch=4))
    assert [next(resumed), next(resumed)] == batches[4:6]
    # two ranks split each global batch of 2 x 2 without overlap, covering the single-rank stream of batch 2
    rank0, rank1 = (ResumableBatchSampler(10, 2, seed=5, rank=r, world_size=2) for r in (0, 1))
    assert rank0.batch(0) + rank1.batch(0) == ResumableBatchSampler(10, 4, seed=5).batch(0)
    assert ResumableBatchSampler(10, 4, seed=6).batch(0) != full.batch(0)


def test_check_rejects_bad_files_and_rewrites_splits(tmp_path):
    make_folder_corpus(tmp_path / "corpus", speakers=2, utterances=4, seconds=0.2)
    soundfile.write(tmp_path / "corpus" / "spk0" / "silent.wav", np.zeros(3200, np.float32), 16000)
    nan_audio = np.full(3200, np.nan, np.float32)
    soundfile.write(tmp_path / "corpus" / "spk1" / "nan.wav", nan_audio, 16000, subtype="FLOAT")
    entries = scan_corpus("folder", tmp_path / "corpus").entries
    (tmp_path / "corpus" / "spk1" / "utt03.wav").write_bytes(b"corrupted after the scan")
    manifests = tmp_path / "manifests"
    write_splits(manifests, entries, SplitSpec(1, 1))
    report = check_manifests(manifests, AudioCache(tmp_path / "cache", 16000, -23.0), workers=1)
    assert set(report.rejected) == {"spk0/silent", "spk1/nan", "spk1/utt03"}
    assert "silent" in report.rejected["spk0/silent"] and "NaN" in report.rejected["spk1/nan"]
    kept = {e.id for split in ("train", "valid", "test") for e in read_manifest(manifests / f"{split}.jsonl")}
    assert kept.isdisjoint(report.rejected) and len(kept) == 7
    assert len(read_manifest(manifests / "all.jsonl")) == 10  # the record of the corpus stays whole
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 8  # the readable ones, silence included
    again = check_manifests(manifests, AudioCache(tmp_path / "cache", 16000, -23.0), workers=1)
    assert again.rejected == report.rejected and again.split_sizes == report.split_sizes
