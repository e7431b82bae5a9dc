"""Training crops drawn on the training device from the whole prepared training set held there.

The worker loader (`SegmentDataset` + DataLoader) memory-maps one .npy per item in worker processes and copies
every batch from the host; on a GPU that feeds a step of a few tens of milliseconds poorly. Here the prepared
int16 audio of every training utterance is concatenated into one tensor on the device (4.6 h at 16 kHz is
about 530 MB), and a batch is one gather from it: the host only decides which utterances and offsets, a few
hundred bytes per batch.

The order of utterances is `ResumableBatchSampler`'s (uniform over utterances, a fresh permutation per epoch),
and the crop offsets of global batch k come from a generator seeded with (seed, k): a batch is a pure function
of (seed, k, rank), so a resumed run continues exactly, as with the worker loader (the two loaders draw
different offsets, so their batches differ).
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch

from ..errors import SpeechVQError
from .dataset import _INT16_SCALE, AudioCache, Batch, ResumableBatchSampler, speaker_table
from .manifest import Utterance

log = logging.getLogger("speechvq.data")


class DeviceCorpus:
    """Every utterance of a manifest, prepared, as one int16 tensor on `device`.

    Args:
        entries: manifest entries.
        speakers: the speaker table; every entry's speaker must be in it.
        cache: where prepared audio comes from (prepared now where missing).
        device: where the samples live.
        progress: called with 1 after each utterance is read (e.g. a tqdm bar's update).

    Attributes:
        samples: int16 `[N]`, all utterances end to end (N = total samples).
        starts, lengths: int64 `[U]`, where each usable utterance begins in `samples` and its length.
        speaker_rows: int64 `[U]`, each utterance's row of the speaker table.
        skipped: utterances that could not be read (left out, with a warning each).

    Raises:
        SpeechVQError: an empty manifest, unknown speakers, or no readable utterance at all.
    """

    def __init__(self, entries: Sequence[Utterance], speakers: Sequence[str], cache: AudioCache,
                 device: torch.device | str, progress: Optional[Callable[[int], None]] = None):
        table = speaker_table(entries, speakers)
        pieces, rows, self.skipped = [], [], 0
        for entry in entries:
            try:
                samples = cache.load(entry.path)
            except SpeechVQError as err:
                log.warning("skipping %s: %s", entry.id, err)
                self.skipped += 1
                continue
            finally:
                if progress is not None:
                    progress(1)
            if samples.dtype != np.int16:  # no cache folder: float32 straight from the decoder
                samples = np.round(np.clip(samples, -1.0, 1.0) * _INT16_SCALE).astype(np.int16)
            if samples.shape[0] == 0:
                self.skipped += 1
                continue
            pieces.append(np.asarray(samples))
            rows.append(table[entry.speaker])
        if not pieces:
            raise SpeechVQError("no training utterance could be read")
        lengths = np.array([p.shape[0] for p in pieces], dtype=np.int64)
        self.samples = torch.from_numpy(np.concatenate(pieces)).to(device)
        self.lengths = torch.from_numpy(lengths)
        self.starts = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64))
        self.speaker_rows = torch.tensor(rows, dtype=torch.long)
        self.device = self.samples.device

    def __len__(self) -> int:
        return int(self.lengths.numel())

    @property
    def nbytes(self) -> int:
        """Bytes the samples take on the device."""
        return self.samples.numel() * self.samples.element_size()

    def crops(self, items: Sequence[int], offsets: Sequence[int] | np.ndarray | torch.Tensor,
              segment_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops of `segment_samples` samples starting `offsets` into utterances `items`, gathered on the device;
        past an utterance's end the crop is silence.

        Returns:
            (float32 `[B, 1, segment_samples]` in [-1, 1], int64 speaker rows `[B]`), both on the corpus's device.
        """
        index = torch.as_tensor(np.asarray(items, dtype=np.int64))
        first = self.starts[index] + torch.as_tensor(np.asarray(offsets, dtype=np.int64))
        remaining = self.starts[index] + self.lengths[index] - first  # samples left in the utterance
        # one small host-to-device copy per batch, from page-locked memory so that it does not wait
        header = torch.stack([first, remaining, self.speaker_rows[index]])
        if self.device.type == "cuda":
            header = header.pin_memory()
        header = header.to(self.device, non_blocking=True)
        position = torch.arange(segment_samples, device=self.device)
        gathered = self.samples[(header[0, :, None] + position).clamp(max=self.samples.numel() - 1)]
        inside = position < header[1, :, None]
        wav = torch.where(inside, gathered.float() / _INT16_SCALE, torch.zeros((), device=self.device))
        return wav.unsqueeze(1), header[2]


class DeviceBatches:
    """An endless, resumable stream of `Batch`es cropped on the device from a `DeviceCorpus`.

    Args:
        corpus: the device-resident training set.
        batch_size: crops per batch per rank.
        segment_samples: crop length.
        seed: order and offset seed.
        start_batch: first global batch (the batches a resumed run already consumed).
        rank, world_size: this process's place in distributed training.
    """

    def __init__(self, corpus: DeviceCorpus, batch_size: int, segment_samples: int, seed: int = 0,
                 start_batch: int = 0, rank: int = 0, world_size: int = 1):
        self.corpus, self.segment_samples, self.seed = corpus, segment_samples, seed
        self.sampler = ResumableBatchSampler(len(corpus), batch_size, seed, start_batch=start_batch, rank=rank,
                                             world_size=world_size)
        self.rank = rank

    def epoch_of(self, k: int) -> float:
        """Fractional epoch (over utterances) reached after `k` global batches."""
        return self.sampler.epoch_of(k)

    def batch(self, k: int) -> Batch:
        """Global batch `k` for this rank: wav float32 `[B, 1, S]` and speaker int64 `[B]` on the device."""
        items = [index for index, _ in self.sampler.batch(k)]
        lengths = self.corpus.lengths[items].numpy()
        uniform = np.random.default_rng([self.seed, k, self.rank]).random(len(items))
        spare = np.maximum(lengths - self.segment_samples, 0)
        offsets = np.minimum((uniform * (spare + 1)).astype(np.int64), spare)
        wav, speaker = self.corpus.crops(items, offsets, self.segment_samples)
        return Batch(wav, speaker, 0)

    def __iter__(self) -> Iterator[Batch]:
        k = self.sampler.start_batch
        while True:
            yield self.batch(k)
            k += 1
