"""Pool paired decoded scores over training replicates: each file's difference candidate - reference (its scores
averaged over the decoding seeds first, as tools/ship_check.py does) averaged over the replicates, then the mean
over files and its 95% interval. The interval holds the files' and the sampling's spread, not the spread between
training seeds (two replicates cannot estimate that).

    python pool_replicates.py REFERENCE_FOLDER:CANDIDATE_FOLDER [...]

Each folder is one model's ship_check output (seed0/report.json, seed1/report.json, ...).
"""
import json
import sys
from pathlib import Path

import numpy as np

from speechvq.evaluation import average_over_seeds, mean_interval

KEYS = ("stoi", "pesq_wb", "mcd_db", "ffe", "si_sdr_db", "dnsmos_ovrl")


def per_file_scores(folder: Path) -> dict[str, dict]:
    """{file id: {score: mean over the decoding seeds, or None}} of one ship_check model folder."""
    reports = [json.loads(path.read_text()) for path in sorted(folder.glob("seed*/report.json"))]
    if not reports:
        raise SystemExit(f"error: no seed*/report.json under {folder}")
    return {item["id"]: item for item in average_over_seeds(reports, KEYS)["files"]}


def main() -> None:
    pairs = [argument.split(":") for argument in sys.argv[1:]]
    differences = []  # per replicate: {file id: {score: candidate - reference, or None}}
    for reference_folder, candidate_folder in pairs:
        reference, candidate = per_file_scores(Path(reference_folder)), per_file_scores(Path(candidate_folder))
        differences.append({name: {key: None if None in (candidate[name][key], reference[name][key])
                                   else candidate[name][key] - reference[name][key] for key in KEYS}
                            for name in reference.keys() & candidate.keys()})
    files = sorted(set.intersection(*(set(d) for d in differences)))
    print(f"{len(pairs)} replicate(s), {len(files)} files both decoded in each")
    for key in KEYS:
        scored = [name for name in files if all(d[name][key] is not None for d in differences)]
        pooled = [np.mean([d[name][key] for d in differences]) for name in scored]
        each = [mean_interval([d[name][key] for name in scored])["mean"] for d in differences]
        result = mean_interval(pooled)
        print(f"{key:12s} pooled {result['mean']:+.4f} +- {result['ci95']:.4f}   replicates "
              + " ".join(f"{value:+.4f}" for value in each))


if __name__ == "__main__":
    main()
