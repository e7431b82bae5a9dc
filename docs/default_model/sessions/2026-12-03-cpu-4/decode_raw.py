#!/usr/bin/env python3
"""Decode the test split with the shipped model without the pitch post-filter, as `speechvq eval` and
tools/ship_check.py do (one file at a time, the engine pinned by `evaluation.pinned_decoding`: native fp32 here,
temperature 0.6 unless TEMPERATURE says otherwise), and keep each decode (float32, at the input's level) with its pitch symbols, so that
score_gains.py can apply the comb afterwards at any gain. Resumes: a file already decoded is skipped.

    python decode_raw.py OUT SEEDS TEST_MANIFEST [TEMPERATURE]   # e.g. raw 0,1 data/ship/manifests/test.jsonl
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from speechvq.assets import resolve_model
from speechvq.audio import load_audio
from speechvq.codec import Codec
from speechvq.data.manifest import read_manifest
from speechvq.evaluation import COMPARISON_PRECISION, pinned_decoding
from speechvq.inference import decode_codes

out, seeds, manifest = Path(sys.argv[1]), [int(s) for s in sys.argv[2].split(",")], sys.argv[3]
temperature = float(sys.argv[4]) if len(sys.argv) > 4 else 0.6
codec = Codec.from_checkpoint(resolve_model(None), "cpu")
model = codec.model
options, decoding = pinned_decoding(model.decoder, "auto", COMPARISON_PRECISION, 0.0)
print(decoding, flush=True)
entries = read_manifest(manifest)
t0 = time.time()
for seed in seeds:
    (out / f"seed{seed}").mkdir(parents=True, exist_ok=True)
    for i, entry in enumerate(entries):
        path = out / f"seed{seed}" / (entry.id.replace("/", "__") + ".pt")
        if path.exists():
            continue
        wav = load_audio(entry.path, model.sample_rate)[0]
        seen = entry.speaker in model.speakers
        data = codec.compress(wav, speaker=entry.speaker if seen and model.has_voices else None)
        encoded, _ = codec.read(data)
        decoded = decode_codes(model, encoded, temperature=temperature, seed=seed, options=options)
        torch.save({"decoded": decoded, "pitch": encoded.pitch, "gain": encoded.gain}, str(path) + ".tmp")
        Path(str(path) + ".tmp").rename(path)
        if i % 20 == 0:
            print(seed, i, f"{time.time() - t0:.0f} s", flush=True)
print("done", f"{time.time() - t0:.0f} s")
