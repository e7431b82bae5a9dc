"""Training examples: level-normalised audio at the model rate (cached once), random crops, resumable order.

    AudioCache        decode + resample + normalise an utterance once; later reads memory-map an int16 .npy
    SegmentDataset    item (index, epoch) -> a crop whose offset depends only on (seed, epoch, index)
    ResumableBatchSampler   an endless, seeded order of items; batch k is the same whenever it is asked for,
                            so a resumed run continues with exactly the batches it would have seen
    collate_segments  stacks the items, dropping (and counting) files that could not be read

Whatever the number of DataLoader workers, a batch is a pure function of (seed, batch number, rank).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..atomic import atomic_path
from ..audio import load_audio, normalize_level, resample
from ..errors import SpeechVQError
from .manifest import Utterance

log = logging.getLogger("speechvq.data")
_INT16_SCALE = 32767.0


def prepare_utterance(path: str | os.PathLike, sample_rate: int, level_dbfs: Optional[float]) -> np.ndarray:
    """Load one utterance as the model sees it: mono, at `sample_rate`, normalised to `level_dbfs`.

    Returns:
        float32 `[T]` in [-1, 1].

    Raises:
        SpeechVQError: unreadable or empty file, or samples that are NaN or infinite.
    """
    wav = load_audio(path, sample_rate)[0]
    if not torch.isfinite(wav).all():
        raise SpeechVQError(f"audio file {path} holds NaN or infinite samples")
    wav, _ = normalize_level(wav, level_dbfs)
    return wav.clamp(-1.0, 1.0).numpy()


class AudioCache:
    """Prepared utterances stored as int16 .npy files, keyed by file identity and preparation settings.

    The key covers the absolute path, size and modification time of the source and the sample rate and
    level, so an edited file or a changed config is prepared again. Writes are atomic, so DataLoader
    workers racing on the same file are harmless.

    Args:
        folder: where the .npy files live; None disables caching (every read decodes the file).
        sample_rate: model rate in Hz.
        level_dbfs: target RMS level, or None.
    """

    def __init__(self, folder: Optional[str | os.PathLike], sample_rate: int, level_dbfs: Optional[float]):
        self.folder = Path(folder) if folder is not None else None
        self.sample_rate = sample_rate
        self.level_dbfs = level_dbfs

    def cache_path(self, source: str | os.PathLike) -> Path:
        """Where the prepared copy of `source` lives (whether or not it exists yet)."""
        if self.folder is None:
            raise ValueError("this cache has no folder")
        status = Path(source).stat()
        identity = f"{Path(source).resolve()}|{status.st_size}|{status.st_mtime_ns}|{self.sample_rate}|{self.level_dbfs}"
        key = hashlib.sha1(identity.encode()).hexdigest()
        return self.folder / key[:2] / f"{key}.npy"

    def load(self, source: str | os.PathLike) -> np.ndarray:
        """The prepared utterance: int16 `[T]` (memory-mapped) from the cache, else float32 `[T]`.

        Raises:
            SpeechVQError: see `prepare_utterance`; also a missing source file.
        """
        if self.folder is None:
            return prepare_utterance(source, self.sample_rate, self.level_dbfs)
        if not Path(source).is_file():
            raise SpeechVQError(f"no such audio file: {source}")
        path = self.cache_path(source)
        if not path.is_file():
            wav = prepare_utterance(source, self.sample_rate, self.level_dbfs)
            with atomic_path(path) as tmp:
                np.save(tmp, np.round(wav * _INT16_SCALE).astype(np.int16), allow_pickle=False)
        return np.load(path, mmap_mode="r", allow_pickle=False)


def to_float(samples: np.ndarray) -> np.ndarray:
    """float32 samples in [-1, 1] from either cache format (int16 or float32)."""
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / _INT16_SCALE
    return np.asarray(samples, dtype=np.float32)


def speaker_table(entries: Sequence[Utterance], speakers: Sequence[str]) -> dict[str, int]:
    """{speaker name: row} of the speaker table, checked against a manifest's entries.

    Raises:
        SpeechVQError: an empty manifest, or entries whose speaker is not in the table.
    """
    table = {name: row for row, name in enumerate(speakers)}
    unknown = sorted({e.speaker for e in entries} - set(table))
    if unknown:
        raise SpeechVQError(f"manifest speakers missing from the speaker table: {', '.join(unknown[:5])}")
    if not entries:
        raise SpeechVQError("the manifest is empty")
    return table


class SegmentDataset(Dataset):
    """Fixed-length crops of manifest utterances with their speaker index.

    Items are addressed as `(index, epoch)`: the crop offset is drawn from a generator seeded with
    (seed, epoch, index), so it does not depend on worker processes or on the order of requests.
    Utterances shorter than the segment are padded with silence at the end.

    Args:
        entries: manifest entries.
        speakers: the speaker table; every entry's speaker must be in it.
        cache: where prepared audio comes from.
        segment_samples: crop length in samples.
        seed: crop seed.
        speed_perturb: p > 0 plays each crop at a random speed in [1 - p, 1 + p] (resampled, so pitch and
            formants move with it): every factor is a new pseudo-speaker, which widens the voices an
            utterance-mode model learns from (as x-vector recipes perturb speed); 0 leaves crops as recorded.
    """

    def __init__(self, entries: Sequence[Utterance], speakers: Sequence[str], cache: AudioCache,
                 segment_samples: int, seed: int = 0, speed_perturb: float = 0.0):
        table = speaker_table(entries, speakers)
        self.entries = list(entries)
        self.speaker_rows = [table[e.speaker] for e in self.entries]
        self.cache = cache
        self.segment_samples = segment_samples
        self.seed = seed
        self.speed_perturb = speed_perturb

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: tuple[int, int]) -> Optional[dict]:
        """A crop `{"wav": float32 [1, S], "speaker": int, "index": int}`, or None if the file is unusable."""
        index, epoch = key
        entry = self.entries[index]
        try:
            samples = self.cache.load(entry.path)
        except SpeechVQError as err:
            log.warning("skipping %s: %s", entry.id, err)
            return None
        rng = np.random.default_rng([self.seed, epoch, index])
        # speed factor f in hundredths (so the resampling ratio f/1 stays a small fraction): f * S samples in
        speed = 100 + int(rng.integers(-round(100 * self.speed_perturb), round(100 * self.speed_perturb) + 1)) \
            if self.speed_perturb > 0 else 100
        span = -(-self.segment_samples * speed // 100)
        spare = samples.shape[0] - span
        offset = int(rng.integers(0, spare + 1)) if spare > 0 else 0
        crop = np.zeros(span, dtype=np.float32)
        piece = to_float(samples[offset:offset + span])
        crop[:piece.shape[0]] = piece
        wav = torch.from_numpy(crop)
        if speed != 100:
            wav = resample(wav, speed, 100)[: self.segment_samples]
        return {"wav": wav.unsqueeze(0), "speaker": self.speaker_rows[index], "index": index}


@dataclass
class Batch:
    """A stacked batch: wav float32 `[B, 1, S]`, speaker int64 `[B]`, and how many items were unusable."""

    wav: torch.Tensor
    speaker: torch.Tensor
    skipped: int

    def pin_memory(self) -> "Batch":
        """Page-locked copies, so that the DataLoader's pin_memory option applies to this type too."""
        return Batch(self.wav.pin_memory(), self.speaker.pin_memory(), self.skipped)

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.wav.to(device, non_blocking=True), self.speaker.to(device, non_blocking=True), self.skipped)


