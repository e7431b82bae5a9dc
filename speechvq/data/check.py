"""Stage 2 of a recipe: read every utterance once, reject the unusable ones, and fill the audio cache.

Each file is decoded, resampled and level-normalised exactly as training will see it (and stored in the
cache, so training never decodes it again). Files that cannot be read, hold no samples, hold NaN or
infinite samples, or are digital silence are rejected: they are removed from the split manifests and
listed with their reason in `rejected.jsonl`. `all.jsonl` stays the untouched record of the corpus, so
running the check again gives the same result.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..atomic import write_bytes_atomic
from ..errors import SpeechVQError
from .dataset import AudioCache, to_float
from .manifest import SPLITS, read_manifest, write_manifest

SILENCE_DBFS = -60.0  # a prepared utterance quieter than this is silence (normalisation lifts speech to about -23)


@dataclass
class CheckReport:
    """What the check found: utterances kept, and the rejected ones with a reason each."""

    kept: int = 0
    kept_duration_s: float = 0.0
    rejected: dict[str, str] = field(default_factory=dict)
    split_sizes: dict[str, int] = field(default_factory=dict)


def _check_one(cache: AudioCache, path: str) -> Optional[str]:
    """None if the file is usable, else the reason it is not."""
    try:
        samples = to_float(cache.load(path))
    except SpeechVQError as err:
        return str(err)
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if 20 * math.log10(max(rms, 1e-10)) < SILENCE_DBFS:
        return f"silent (RMS below {SILENCE_DBFS:.0f} dBFS)"
    return None


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core already


def check_manifests(manifest_dir: str | os.PathLike, cache: AudioCache, workers: int = 2,
                    progress: Optional[Callable[[int], None]] = None) -> CheckReport:
    """Check every utterance of `manifest_dir/all.jsonl` and rewrite the split manifests without the bad ones.

    Args:
        manifest_dir: folder written by `write_splits`.
        cache: prepares and stores each utterance (its folder should be the training config's cache_dir).
        workers: processes decoding in parallel.
        progress: called with 1 per utterance checked.

    Returns:
        the report (also written to `check.json`; rejected utterances to `rejected.jsonl`).
    """
    manifest_dir = Path(manifest_dir)
    entries = read_manifest(manifest_dir / "all.jsonl")
    report = CheckReport()
    with ProcessPoolExecutor(max_workers=max(1, workers), initializer=_init_worker) as pool:
        reasons = pool.map(_check_one, [cache] * len(entries), [e.path for e in entries], chunksize=8)
        for entry, reason in zip(entries, reasons):
            if progress is not None:
                progress(1)
            if reason is None:
                report.kept += 1
                report.kept_duration_s += entry.duration_s
            else:
                report.rejected[entry.id] = reason
    for split in SPLITS:
        path = manifest_dir / f"{split}.jsonl"
        if path.is_file():
            kept = [e for e in read_manifest(path) if e.id not in report.rejected]
            write_manifest(path, kept)
            report.split_sizes[split] = len(kept)
    lines = [json.dumps({"id": e.id, "path": e.path, "reason": report.rejected[e.id]})
             for e in entries if e.id in report.rejected]
    write_bytes_atomic(manifest_dir / "rejected.jsonl", "".join(line + "\n" for line in lines).encode("utf-8"))
    summary = {"kept": report.kept, "kept_hours": round(report.kept_duration_s / 3600, 3),
               "rejected": len(report.rejected), "split_sizes": report.split_sizes}
    write_bytes_atomic(manifest_dir / "check.json", (json.dumps(summary, indent=1) + "\n").encode("utf-8"))
    if report.split_sizes.get("train", 1) == 0:
        raise SpeechVQError(f"no usable training utterance left in {manifest_dir}/train.jsonl")
    return report
