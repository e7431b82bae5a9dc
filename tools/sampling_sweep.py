#!/usr/bin/env python3
"""Decoded quality of one model at several sampling temperatures and best-of counts, on the same utterances, codes and seed.

Sampling needs no retraining, so it is the cheapest quality knob: a lower temperature (the LPCNet "sharpening"
exponent 1 + b is a temperature of 1 / (1 + b)) trades the decoder's noise for a flatter, more buzzy output;
`--best-of 1 4` also decodes with every chunk sampled 4 times and the sample nearest the codes kept
(`DecodeOptions.best_of`), at every temperature, chosen every 0.064 s as the candidates are generated (decoding's
default, `DecodeOptions.choose_every_s`), and `--choose-every 0 0.128` decodes each count above 1 twice instead:
chosen once per chunk (0) and every 0.128 s.
The first temperature with the first count is the reference that the others are paired against.
Each setting is a full `speechvq eval` run (the real .svq codes, chunk-parallel decoding), scored with PESQ-WB,
STOI, MCD and the non-intrusive DNSMOS (the `eval` extra); the inputs' own DNSMOS is printed as the ceiling.
Every setting decodes with one engine, resolved once (`--engine auto`: this machine's fastest), so settings
differ in temperature alone. With `--seeds 0 1 ...` each file is decoded under every seed and its scores
averaged over them before settings are paired (one seed's draw moves a file's scores as much as a small
change of setting does). Recordings without speech (`evaluation.files_without_speech`) are decoded but left
out of the means and differences. A setting's decode already under --out with the same model, files, seed
and engine is read back, not redone: an interrupted sweep resumes.

    python tools/sampling_sweep.py --manifest data/manifests/test.jsonl --max-files 24 --max-seconds 4 \
        --temperatures 1.0 0.9 0.8 0.7 --seeds 0 1 --out exp/sweep
    python tools/sampling_sweep.py --manifest data/manifests/test.jsonl --max-files 0 --max-seconds 0 \
        --temperatures 0.6 --best-of 1 4 8 --choose-every 0 0.128 --seeds 0 1 --out exp/best_of  # whole test split
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from speechvq.assets import resolve_model
from speechvq.audio import load_audio
from speechvq.atomic import write_bytes_atomic
from speechvq.codec import Codec
from speechvq.data.manifest import read_manifest, select_files
from speechvq.errors import SpeechVQError
from speechvq.evaluation import (COMPARISON_PRECISION, average_over_seeds, evaluate_seeds, files_without_speech,
                                 paired_difference, pinned_decoding)
from speechvq.generation import DEFAULT_CHOOSE_EVERY_S, ENGINES
from speechvq.generation.packed import PRECISIONS
from speechvq.metrics import dnsmos, finite_mean, optional_metrics_available
from speechvq.postfilter import DEFAULT_POSTFILTER_GAIN

COLUMNS = [("pesq_wb", "PESQ-WB", 2), ("stoi", "STOI", 3), ("dnsmos_ovrl", "DNSMOS", 2), ("mcd_db", "MCD (dB)", 2),
           ("ffe", "FFE", 3), ("si_sdr_db", "SI-SDR (dB)", 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint (.pt); default: the shipped model")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--max-files", type=int, default=24, help="0: every file of the manifest")
    parser.add_argument("--spread", action="store_true",
                        help="with --max-files: N utterances spread evenly over the manifest (every speaker)")
    parser.add_argument("--max-seconds", type=float, default=4.0, help="0: whole files")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.9, 0.8, 0.7])
    parser.add_argument("--best-of", type=int, nargs="+", default=[1], metavar="N",
                        help="samples per chunk, the one nearest the codes kept (1: plain sampling)")
    parser.add_argument("--choose-every", type=float, nargs="+", default=[DEFAULT_CHOOSE_EVERY_S], metavar="SECONDS",
                        help="with a best-of count above 1: choose every SECONDS as the samples are generated "
                             f"(0: once per chunk; default {DEFAULT_CHOOSE_EVERY_S:g}, as decoding's); each value "
                             "is a setting of its own")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="sampling seeds; each file's scores are averaged over them")
    parser.add_argument("--engine", default="auto", choices=ENGINES,
                        help="decoding engine of every setting (auto: this machine's fastest, chosen once)")
    parser.add_argument("--precision", default=COMPARISON_PRECISION, choices=PRECISIONS,
                        help="kernel precision (default full: the same audio whichever engine auto picks)")
    parser.add_argument("--postfilter", type=float, default=DEFAULT_POSTFILTER_GAIN, metavar="GAIN",
                        help="pitch post-filter gain where the model has a pitch stream (0: off)")
    parser.add_argument("--out", required=True, help="folder for each setting's eval report and sweep.json")
    args = parser.parse_args()
    max_files, max_seconds = args.max_files or None, args.max_seconds or None

    missing = [name for name, ok in optional_metrics_available().items() if not ok]
    if missing:
        print(f"sampling_sweep: {', '.join(missing)} missing: pip install 'speechvq[eval]'", file=sys.stderr)
        return 1
    try:
        codec = Codec.from_checkpoint(resolve_model(args.model), "cpu")
        entries = select_files(read_manifest(args.manifest), max_files, args.spread)
        if not entries:
            raise SpeechVQError(f"{args.manifest}: no utterances")
        pinned = pinned_decoding(codec.model.decoder, args.engine, args.precision, args.postfilter)
        excluded = set(files_without_speech(entries))
    except SpeechVQError as err:
        print(f"sampling_sweep: {err}", file=sys.stderr)
        return 1
    out = Path(args.out)
    rate = codec.model.sample_rate
    inputs = [dnsmos(load_audio(e.path, rate)[0][: int(max_seconds * rate) if max_seconds else None], rate)["dnsmos_ovrl"]
              for e in entries if e.id not in excluded]
    keys = [key for key, _, _ in COLUMNS]
    rows, per_file = [], []
    # (temperature, best of, choose every (s) or None: once per chunk); one candidate is chosen never
    settings = [(temperature, n, every or None) for n in args.best_of
                for every in (args.choose_every if n > 1 else [0.0]) for temperature in args.temperatures]
    for temperature, n, every in settings:
        # the engine and kernels resolved once, named: no new choice by timing
        decoding = pinned_decoding(codec.model.decoder, pinned[0].engine, pinned[0].precision, args.postfilter, n,
                                   every)
        # plain sampling keeps the folders of old sweeps
        name = f"T{temperature:g}" + ("" if n == 1 else f"-best{n}") + ("" if every is None else f"-every{every:g}")
        reports = evaluate_seeds(codec, entries, out / name, decoding, args.seeds, max_seconds, temperature,
                                 f"T={temperature:g}" + ("" if n == 1 else f", {best_of_label(n, every)}"))
        merged = average_over_seeds([{"files": [item for item in report["files"] if item["id"] not in excluded]}
                                     for report in reports], keys)
        rows.append({"temperature": temperature, "best_of": n, "choose_every_s": every, **merged["mean"]})
        per_file.append(merged["files"])
    result = {"model": str(resolve_model(args.model)), "files": len(entries), "without_speech": sorted(excluded),
              "max_seconds": max_seconds, "seeds": args.seeds, "decoding": pinned[1],
              "input_dnsmos_ovrl": finite_mean(inputs), "rows": rows,
              "paired": paired_differences(settings, per_file)}
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "sweep.json", (json.dumps(result, indent=1) + "\n").encode("utf-8"))
    print(f"{len(entries) - len(excluded)} utterances with speech"
          + (f" ({len(excluded)} without left out: {', '.join(sorted(excluded))})" if excluded else "")
          + (f", first {max_seconds:g} s of each" if max_seconds else ", whole files")
          + f", seeds {', '.join(map(str, args.seeds))}, {pinned[1]['engine']} engine at {pinned[1]['precision']}; "
          "inputs' DNSMOS "
          + ("n/a" if result["input_dnsmos_ovrl"] is None else f"{result['input_dnsmos_ovrl']:.2f}"))
    print("| temperature | best of | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("| --- " * (len(COLUMNS) + 2) + "|")
    for row in rows:
        cells = ["n/a" if row[key] is None else f"{row[key]:.{digits}f}" for key, _, digits in COLUMNS]
        print(f"| {row['temperature']:g} | {best_of_label(row['best_of'], row['choose_every_s'])} | "
              + " | ".join(cells) + " |")
    print_paired(result["paired"], settings[0])
    return 0


def best_of_label(best_of: int, choose_every_s: Optional[float]) -> str:
    """A setting's candidates as the tables show them: "4", or "4, every 0.128 s"."""
    return f"{best_of}" + ("" if choose_every_s is None else f", every {choose_every_s:g} s")


