"""Screen: best of N every S seconds with other chunk lengths, paired against the stored 1-s chunk decodes.
usage: chunks.py N EVERY CHUNK_S SEEDS OUT"""
import dataclasses, json, sys
from pathlib import Path
import torch
from speechvq.assets import resolve_model
from speechvq.codec import Codec
from speechvq.data.manifest import read_manifest, select_files
from speechvq.evaluation import average_over_seeds, evaluate_seeds, files_without_speech, paired_difference, pinned_decoding

n, every, chunk_s = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
seeds, out = [int(s) for s in sys.argv[4].split(",")], Path(sys.argv[5])
torch.set_num_threads(2)
codec = Codec.from_checkpoint(resolve_model(None), "cpu")
entries = select_files(read_manifest("data/manifests/test.jsonl"), None, True)
excluded = set(files_without_speech(entries))
keys = ["stoi", "pesq_wb", "mcd_db", "ffe", "si_sdr_db", "dnsmos_ovrl"]
options, description = pinned_decoding(codec.model.decoder, "auto", "full", best_of=n, choose_every_s=every)
decoding = (dataclasses.replace(options, chunk_s=chunk_s), dict(description, chunk_s=chunk_s))
label = f"{n}e{every:g}c{chunk_s:g}"
reports = evaluate_seeds(codec, entries, out / label, decoding, seeds, None, label=label)
mine = average_over_seeds([{"files": [f for f in r["files"] if f["id"] not in excluded]} for r in reports], keys)
print(label, {k: round(v, 4) if v is not None else None for k, v in mine["mean"].items()}, flush=True)
for ref in (f"{n}e{every:g}", "1"):
    rr = [json.load(open(f"/work/diag/screen/full/{ref}/seed{s}/report.json")) for s in seeds]
    base = average_over_seeds([{"files": [f for f in r["files"] if f["id"] not in excluded]} for r in rr], keys)
    print(f"{label} - {ref}:", {k: (round(d["mean"], 4), round(d["ci95"], 4)) for k in keys
                               if (d := paired_difference(base["files"], mine["files"], k))}, flush=True)
