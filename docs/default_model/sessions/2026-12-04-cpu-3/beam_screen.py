"""Screen: keep K survivors (a beam) at each choice instead of one. usage: beam.py N,EVERY,K SEEDS OUT"""
import sys
from pathlib import Path
import torch
import speechvq.generation.chunked as chunked
from speechvq.assets import resolve_model
from speechvq.codec import Codec
from speechvq.data.manifest import read_manifest, select_files
from speechvq.evaluation import average_over_seeds, evaluate_seeds, files_without_speech, paired_difference, pinned_decoding

n, every, K = sys.argv[1].split(",")
n, every, K = int(n), float(every), int(K)
mu_law_decode = chunked.mu_law_decode

def call(self, t, classes_so_far):
    final = t >= self.n_samples
    if t < self.next_boundary and not final:
        return None
    generated = classes_so_far().cpu()
    if not hasattr(self, "total"):
        self.total = torch.zeros(generated.shape[0], dtype=torch.float64)
    while self.next_boundary <= t:
        self.next_boundary += self.every * self.hop
    ready = max(0, (t - self.reach[1]) // self.hop)
    source = torch.arange(generated.shape[0])
    for index, chunk in enumerate(self.chunks):
        n_frames = chunk.stop - chunk.start
        lo, hi = self.judged[index], n_frames if final else min(n_frames, ready)
        if hi <= lo:
            continue
        rows = slice(index * self.best_of, (index + 1) * self.best_of)
        first = max(0, lo - self.margin)
        end = n_frames * self.hop if final else t
        wavs = mu_law_decode(generated[rows, first * self.hop:min(t, end)], self.classes)
        scores = torch.tensor([self.score(chunk, chunk.start + first, wav, chunk.start + lo, chunk.start + hi)
                               for wav in wavs], dtype=torch.float64)
        totals = self.total[rows] + scores * (hi - lo)
        order = torch.argsort(totals, stable=True)
        keep = 1 if final else K
        picks = torch.stack([order[j % keep] for j in range(self.best_of)])
        source[rows] = rows.start + picks
        self.total[rows] = totals[picks]
        self.judged[index] = hi
    return source

chunked._Chooser.__call__ = call
seeds, out = [int(s) for s in sys.argv[2].split(",")], Path(sys.argv[3])
torch.set_num_threads(2)
codec = Codec.from_checkpoint(resolve_model(None), "cpu")
entries = select_files(read_manifest("data/manifests/test.jsonl"), None, True)
excluded = set(files_without_speech(entries))
keys = ["stoi", "pesq_wb", "mcd_db", "ffe", "si_sdr_db", "dnsmos_ovrl"]
decoding = pinned_decoding(codec.model.decoder, "auto", "full", best_of=n, choose_every_s=every)
label = f"{n}e{every}k{K}"
reports = evaluate_seeds(codec, entries, out / label, decoding, seeds, None, label=label)
mine = average_over_seeds([{"files": [f for f in r["files"] if f["id"] not in excluded]} for r in reports], keys)
import json
for ref in (f"{n}e{every}", "1", "8e0.064"):
    rr = [json.load(open(f"/work/diag/screen/full/{ref}/seed{s}/report.json")) for s in seeds]
    base = average_over_seeds([{"files": [f for f in r["files"] if f["id"] not in excluded]} for r in rr], keys)
    print(f"{label} - {ref}:", {k: (round(d["mean"], 4), round(d["ci95"], 4)) for k in keys
                               if (d := paired_difference(base["files"], mine["files"], k))}, flush=True)
print(label, {k: round(v, 4) if v is not None else None for k, v in mine["mean"].items()}, flush=True)
