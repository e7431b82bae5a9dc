#!/usr/bin/env python3
"""The pitch post-filter at several gains on decode_raw.py's decodes, scored against the inputs as
`speechvq eval` scores (`metrics.intrusive_scores`; DNSMOS on request), each file's scores averaged over
seeds 0 and 1 and paired against gain 0.7 (the default); the recordings without speech that the ship check
left out are left out. At 0.7 each file of the first RAW folder is also compared with the ship check's decode of the same
seed (post-filter applied inline, stored as 16-bit): the largest difference is printed. RAW may list several
folders (decode_raw.py at other temperatures): each is filtered at every gain, all paired against the first at 0.7.

    python score_gains.py RAW[,RAW...] TEST_MANIFEST SHIP_CHECK_FOLDER GAINS [dnsmos]   # GAINS e.g. 0,0.5,0.7,0.9
"""

from __future__ import annotations

import json
import math
import sys
import time
from multiprocessing import Pool

import torch

from speechvq.assets import resolve_model
from speechvq.audio import load_audio
from speechvq.codec import Codec
from speechvq.evaluation import paired_difference
from speechvq.metrics import dnsmos, intrusive_scores
from speechvq.pitch import symbol_f0_hz
from speechvq.postfilter import pitch_postfilter

RAWS, (MANIFEST, SHIP) = sys.argv[1].split(","), sys.argv[2:4]
GAINS = [float(g) for g in sys.argv[4].split(",")]
WITH_DNSMOS = len(sys.argv) > 5 and sys.argv[5] == "dnsmos"
KEYS = ("pesq_wb", "stoi", "mcd_db", "ffe", "si_sdr_db") + (("dnsmos_ovrl",) if WITH_DNSMOS else ())
manifest = {json.loads(l)["id"]: json.loads(l) for l in open(MANIFEST)}
excluded = set(json.load(open(f"{SHIP}/ship_check.json"))["without_speech"])
model = Codec.from_checkpoint(resolve_model(None), "cpu").model
pcfg, hop = model.config.pitch, model.pitch_hop


def score(file_id):
    torch.set_num_threads(1)
    ref = load_audio(manifest[file_id]["path"], 16000)[0]
    out, check = {}, []
    for seed, folder in ((seed, folder) for seed in (0, 1) for folder in RAWS):
        item = torch.load(f"{folder}/seed{seed}/{file_id.replace('/', '__')}.pt")
        raw, f0 = item["decoded"], symbol_f0_hz(item["pitch"], pcfg)
        for gain in GAINS:
            y = raw if gain == 0 else pitch_postfilter(raw, f0, hop, 16000, gain).clamp(-1.0, 1.0)
            if gain == 0.7 and folder == RAWS[0]:  # the ship check's decode of the same seed, post-filter inline, stored as 16-bit
                stored = load_audio(f"{SHIP}/reference/seed{seed}/wav/{file_id.replace('/', '__')}.wav", 16000)[0]
                check.append(float((stored - y).abs().max()))
            s = intrusive_scores(ref, y, 16000, 128)
            if WITH_DNSMOS:
                s["dnsmos_ovrl"] = dnsmos(y, 16000)["dnsmos_ovrl"]
            for k in KEYS:
                out.setdefault(f"{folder}@{gain}", {}).setdefault(k, []).append(s[k])
    return file_id, {g: {k: sum(v) / len(v) for k, v in d.items()} for g, d in out.items()}, check


if __name__ == "__main__":
    ids = [k for k in manifest if k not in excluded]
    t = time.time()
    with Pool(2) as pool:
        results = list(pool.imap_unordered(score, ids))
    checks = [c for _, _, cs in results for c in cs]
    res = {i: r for i, r, _ in results}
    print(f"{len(ids)} files, {time.time() - t:.0f} s; inline vs post hoc at 0.7: max |diff| "
          f"{max(checks) if checks else float('nan'):.2e}", flush=True)
    variants = [f"{folder}@{gain}" for folder in RAWS for gain in GAINS]
    files = {g: [{"id": i, **res[i][g]} for i in ids] for g in variants}
    base = f"{RAWS[0]}@{0.7 if 0.7 in GAINS else GAINS[0]}"
    for g in variants:
        finite = {k: [f[k] for f in files[g] if f[k] is not None and math.isfinite(f[k])] for k in KEYS}
        print(g, " ".join(f"{k} {sum(v) / len(v):.4f}" for k, v in finite.items()))
        if g != base:
            d = {k: paired_difference(files[base], files[g], k) for k in KEYS}
            print(f"   vs {base}", " ".join(f"{k} {x['mean']:+.4f}+-{x['ci95']:.4f}" for k, x in d.items()))
