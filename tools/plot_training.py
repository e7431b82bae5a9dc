#!/usr/bin/env python3
"""Summarise a training run's metrics.jsonl as a CSV and a small PNG (losses and code use against steps).

    python tools/plot_training.py exp/default --out docs/default_model

Writes OUT/training_curve.csv (one row per logged step: train loss, NLL, VQ loss, perplexity, codes used,
and the validation scores where validation ran) and OUT/training_curve.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

COLUMNS = ["step", "train_loss", "train_nll", "train_vq_loss", "train_perplexity", "train_used_codes",
           "valid_nll", "valid_perplexity", "valid_used_codes", "lr", "samples_per_s"]


def read_rows(metrics: Path) -> list[dict]:
    """One dict per step that has a train or valid record, keyed by COLUMNS (missing values are '')."""
    rows: dict[int, dict] = {}
    for line in metrics.read_text().splitlines():
        record = json.loads(line)
        row = rows.setdefault(record["step"], {name: "" for name in COLUMNS} | {"step": record["step"]})
        prefix = "train_" if record["kind"] == "train" else "valid_"
        for key, value in record.items():
            if prefix + key in row:
                row[prefix + key] = value
            elif key in ("lr", "samples_per_s"):
                row[key] = value
    return [rows[step] for step in sorted(rows)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exp", type=Path, help="experiment folder holding metrics.jsonl")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the experiment folder)")
    args = parser.parse_args()
    metrics = args.exp / "metrics.jsonl"
    if not metrics.is_file():
        print(f"plot_training: no {metrics}", file=sys.stderr)
        return 2
    out = args.out or args.exp
    out.mkdir(parents=True, exist_ok=True)
    rows = read_rows(metrics)
    with open(out / "training_curve.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(name):
        points = [(r["step"], r[name]) for r in rows if r[name] != ""]
        return [p[0] for p in points], [p[1] for p in points]

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
    left.plot(*series("train_nll"), label="train NLL")
    left.plot(*series("valid_nll"), "o-", markersize=3, label="valid NLL")
    left.set_xlabel("step")
    left.set_ylabel("nats per sample")
    left.legend()
    left.grid(alpha=0.3)
    right.plot(*series("train_perplexity"), label="train perplexity")
    right.plot(*series("valid_perplexity"), "o-", markersize=3, label="valid perplexity")
    right.plot(*series("valid_used_codes"), "s--", markersize=3, label="valid codes used")
    right.set_xlabel("step")
    right.legend()
    right.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "training_curve.png")
    print(f"{len(rows)} steps -> {out / 'training_curve.csv'}, {out / 'training_curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
