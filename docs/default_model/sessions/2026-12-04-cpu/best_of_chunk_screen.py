"""Screen: best of 4 with 0.5-s chunks, paired against plain sampling with 1-s chunks (the full screen's N1)."""
import dataclasses, json, sys
from pathlib import Path
import torch
from speechvq.assets import resolve_model
from speechvq.codec import Codec
from speechvq.data.manifest import read_manifest
from speechvq.evaluation import (average_over_seeds, evaluate_seeds, files_without_speech, paired_difference,
                                 pinned_decoding)
torch.set_num_threads(2)
codec = Codec.from_checkpoint(resolve_model(None), "cpu")
entries = read_manifest("/work/diag/cpu3/manifests/test.jsonl")
options, decoding = pinned_decoding(codec.model.decoder, "auto", "full")
excluded = set(files_without_speech(entries))
keys = ["stoi", "pesq_wb", "mcd_db", "ffe", "si_sdr_db", "dnsmos_ovrl"]
def merged(folder):
    reports = [json.loads((folder / f"seed{s}" / "report.json").read_text()) for s in (0, 1)]
    return average_over_seeds([{"files": [f for f in r["files"] if f["id"] not in excluded]} for r in reports], keys)
opts = dataclasses.replace(options, best_of=4, chunk_s=0.5)
evaluate_seeds(codec, entries, Path("/work/diag/cand/full/B4c05"), (opts, dict(decoding, best_of=4, chunk_s=0.5)),
               [0, 1], None, label="best of 4, 0.5 s")
base, new = merged(Path("/work/diag/cand/full/N1")), merged(Path("/work/diag/cand/full/B4c05"))
print({k: round(v, 4) for k, v in new["mean"].items()})
print("B4@0.5 - N1@1:", {k: (round(d["mean"], 4), round(d["ci95"], 4)) for k in keys
                          if (d := paired_difference(base["files"], new["files"], k))})
