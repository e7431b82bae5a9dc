"""Screen: best of N chosen once per chunk vs chosen every S seconds as the candidates are generated
(DecodeOptions.choose_every_s), paired against plain sampling, on the shipped model.

usage: choose_screen.py SETTINGS SEEDS MAX_FILES MAX_SECONDS OUT
  SETTINGS: comma-separated N (best of N, one choice per chunk) or NeS (best of N, a choice every S seconds);
  the first is the reference of the paired differences. MAX_FILES / MAX_SECONDS 0: all / whole files.
"""
import dataclasses, sys
from pathlib import Path
import torch
from speechvq.assets import resolve_model
from speechvq.codec import Codec
from speechvq.data.manifest import read_manifest, select_files
from speechvq.evaluation import (average_over_seeds, evaluate_seeds, files_without_speech, paired_difference,
                                 pinned_decoding)

settings = sys.argv[1].split(",")
seeds = [int(x) for x in sys.argv[2].split(",")]
max_files = int(sys.argv[3]); max_seconds = float(sys.argv[4]) or None; out = Path(sys.argv[5])
torch.set_num_threads(2)
codec = Codec.from_checkpoint(resolve_model(None), "cpu")
entries = select_files(read_manifest("data/manifests/test.jsonl"), max_files or None, True)
excluded = set(files_without_speech(entries))
keys = ["stoi", "pesq_wb", "mcd_db", "ffe", "si_sdr_db", "dnsmos_ovrl"]
per = {}
for setting in settings:
    n, _, every = setting.partition("e")
    decoding = pinned_decoding(codec.model.decoder, "auto", "full", best_of=int(n),
                               choose_every_s=float(every) if every else None)
    reports = evaluate_seeds(codec, entries, out / setting, decoding, seeds, max_seconds, label=setting)
    merged = average_over_seeds([{"files": [f for f in r["files"] if f["id"] not in excluded]} for r in reports], keys)
    per[setting] = merged
    print(setting, {k: round(v, 4) if v is not None else None for k, v in merged["mean"].items()}, flush=True)
base = settings[0]
for setting in settings[1:]:
    print(f"{setting} - {base}:", {k: (round(d["mean"], 4), round(d["ci95"], 4)) for k in keys
                                   if (d := paired_difference(per[base]["files"], per[setting]["files"], k))},
          flush=True)
