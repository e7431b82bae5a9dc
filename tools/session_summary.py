#!/usr/bin/env python3
"""Summarise a GPU session's work folder (recipes/folder/gpu_session.sh) as Markdown on stdout.

    python tools/session_summary.py recipes/folder/exp/gpu_session --init speechvq/assets/default.pt

Tables: the throughput probe (each speed change against the step as it was, measured in one process), the
data loaders, each training run (time budget, steps, samples seen, samples/s, best validation NLL), and the
decoded scores of the init model and of every run on the same test utterances.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def probe_table(work: Path) -> list[str]:
    """The probe's rows: variant, batch, ms/step, samples/s, ratio to the step as it was."""
    path = work / "probe.json"
    if not path.is_file():
        return ["(no probe.json)"]
    probe = json.loads(path.read_text())
    lines = [f"Throughput probe on {probe['device']} ({probe['precision']}, crops of {probe['crop_s']} s; "
             f"chosen batch {probe['chosen_batch']}):", "",
             "| variant | batch | ms/step | samples/s | x before | peak GiB |", "| --- | --- | --- | --- | --- | --- |"]
    for row in probe["rows"]:
        lines.append(f"| {row['variant']} | {row['batch']} | {row['s_per_step'] * 1e3:.1f} | "
                     f"{row['samples_per_s']:,.0f} | {row['x_before']:.2f} | {_fmt(row.get('peak_gib'), 1)} |")
    loaders = work / "loaders.json"
    if loaders.is_file():
        lines += ["", "| loader | batches/s (no training) |", "| --- | --- |"]
        for row in json.loads(loaders.read_text()).get("loaders", []):
            lines.append(f"| {row['loader']} | {row['batches_per_s']:.1f} |")
    return lines


