"""Screening: per-voice paired differences of ship-check decode folders against the reference decodes that a
ship check (its ship_check.json) used: each file's scores averaged over the seeds and the paired mean per voice,
as tools/ship_check.py does for all files (speechvq.evaluation's average_over_seeds, paired_difference); the
files that check left out as without speech are left out here too.

    python per_speaker.py SHIP_CHECK_JSON CANDIDATE_FOLDER [CANDIDATE_FOLDER ...]   (folders holding seed*/report.json)

Prints, per voice and score, each candidate's mean difference (candidate - reference), separated by "/"."""

import json
import sys
from pathlib import Path

from speechvq.evaluation import average_over_seeds, paired_difference

SCORES = ("mcd_db", "dnsmos_ovrl", "pesq_wb", "stoi")


def seed_averaged(folder: str) -> tuple[list[dict], dict[str, str]]:
    """A decode folder's files with their scores averaged over its seed*/report.json, and each file's voice."""
    reports = [json.loads(path.read_text()) for path in sorted(Path(folder).glob("seed*/report.json"))]
    voices = {item["id"]: item["speaker"] for item in reports[0]["files"]}
    return average_over_seeds(reports, SCORES)["files"], voices


check = json.loads(Path(sys.argv[1]).read_text())
reference, voices = seed_averaged(check["reference_folder"])
reference = [item for item in reference if item["id"] not in check["without_speech"]]
candidates = [seed_averaged(folder)[0] for folder in sys.argv[2:]]
width = 8 * len(candidates)
print("voice      files " + " ".join(f"{key:>{width}s}" for key in SCORES))
for voice in sorted(set(voices.values())):
    files = [item for item in reference if voices[item["id"]] == voice]
    cells = []
    for key in SCORES:
        paired = [paired_difference(files, candidate, key) for candidate in candidates]
        cells.append("/".join("n/a" if p is None else f"{p['mean']:+.3f}" for p in paired))
    print(f"{voice:10s} {len(files):5d} " + " ".join(f"{cell:>{width}s}" for cell in cells))
