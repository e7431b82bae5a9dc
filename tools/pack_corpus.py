#!/usr/bin/env python3
"""Make a compact Ogg Opus copy of a speaker-folder corpus, to move it where space or bandwidth is short.

The copy keeps the layout (CORPUS/<speaker>/**/<name>.ogg) and the utterance ids that `speechvq manifest folder`
derives from it, so splits made on the copy and on the original name the same utterances. Opus is lossy: train
on such a copy only when the original cannot travel (the shipped default model was trained on one because a GPU
machine took at most 64 MiB; see the model card in README.md). Files already in the output are kept, so an
interrupted run resumes.

    python tools/pack_corpus.py CORPUS OUT [--compression 0.94] [--workers 2]

`--compression` is libsndfile's Opus compression level in [0, 1]: 0.94 gave about 24 kbit/s on the offline corpus
(16 kHz speech), 0.9 about 34 kbit/s.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from speechvq.atomic import atomic_path
from speechvq.audio import AUDIO_EXTENSIONS


def pack_file(source: Path, target: Path, compression: float) -> int:
    """Transcode one file to Ogg Opus at its own rate and channel count; returns the bytes written."""
    import soundfile

    if not target.exists():
        samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
        with atomic_path(target) as tmp:
            soundfile.write(tmp, samples, rate, format="OGG", subtype="OPUS", compression_level=compression)
    return target.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("corpus", type=Path, help="CORPUS/<speaker>/**/*.{wav,flac,ogg}")
    parser.add_argument("out", type=Path, help="folder for the copy (created)")
    parser.add_argument("--compression", type=float, default=0.94, help="libsndfile Opus compression level, 0..1")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(f"pack_corpus: no such corpus folder: {args.corpus}", file=sys.stderr)
        return 2
    if not 0.0 <= args.compression <= 1.0:
        print("pack_corpus: --compression must be in [0, 1]", file=sys.stderr)
        return 2
    sources = sorted(p for p in args.corpus.rglob("*")
                     if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                     and not any(part.startswith(".") for part in p.relative_to(args.corpus).parts))
    if not sources:
        print(f"pack_corpus: no audio files under {args.corpus}", file=sys.stderr)
        return 2
    targets = [args.out / p.relative_to(args.corpus).with_suffix(".ogg") for p in sources]
    total = 0
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        jobs = pool.map(pack_file, sources, targets, [args.compression] * len(sources), chunksize=16)
        for size in tqdm(jobs, total=len(sources), desc="pack", unit="file"):
            total += size
    print(f"{len(sources)} files -> {args.out}: {total / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