def collate_segments(items: list[Optional[dict]]) -> Batch:
    """Stack dataset items, dropping the None of unreadable files (counted in `skipped`)."""
    usable = [item for item in items if item is not None]
    if not usable:
        return Batch(torch.zeros(0, 1, 0), torch.zeros(0, dtype=torch.long), len(items))
    return Batch(torch.stack([item["wav"] for item in usable]),
                 torch.tensor([item["speaker"] for item in usable], dtype=torch.long), len(items) - len(usable))


class ResumableBatchSampler(Sampler):
    """An endless sequence of batches of `(index, epoch)` keys, deterministic and resumable.

    The item stream is the concatenation of per-epoch permutations of range(n_items) (permutation e drawn
    from a generator seeded with seed and e). Global batch k covers stream positions
    [k * B * W, (k + 1) * B * W); rank r takes its B consecutive positions in it. Starting at batch k
    costs nothing: no items are drawn and discarded.

    Args:
        n_items: dataset size.
        batch_size: items per batch per rank (B).
        seed: order seed.
        start_batch: first global batch to yield (the batches a resumed run has already consumed).
        rank, world_size: this process's place in distributed training (W = world_size).
    """

    def __init__(self, n_items: int, batch_size: int, seed: int = 0, start_batch: int = 0, rank: int = 0,
                 world_size: int = 1):
        if n_items < 1 or batch_size < 1:
            raise ValueError("need at least one item and a positive batch size")
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.start_batch, self.rank, self.world_size = start_batch, rank, world_size
        self._epoch_cache: dict[int, list[int]] = {}

    def _permutation(self, epoch: int) -> list[int]:
        if epoch not in self._epoch_cache:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch_cache = {epoch: torch.randperm(self.n_items, generator=generator).tolist()}
        return self._epoch_cache[epoch]

    def batch(self, k: int) -> list[tuple[int, int]]:
        """The keys of global batch `k` for this rank."""
        start = (k * self.world_size + self.rank) * self.batch_size
        keys = []
        for position in range(start, start + self.batch_size):
            epoch, offset = divmod(position, self.n_items)
            keys.append((self._permutation(epoch)[offset], epoch))
        return keys

    def epoch_of(self, k: int) -> float:
        """Fractional epoch reached after `k` global batches (for logging)."""
        return k * self.world_size * self.batch_size / self.n_items

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        k = self.start_batch
        while True:
            yield self.batch(k)
            k += 1
