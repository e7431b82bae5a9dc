import json, sys, math
from pathlib import Path
import numpy as np
out = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/diag/vt/out"); REF = sys.argv[2] if len(sys.argv) > 2 else "const_0.6"
keys = ["pesq_wb", "stoi", "mcd_db", "ffe", "f0_vde", "f0_gpe", "dnsmos_ovrl", "si_sdr_db", "out_voiced", "mean_t_voiced", "mean_t_unvoiced"]
def load(setting):
    runs = [json.loads(p.read_text()) for p in sorted((out / setting).glob("seed*.json"))]
    per = {}
    for r in runs:
        for f in r["files"]:
            per.setdefault(f["id"], []).append(f)
    avg = {}
    for i, fs in per.items():
        avg[i] = {k: (np.nanmean([x[k] if x.get(k) is not None else np.nan for x in fs])) for k in keys}
    return avg, len(runs)
ref, _ = load(REF)
settings = sorted(p.name for p in out.iterdir() if p.is_dir())
for s in settings:
    avg, n = load(s)
    ids = [i for i in avg if i in ref]
    line = [f"{s:14s} seeds={n}"]
    for k in keys:
        vals = np.array([avg[i][k] for i in ids]); d = np.array([avg[i][k] - ref[i][k] for i in ids])
        m = np.isfinite(d)
        line.append(f"{k} {np.nanmean(vals):.4f} ({d[m].mean():+.4f}+-{1.96*d[m].std(ddof=1)/math.sqrt(m.sum()):.4f})")
    print("\n   ".join(line))