def paired_differences(settings: list[tuple[float, int, Optional[float]]], per_file: list[list[dict]]) -> list[dict]:
    """Per setting after the first: the mean per-file difference of each metric from the first setting and
    its 95% interval (`evaluation.paired_difference`; None where fewer than two files scored). Every setting
    decodes the same files from the same codes.

    Args:
        settings: (temperature, best_of, choose_every_s) of each setting, in the order of `per_file`.
        per_file: per setting, the eval report's "files" list (dicts with "id" and the metric keys).
    """
    return [{"temperature": temperature, "best_of": n, "choose_every_s": every,
             **{key: paired_difference(per_file[0], files, key) for key, _, _ in COLUMNS}}
            for (temperature, n, every), files in zip(settings[1:], per_file[1:])]


def print_paired(paired: list[dict], reference: tuple[float, int, Optional[float]]) -> None:
    """The paired differences as a Markdown table: mean +- 95% interval per metric."""
    if not paired:
        return
    print(f"\npaired per-file differences from T = {reference[0]:g}, best of {best_of_label(*reference[1:])} "
          "(mean +- 95% interval):")
    print("| temperature | best of | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("| --- " * (len(COLUMNS) + 2) + "|")
    for entry in paired:
        cells = ["n/a" if entry[key] is None else
                 f"{entry[key]['mean']:+.{digits + 1}f} +- {entry[key]['ci95']:.{digits + 1}f}"
                 for key, _, digits in COLUMNS]
        print(f"| {entry['temperature']:g} | {best_of_label(entry['best_of'], entry['choose_every_s'])} | "
              + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