def run_rows(work: Path) -> list[str]:
    """One row per training run, from its metrics.jsonl and last checkpoint."""
    import torch

    # valid NLL at step 0 is the init's (a continuation validates the weights it starts from): a best at
    # step 0 means the run never improved on them, and its best.pt is the init
    lines = ["| run | budget (min) | steps | samples seen (M) | samples/s (median interval) | valid NLL at step 0 "
             "| best valid NLL (step) | last valid NLL | changes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for exp in sorted((work / "exp").glob("*/")):
        if exp.name == "previous" or not (exp / "last.pt").is_file():
            continue
        metrics = _read_jsonl(exp / "metrics.jsonl")
        rates = sorted(m["samples_per_s"] for m in metrics if m.get("kind") == "train")
        valid = [(m["step"], m["nll"]) for m in metrics if m.get("kind") == "valid"]
        start = next((nll for step, nll in valid if step == 0), None)
        best = min(valid, key=lambda row: row[1]) if valid else None
        state = torch.load(exp / "last.pt", map_location="cpu", weights_only=True)["extra"]["run"]
        config = (exp / "config.yaml").read_text()
        budget = _budget_minutes(work / "logs" / f"train_{exp.name}.log")
        lines.append(f"| {exp.name} | {budget} | {state['step']} | {state.get('samples_seen', 0) / 1e6:,.1f} | "
                     f"{_fmt(rates[len(rates) // 2] if rates else None, 0)} | {_fmt(start, 4)} | "
                     f"{_fmt(best[1], 4) + f' ({best[0]})' if best else 'n/a'} | "
                     f"{_fmt(valid[-1][1] if valid else None, 4)} | {_changes(config)} |")
    return lines


def _budget_minutes(log: Path) -> str:
    """The run's --max-minutes, as its training log states it ("n/a" without a log or a budget)."""
    if not log.is_file():
        return "n/a"
    found = re.search(r"time budget ([0-9.e+-]+) min", log.read_text(errors="replace"))
    return found.group(1) if found else "n/a"


def _changes(config_text: str) -> str:
    import yaml

    config = yaml.safe_load(config_text)
    model, train = config["model"], config["train"]
    found = [f"lr {train['lr']:g}", f"{config['data'].get('loader', 'workers')} loader",
             "compiled" if train.get("compile") else "eager",
             "fused Adam" if train.get("fused_optimizer", True) else "unfused Adam",
             train.get("precision", "fp32"),  # as configured: bf16 applies on CUDA only
             "decoder only" if train.get("freeze_encoder") else "whole model"]
    if model.get("code_jitter", 0.0):
        found.append(f"code_jitter={model['code_jitter']}")
    if model["quantizer"].get("ema"):
        found.append("EMA codebook")
    if model.get("pre_emphasis", 0.0):
        found.append(f"pre-emphasis {model['pre_emphasis']}")
    if model.get("pitch", {}).get("bits", 0):
        found.append(f"pitch stream {model['pitch']['bits']} bits")
    if model.get("decoder", {}).get("pitch_lag_taps", 0):
        found.append(f"pitch-lag input {model['decoder']['pitch_lag_taps']} taps")
    if train.get("new_weights_lr_scale", 1.0) != 1.0:
        found.append(f"new weights at {train['new_weights_lr_scale']:g} x lr")
    return ", ".join(found)


def eval_rows(work: Path) -> list[str]:
    """Decoded scores (means over the same test utterances) of the init model and each run."""
    lines = ["| model | files | PESQ-WB | STOI | MCD (dB) | FFE | SI-SDR (dB) | file bit/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for report_path in sorted((work / "eval").glob("*/report.json")):
        report = json.loads(report_path.read_text())
        mean = report["mean"]
        lines.append(f"| {report_path.parent.name} | {len(report['files'])} | {_fmt(mean.get('pesq_wb'), 2)} | "
                     f"{_fmt(mean.get('stoi'), 3)} | {_fmt(mean.get('mcd_db'), 2)} | {_fmt(mean.get('ffe'), 3)} | "
                     f"{_fmt(mean.get('si_sdr_db'), 2)} | "
                     f"{_fmt(mean.get('file_bps'), 0)} |")
    return lines


def gpu_test_lines(work: Path) -> list[str]:
    """pytest's summary line of the GPU tests (logs/gpu_tests.log) and any failures, as Markdown lines."""
    log = work / "logs" / "gpu_tests.log"
    if not log.is_file():
        return ["(not run)"]
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    failures = [f"- {line}" for line in lines if line.startswith(("FAILED", "ERROR"))]
    result = lines[-1].strip("= ") if lines else "(no output)"
    return [f"pytest -m gpu: {result}"] + ([""] + failures if failures else [])


def log_excerpt(work: Path, name: str, keep) -> list[str]:
    """The lines of logs/`name` that `keep(line)` accepts, as a fenced block; "(not run)" without the log."""
    log = work / "logs" / name
    if not log.is_file():
        return ["(not run)"]
    kept = [line.strip() for line in log.read_text(errors="replace").splitlines() if keep(line)]
    return ["```", *kept, "```"] if kept else [f"(no result: see logs/{name})"]


def fast_path_lines(work: Path) -> list[str]:
    """check_fast_path.py's findings (logs/fast_path.log): loader, gradients, Adam, and the steps check."""
    return log_excerpt(work, "fast_path.log", lambda line: line.startswith(("loader:", "gradients ", "adam:", "steps "))
                       or "Error" in line)


def generation_lines(work: Path) -> list[str]:
    """bench_generate_gpu.py's checks against the reference and its speed table (logs/bench_generate_gpu.log)."""
    return log_excerpt(work, "bench_generate_gpu.log", lambda line: line.startswith("check ") or "failed" in line
                       or "samples/s aggregate" in line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--init", default=None, help="the model the runs started from")
    args = parser.parse_args()
    lines = ["# GPU session summary", "", f"Runs continued from `{args.init}`." if args.init else "", ""]
    lines += probe_table(args.work) + ["", "## Training runs", ""] + run_rows(args.work)
    lines += ["", "## Decoded scores (init = the model the runs started from)", ""] + eval_rows(args.work)
    lines += ["", "## Tests that need a GPU", ""] + gpu_test_lines(args.work)
    lines += ["", "## The fast path against the old one (tools/check_fast_path.py)", ""] + fast_path_lines(args.work)
    lines += ["", "## Generation on the GPU (tools/bench_generate_gpu.py --pitch-lag-taps 5)", ""]
    lines += generation_lines(args.work)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
