#!/usr/bin/env python3
"""How far back does the decoder look? The cost of cutting its past, by how much real past a sample kept.

The WaveNet decoder can see 2047 samples back (128 ms at 16 kHz), and voiced speech repeats every pitch period
(2.5-20 ms): a decoder that has learnt the harmonics predicts a voiced sample from the last period. This scores
the same samples of held-out utterances twice, teacher-forced (`analysis.history_costs`): with their real past,
and with everything before a point replaced by silence, as a training crop starting there sees it. The
difference, grouped by how many samples of real past each sample kept and by whether its pitch frame is voiced
(the pitch stream's tracker), is what that part of the past is worth to the model: nats per sample, each with
the 95% interval of its mean over files.

    python tools/history_use.py --manifest data/manifests/test.jsonl --out exp/history_use.json
    python tools/history_use.py --manifest test.jsonl --model exp/paper/best.pt --positions 8
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from speechvq.analysis import history_context, history_costs
from speechvq.assets import resolve_model
from speechvq.atomic import write_bytes_atomic
from speechvq.audio import load_audio
from speechvq.checkpoint import load_model
from speechvq.data.manifest import read_manifest
from speechvq.errors import SpeechVQError
from speechvq.evaluation import mean_interval
from speechvq.inference import scoring_inputs


def band_edges(receptive_field: int) -> list[int]:
    """Edges of the bands of real past, in samples: 0, 16, 32, ... doubling while below the receptive field,
    then the receptive field (2047 for the paper decoder: 0-16, ..., 1024-2047)."""
    edges, edge = [0], 16
    while edge < receptive_field:
        edges.append(edge)
        edge *= 2
    return edges + [receptive_field]


def shortest_file(model) -> int:
    """Samples a file needs for one cut point: the real past before it, one receptive field scored, the tail."""
    lead, tail = history_context(model.config.decoder, model.hop_length, model.lag_reach)
    return lead + model.hop_length * -(-(model.decoder.receptive_field + tail) // model.hop_length)


def file_costs(model, path: str, speaker: str | None, positions: int, edges: list[int]) -> dict | None:
    """One file's mean cost (cut - real past) and mean NLL with its real past per band, voiced and unvoiced:
    {"voiced": [[cost, nll, samples] per band], "unvoiced": ...}; None for a file too short to score."""
    hop, rf = model.hop_length, model.decoder.receptive_field
    wav = load_audio(path, model.sample_rate)[0]
    lead, _ = history_context(model.config.decoder, hop, model.lag_reach)
    room = wav.numel() - shortest_file(model)
    if room < 0:
        return None
    starts = sorted({lead + hop * int(i) for i in np.linspace(0, room // hop, positions)})
    inputs = scoring_inputs(model, wav, speaker)
    real, cut = history_costs(model, inputs.level_wav, inputs.local, inputs.vector, starts, period=inputs.period)
    voiced = torch.stack([inputs.voiced[s:s + rf] for s in starts])
    result = {}
    for name, mask in (("voiced", voiced), ("unvoiced", ~voiced)):
        rows = []
        for a, b in zip(edges[:-1], edges[1:]):
            m = mask[:, a:b]
            n = int(m.sum())
            rows.append([float((cut - real)[:, a:b][m].mean()) if n else math.nan,
                         float(real[:, a:b][m].mean()) if n else math.nan, n])
        result[name] = rows
    return result


def summarise(per_file: list[dict], edges: list[int]) -> dict:
    """Across files, per class and band: the mean cost and NLL, the cost's 95% interval half-width (1.96
    standard errors over files), the files and samples behind them."""
    summary = {}
    for name in ("voiced", "unvoiced"):
        rows = []
        for band in range(len(edges) - 1):
            values = [f[name][band] for f in per_file if f[name][band][2] > 0]
            interval = mean_interval([v[0] for v in values])  # None with a single file
            rows.append({"past_samples": [edges[band], edges[band + 1]],
                         "cost_nats": float(np.mean([v[0] for v in values])) if values else None,
                         "cost_ci95": interval["ci95"] if interval else None,
                         "nll_nats": float(np.mean([v[1] for v in values])) if values else None,
                         "files": len(values), "samples": int(sum(v[2] for v in values))})
        summary[name] = rows
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="held-out utterances")
    parser.add_argument("--model", default=None, help="checkpoint or exported model (default: the shipped model)")
    parser.add_argument("--max-files", type=int, default=None)
    parser.add_argument("--positions", type=int, default=4, help="points per file where the past is cut")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="write the table as JSON here")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.positions < 1:
            raise SpeechVQError(f"--positions must be positive, got {args.positions}")
        model = load_model(resolve_model(args.model)).eval()
        entries = read_manifest(args.manifest)[: args.max_files]
        edges = band_edges(model.decoder.receptive_field)
        per_file = []
        for entry in tqdm(entries, desc="history use", unit="file", dynamic_ncols=True):
            costs = file_costs(model, entry.path, entry.speaker, args.positions, edges)
            if costs is not None:
                per_file.append(costs)
        if not per_file:
            raise SpeechVQError("no file of the manifest is long enough to score "
                                f"({shortest_file(model) / model.sample_rate:.3f} s and more)")
    except SpeechVQError as err:
        print(f"history_use: {err}", file=sys.stderr)
        return 1
    summary = summarise(per_file, edges)
    ms = 1000.0 / model.sample_rate
    print(f"{len(per_file)} files, {args.positions} cut points each; cost = NLL with the past cut - NLL with the "
          f"real past (nats per sample, +- 95%)")
    print(f"{'real past kept':>28} | {'voiced cost':>17} | {'unvoiced cost':>17} | voiced NLL | unvoiced NLL")
    for v, u in zip(summary["voiced"], summary["unvoiced"]):
        a, b = v["past_samples"]
        cells = [f"{r['cost_nats']:+.4f} +- {r['cost_ci95']:.4f}" if r["cost_ci95"] is not None else "n/a"
                 for r in (v, u)]
        nlls = [f"{r['nll_nats']:.3f}" if r["nll_nats"] is not None else "n/a" for r in (v, u)]
        print(f"{a:>5}-{b:<5} ({a * ms:5.1f}-{b * ms:5.1f} ms) | {cells[0]:>17} | {cells[1]:>17} | "
              f"{nlls[0]:>10} | {nlls[1]:>12}")
    if args.out:
        report = {"model": str(args.model or "shipped"), "manifest": args.manifest, "files": len(per_file),
                  "positions": args.positions, "receptive_field": model.decoder.receptive_field, **summary}
        write_bytes_atomic(args.out, (json.dumps(report, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
