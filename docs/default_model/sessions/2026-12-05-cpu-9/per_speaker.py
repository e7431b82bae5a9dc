"""Screening: per-voice paired differences of ship-check decode folders against the reference decodes that a
ship check (its ship_check.json) used, seeds averaged per file; the files that check left out as without speech,
and files missing a score, are left out. Standard library only.
python per_speaker.py SHIP_CHECK_JSON CANDIDATE_FOLDER [CANDIDATE_FOLDER ...]   (folders holding seed*/report.json)"""

import json
import math
import sys
from pathlib import Path

SCORES = ("mcd_db", "dnsmos_ovrl", "pesq_wb", "stoi")


def per_file(folder):
    """Map utterance id -> (speaker, {score: mean over the seeds, or None when any seed lacks it})."""
    rows = {}
    for report in sorted(Path(folder).glob("seed*/report.json")):
        for row in json.loads(report.read_text())["files"]:
            rows.setdefault(row["id"], []).append(row)
    means = {}
    for utt, seeds in rows.items():
        scores = {}
        for key in SCORES:
            values = [r.get(key) for r in seeds]
            ok = all(v is not None and not math.isnan(v) for v in values)
            scores[key] = sum(values) / len(values) if ok else None
        means[utt] = (seeds[0]["speaker"], scores)
    return means


check = json.loads(Path(sys.argv[1]).read_text())
reference, candidates = per_file(check["reference_folder"]), [per_file(f) for f in sys.argv[2:]]
table = {}
for utt, (speaker, ref_scores) in reference.items():
    if utt in check["without_speech"]:
        continue
    for key in SCORES:
        values = [c[utt][1][key] for c in candidates if utt in c]
        if ref_scores[key] is None or len(values) < len(candidates) or None in values:
            continue
        table.setdefault(speaker, {}).setdefault(key, []).append([v - ref_scores[key] for v in values])
print("voice files " + " ".join(f"{k:>{8 * len(candidates)}s}" for k in SCORES))
for speaker, scores in sorted(table.items()):
    cells = []
    for key in SCORES:
        diffs = scores.get(key, [])
        cells.append("/".join(f"{sum(d[i] for d in diffs) / max(len(diffs), 1):+.3f}" for i in range(len(candidates))))
    print(f"{speaker:10s} {len(scores.get('mcd_db', [])):3d} " + " ".join(f"{c:>{8 * len(candidates)}s}" for c in cells))
