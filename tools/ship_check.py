#!/usr/bin/env python3
"""Whether a candidate model may replace the shipped one: the ship rule, on decoded audio of the test split.

The rule (issue 14): a new default model replaces the shipped one only when it is better on the test split in
STOI and PESQ-WB and not worse in MCD. Both models decode the same utterances (same files, seconds, seed and
temperature), so each score is compared file by file, and "better" means the 95% interval of the paired mean
difference lies above zero, "worse" that it lies on the wrong side: a difference within the files' noise is
no difference. FFE, SI-SDR and (with speechmos) DNSMOS are reported beside, not judged. With `--seeds 0 1 ...`
every file is decoded under each sampling seed and judged by its scores averaged over them: a change as small
as a short continuation's passed the rule under one seed and failed under the next.

    python tools/ship_check.py recipes/folder/exp/gpu_session/models/main.pt \
        --manifest recipes/folder/exp/gpu_session/manifests/test.jsonl --out exp/ship_check

Prints one table per candidate and a verdict line each; writes ship_check.json, and each model's eval report
under --out/NAME/seedS (NAME: `reference`, or a candidate's file stem and weights' fingerprint). A decode whose
report is already there, made with the same weights, files, seconds, seed, temperature, engine, CPU, speechvq
and torch versions (its decode_key.json says), is read instead of decoded again: an interrupted check resumes,
and a reference decoded once serves every later candidate given the same --out. The decoding engine is fixed
once per check (`--engine auto`: the one this machine measures fastest, resolved once) and every model
decodes with it, at full precision by default: sampled audio follows the float arithmetic, and at reduced
precision the native engine's fp16 weights draw other samples from the same weights and seed than the
float32 engines, which agree with each other (`evaluation.COMPARISON_PRECISION`). Needs the `eval` extra (PESQ,
STOI): the lent GPU machine has no PESQ, so this runs here after a lease. Exit status 0 when the checks ran
(whatever the verdicts), 1 on an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from speechvq.assets import default_model_path
from speechvq.atomic import write_bytes_atomic
from speechvq.codec import Codec
from speechvq.data.manifest import read_manifest, select_files
from speechvq.errors import SpeechVQError
from speechvq.evaluation import (COMPARISON_PRECISION, SPEECH_FLOOR_DBFS, average_over_seeds, evaluate_seeds,
                                 files_without_speech, paired_difference, pinned_decoding)
from speechvq.generation import DEFAULT_CHOOSE_EVERY_S, ENGINES, DecodeOptions
from speechvq.generation.packed import PRECISIONS
from speechvq.inference import DEFAULT_TEMPERATURE
from speechvq.metrics import finite_mean, optional_metrics_available
from speechvq.postfilter import DEFAULT_POSTFILTER_GAIN

# (report key, title, digits, +1 when higher is better / -1 when lower is / 0 reported only)
SCORES = [("stoi", "STOI", 3, +1), ("pesq_wb", "PESQ-WB", 2, +1), ("mcd_db", "MCD (dB)", 2, -1),
          ("ffe", "FFE", 3, 0), ("si_sdr_db", "SI-SDR (dB)", 1, 0), ("dnsmos_ovrl", "DNSMOS", 2, 0)]


def ship_verdict(paired: dict[str, Optional[dict]]) -> tuple[bool, list[str]]:
    """Apply the ship rule to paired differences candidate - shipped (`evaluation.paired_difference` per key).

    Returns:
        (ships, reasons): ships when STOI and PESQ-WB are better (interval above zero) and MCD is not worse
        (interval not above zero); one reason per judged score.
    """
    reasons, ships = [], True
    for key, title, digits, _ in SCORES[:3]:
        difference = paired.get(key)
        if difference is None:
            reasons.append(f"{title}: not measured")
            ships = False
            continue
        low, high = difference["mean"] - difference["ci95"], difference["mean"] + difference["ci95"]
        text = f"{difference['mean']:+.{digits + 1}f} +- {difference['ci95']:.{digits + 1}f}"
        if key == "mcd_db":
            worse = low > 0
            reasons.append(f"{title} {text}: {'worse' if worse else 'not worse'}")
            ships &= not worse
        else:
            better = low > 0
            verdict = "better" if better else ("worse" if high < 0 else "no measurable change")
            reasons.append(f"{title} {text}: {verdict}")
            ships &= better
    return ships, reasons


def lossy_references(entries) -> int:
    """How many of the manifest entries are lossy-coded files (Ogg, Opus, MP3): scores against them are not
    scores against the recordings (a lease's manifests point into its Opus copy of the corpus)."""
    return sum(Path(entry.path).suffix.lower() in (".ogg", ".opus", ".mp3") for entry in entries)


def evaluate_model(path: str, entries, out_root: Path, name: Optional[str], max_seconds: Optional[float],
                   temperature: float, seeds: list[int], engine: str, precision: str,
                   postfilter: float, best_of: int = 1, choose_every_s: Optional[float] = DEFAULT_CHOOSE_EVERY_S
                   ) -> tuple[dict, Path, tuple[DecodeOptions, dict]]:
    """`evaluate_utterances` of one model with a progress bar, once per sampling seed, in out_root/NAME (a
    candidate's NAME by default: its file's stem and the first 8 characters of its weights' fingerprint, so a
    folder shared by several checks keeps each model's decodes apart), each seed's in NAME/seedS. A seed's
    report already there under the same `decode_key` is read, not decoded again (a check under seed 0, then
    one under seeds 0 and 1 into the same --out, decodes seed 0 once: `evaluation.evaluate_seeds`). Every
    seed decodes with `engine` at `precision`, resolved once (`evaluation.pinned_decoding`), and the pitch
    post-filter at gain `postfilter` where the model has a pitch stream, keeping the best of `best_of`
    samples of every chunk (`DecodeOptions.best_of`), chosen every `choose_every_s` seconds (None: once per chunk).

    Returns:
        (the report, or with several seeds `average_over_seeds` of theirs; the model's folder; the decoding
        used: `pinned_decoding`'s answer).
    """
    codec = Codec.from_checkpoint(path, "cpu")
    decoding = pinned_decoding(codec.model.decoder, engine, precision, postfilter, best_of, choose_every_s)
    out = out_root / (name or f"{Path(path).stem}-{codec.fingerprint[:8]}")
    reports = evaluate_seeds(codec, entries, out, decoding, seeds, max_seconds, temperature, Path(path).name)
    merged = reports[0] if len(seeds) == 1 else average_over_seeds(reports, [key for key, *_ in SCORES])
    return merged, out, decoding


def score_means(files: list[dict]) -> dict:
    """Each score's mean over the files' finite values (None where there is none)."""
    return {key: finite_mean(item.get(key) for item in files) for key, *_ in SCORES}


def judged(report: dict, excluded: set[str]) -> dict:
    """The report's files less the excluded ids, and their means (finite values): what the verdict reads."""
    files = [item for item in report["files"] if item["id"] not in excluded]
    return {"files": files, "mean": score_means(files)}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="+", help="candidate models (.pt)")
    parser.add_argument("--reference", default=str(default_model_path()), help="default: the shipped model")
    parser.add_argument("--manifest", required=True, help="the test split (the shipped model's: 120 files)")
    parser.add_argument("--max-files", type=int, default=None)
    parser.add_argument("--spread", action="store_true",
                        help="with --max-files: N utterances spread evenly over the manifest (every speaker)")
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="decode every file under each of these sampling seeds and judge each file's "
                             "scores averaged over them (instead of --seed; each seed costs one more decode)")
    parser.add_argument("--engine", default="auto", choices=ENGINES,
                        help="decoding engine of every model (auto: this machine's fastest, chosen once)")
    parser.add_argument("--precision", default=COMPARISON_PRECISION, choices=PRECISIONS,
                        help="kernel precision (default full: the same audio whichever engine auto picks; "
                             "reduced: faster, but fp16 weights draw other samples)")
    parser.add_argument("--postfilter", type=float, default=DEFAULT_POSTFILTER_GAIN, metavar="GAIN",
                        help="pitch post-filter gain of every model with a pitch stream (0: off)")
    parser.add_argument("--best-of", type=int, default=1, metavar="N",
                        help="samples of every chunk, the one nearest the codes kept, for every model")
    parser.add_argument("--choose-every", type=float, default=DEFAULT_CHOOSE_EVERY_S, metavar="SECONDS",
                        dest="choose_every_s",
                        help="with --best-of: choose every SECONDS as the samples are generated (default "
                             f"{DEFAULT_CHOOSE_EVERY_S:g}, as decoding's; 0: once per chunk)")
    parser.add_argument("--out", required=True, help="folder for each model's eval report and ship_check.json")
    args = parser.parse_args(argv)
    args.choose_every_s = args.choose_every_s or None  # 0: one choice per chunk

    missing = [name for name in ("pesq", "stoi") if not optional_metrics_available()[name]]
    if missing:
        print(f"ship_check: {', '.join(missing)} missing (the rule needs them): pip install 'speechvq[eval]'",
              file=sys.stderr)
        return 1
    out = Path(args.out)
    seeds = args.seeds or [args.seed]
    try:
        entries = select_files(read_manifest(args.manifest), args.max_files, args.spread)
        if not entries:
            raise SpeechVQError(f"{args.manifest}: no utterances")
        lossy = lossy_references(entries)
        if lossy:  # e.g. the manifests a lease built from its Opus copy of the corpus
            print(f"ship_check: warning: {lossy} of {len(entries)} references are lossy-coded files; the scores are "
                  f"against them, not the original recordings", file=sys.stderr)
        excluded = set(files_without_speech(entries))
        reports = {"reference": evaluate_model(args.reference, entries, out, "reference", args.max_seconds,
                                               args.temperature, seeds, args.engine, args.precision,
                                               args.postfilter, args.best_of, args.choose_every_s)}
        options, decoding = reports["reference"][2]
        for path in args.candidates:  # with the reference's engine and kernels, not a choice of their own
            reports[path] = evaluate_model(path, entries, out, None, args.max_seconds, args.temperature, seeds,
                                           options.engine, options.precision, args.postfilter, args.best_of,
                                           args.choose_every_s)
    except SpeechVQError as err:
        print(f"ship_check: {err}", file=sys.stderr)
        return 1
    reference, reference_folder, _ = reports.pop("reference")
    reference = judged(reference, excluded)
    result = {"reference": args.reference, "reference_folder": str(reference_folder), "files": len(entries),
              "without_speech": sorted(excluded),
              "max_seconds": args.max_seconds, "temperature": args.temperature, "seed": seeds[0], "seeds": seeds,
              "decoding": decoding,
              "reference_mean": {key: reference["mean"].get(key) for key, *_ in SCORES}, "candidates": []}
    print(f"decoded with the {decoding['engine']} engine at {decoding['precision']}"
          + (f", -march={decoding['march']}" if decoding["march"] else "") + f", {decoding['threads']} threads")
    print(f"{len(entries)} utterances{'' if args.max_seconds is None else f', first {args.max_seconds:g} s of each'}"
          f", temperature {args.temperature:g}, "
          + (f"seed {seeds[0]}" if len(seeds) == 1 else
             f"seeds {', '.join(map(str, seeds))} (each file's scores averaged over them)")
          + f"; reference {args.reference}")
    if excluded:
        print(f"left out of the means and the verdict, no speech in the recording (no 20 ms frame above "
              f"{SPEECH_FLOOR_DBFS:g} dBFS): {', '.join(sorted(excluded))}")
    print("| model | " + " | ".join(title for _, title, _, _ in SCORES) + " |")
    print("| --- " * (len(SCORES) + 1) + "|")

    def row(name: str, means: dict) -> str:
        return f"| {name} | " + " | ".join("n/a" if means.get(key) is None else f"{means[key]:.{digits}f}"
                                           for key, _, digits, _ in SCORES) + " |"

    print(row("reference", reference["mean"]))
    for path, (report, folder, _) in reports.items():
        report = judged(report, excluded)
        paired = {key: paired_difference(reference["files"], report["files"], key) for key, *_ in SCORES}
        ships, reasons = ship_verdict(paired)
        result["candidates"].append({"model": path, "folder": str(folder),
                                     "mean": {key: report["mean"].get(key) for key, *_ in SCORES},
                                     "paired": paired, "ships": ships, "reasons": reasons})
        print(row(path, report["mean"]))
    for candidate in result["candidates"]:
        print(f"{candidate['model']}: {'SHIPS' if candidate['ships'] else 'does not ship'} "
              f"({'; '.join(candidate['reasons'])})")
    write_bytes_atomic(out / "ship_check.json", (json.dumps(result, indent=1) + "\n").encode("utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
