"""Helpers shared by the subcommand handlers: progress bars on stderr, model loading."""

from __future__ import annotations

import sys
from typing import Optional


def progress_bar(total: Optional[int], description: str, unit: str = "it", **kwargs):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True, file=sys.stderr, **kwargs)


def load_model_on(path: str, device_name: str):
    from ..checkpoint import load_model
    from ..train.distributed import resolve_device

    return load_model(path, resolve_device(device_name))
