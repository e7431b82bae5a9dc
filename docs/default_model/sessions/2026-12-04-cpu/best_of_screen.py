"""Screen: keep the best of N sampled candidates per chunk (encoder distance to the codes) vs plain sampling."""
import dataclasses, json, sys
from pathlib import Path
import torch
from speechvq.assets import resolve_model
from speechvq.codec import Codec
from speechvq.data.manifest import read_manifest, select_files
from speechvq.evaluation import (average_over_seeds, evaluate_seeds, files_without_speech, paired_difference,
                                 pinned_decoding)

counts = [int(x) for x in sys.argv[1].split(",")]
seeds = [int(x) for x in sys.argv[2].split(",")]
max_files = int(sys.argv[3]); max_seconds = float(sys.argv[4]) or None; out = Path(sys.argv[5])
torch.set_num_threads(2)
codec = Codec.from_checkpoint(resolve_model(None), "cpu")
entries = select_files(read_manifest("/work/diag/cpu3/manifests/test.jsonl"), max_files or None, True)
options, decoding = pinned_decoding(codec.model.decoder, "auto", "full")
excluded = set(files_without_speech(entries))
keys = ["stoi", "pesq_wb", "mcd_db", "ffe", "si_sdr_db", "dnsmos_ovrl"]
per = {}
for n in counts:
    opts = dataclasses.replace(options, best_of=n)
    reports = evaluate_seeds(codec, entries, out / f"N{n}", (opts, dict(decoding, best_of=n)), seeds, max_seconds,
                             label=f"N={n}")
    merged = average_over_seeds([{"files": [f for f in r["files"] if f["id"] not in excluded]} for r in reports], keys)
    per[n] = merged
    print(n, {k: round(v, 4) if v is not None else None for k, v in merged["mean"].items()}, flush=True)
base = counts[0]
for n in counts[1:]:
    print(f"N={n} - N={base}:", {k: (round(d["mean"], 4), round(d["ci95"], 4)) for k in keys
                                 if (d := paired_difference(per[base]["files"], per[n]["files"], k))})
