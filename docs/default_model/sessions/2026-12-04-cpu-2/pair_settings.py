"""Paired differences between two settings of choose_screen.py's output folder, read back (no decoding).

usage: pair_settings.py OUT BASE OTHER [OTHER ...]   (setting names as choose_screen.py's: 4, 4e0.064, ...)
"""
import json, sys
from pathlib import Path
from speechvq.data.manifest import read_manifest
from speechvq.evaluation import average_over_seeds, files_without_speech, paired_difference

out, base, others = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
excluded = set(files_without_speech(read_manifest("data/manifests/test.jsonl")))
keys = ["stoi", "pesq_wb", "mcd_db", "ffe", "si_sdr_db", "dnsmos_ovrl"]


def merged(setting):
    reports = [json.loads((out / setting / f"seed{s}" / "report.json").read_text()) for s in (0, 1)]
    return average_over_seeds([{"files": [f for f in r["files"] if f["id"] not in excluded]} for r in reports], keys)


reference = merged(base)
for setting in others:
    print(f"{setting} - {base}:", {k: (round(d["mean"], 4), round(d["ci95"], 4)) for k in keys
                                   if (d := paired_difference(reference["files"], merged(setting)["files"], k))})
