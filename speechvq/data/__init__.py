"""Data: corpus scanners, manifests and splits, downloads, and the training dataset."""

from .dataset import AudioCache, Batch, ResumableBatchSampler, SegmentDataset, collate_segments, prepare_utterance
from .manifest import (SplitSpec, Utterance, read_manifest, read_speakers, select_files, write_manifest,
                       write_speakers, write_splits)

__all__ = ["AudioCache", "Batch", "ResumableBatchSampler", "SegmentDataset", "SplitSpec", "Utterance",
           "collate_segments", "prepare_utterance", "read_manifest", "read_speakers", "select_files", "write_manifest",
           "write_speakers", "write_splits"]
