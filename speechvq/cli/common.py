"""Helpers shared by the subcommand handlers: progress bars on stderr, model loading."""

from __future__ import annotations

import argparse
import sys
from typing import Optional


def progress_bar(total: Optional[int], description: str, unit: str = "it", **kwargs):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True, file=sys.stderr, **kwargs)


def load_model_on(path: str, device_name: str):
    from ..checkpoint import load_model
    from ..train.distributed import resolve_device

    return load_model(path, resolve_device(device_name))


def decode_options(args: argparse.Namespace):
    """DecodeOptions from the --engine / --sequential / --chunk-s ... flags."""
    from ..errors import SpeechVQError
    from ..generation import DecodeOptions

    try:
        return DecodeOptions(engine=args.engine, mode="sequential" if args.sequential else "chunked",
                             chunk_s=args.chunk_s, overlap_s=args.overlap_s, crossfade_s=args.crossfade_s,
                             threads=args.threads, precision=args.precision, postfilter=args.postfilter,
                             best_of=args.best_of,
                             # 0 on the command line: one choice per chunk
                             choose_every_s=None if args.choose_every_s == 0 else args.choose_every_s)
    except ValueError as err:
        raise SpeechVQError(str(err)) from None
