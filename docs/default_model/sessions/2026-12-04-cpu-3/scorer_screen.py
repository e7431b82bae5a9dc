"""Screen: best of N chosen every S seconds with other temperatures / scorers, paired against a stored setting.
usage: screen.py SETTINGS SEEDS OUT   SETTINGS: N e S [@T] [:scorer]  e.g. 4e0.064@0.8 4e0.064:excess 4e0.064:rank
scorers: mse (inference.code_distance), excess (d2(code) - min_k d2(k)), rank (codes nearer than the code)"""
import sys
from pathlib import Path
import torch
import speechvq.inference as inference
from speechvq.assets import resolve_model
from speechvq.codec import Codec
from speechvq.data.manifest import read_manifest, select_files
from speechvq.evaluation import average_over_seeds, evaluate_seeds, files_without_speech, paired_difference, pinned_decoding

original = inference.code_distance

def other_distance(kind):
    def make(model, codes):
        book = model.quantizer.lookup(torch.arange(512).view(1, -1))[0].detach()  # [D, K]
        rows = [c[0] for c in codes]
        @torch.no_grad()
        def score(chunk, first, wav, lo, hi):
            code = rows[chunk.request]
            hi = min(hi, code.numel())
            z = model.encoder(model.waveform_from_classes(wav).view(1, 1, -1))[0][:, lo - first:hi - first]  # [D, F]
            d2 = torch.cdist(z.T, book.T).pow(2) / z.shape[0]  # [F, K]
            own = d2.gather(1, code[lo:hi].view(-1, 1))[:, 0]
            if kind == "excess":
                return float((own - d2.min(1).values).mean())
            return float((d2 < own[:, None]).float().sum(1).mean() + 1e-3 * own.mean())
        return score
    return make

settings, seeds, out = sys.argv[1].split(","), [int(s) for s in sys.argv[2].split(",")], Path(sys.argv[3])
torch.set_num_threads(2)
codec = Codec.from_checkpoint(resolve_model(None), "cpu")
entries = select_files(read_manifest("data/manifests/test.jsonl"), None, True)
excluded = set(files_without_speech(entries))
keys = ["stoi", "pesq_wb", "mcd_db", "ffe", "si_sdr_db", "dnsmos_ovrl"]
per = {}
for setting in settings:
    rest, _, kind = setting.partition(":")
    rest, _, temp = rest.partition("@")
    n, _, every = rest.partition("e")
    inference.code_distance = original if kind in ("", "mse") else other_distance(kind)
    decoding = pinned_decoding(codec.model.decoder, "auto", "full", best_of=int(n), choose_every_s=float(every) if every else None)
    folder = out / setting if (temp or kind) else Path("/work/diag/screen/full") / setting
    reports = evaluate_seeds(codec, entries, folder, decoding, seeds, None, temperature=float(temp or 0.6), label=setting)
    per[setting] = average_over_seeds([{"files": [f for f in r["files"] if f["id"] not in excluded]} for r in reports], keys)
    print(setting, {k: round(v, 4) if v is not None else None for k, v in per[setting]["mean"].items()}, flush=True)
base = settings[0]
for setting in settings[1:]:
    print(f"{setting} - {base}:", {k: (round(d["mean"], 4), round(d["ci95"], 4)) for k in keys
                                   if (d := paired_difference(per[base]["files"], per[setting]["files"], k))}, flush=True)
