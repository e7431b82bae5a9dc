"""Screen a short-term (formant) post-filter on stored decodes: H(z) = A(z/gn)/A(z/gd) (1 + mu z^-1), LPC from
the decoded audio itself, frame energy kept. Paired against the stored decodes (off).
usage: screen.py FOLDER(e.g. /work/diag/screen/full/1) SETTINGS(gn:gd:tilt,...) [dnsmos]"""
import json, math, sys, time
from multiprocessing import Pool
import numpy as np, scipy.linalg, scipy.signal, torch
from speechvq.audio import load_audio
from speechvq.evaluation import paired_difference
from speechvq.metrics import dnsmos, intrusive_scores

FOLDER = sys.argv[1]
SETTINGS = [tuple(float(v) for v in s.split(":")) for s in sys.argv[2].split(",")]
WITH_DNSMOS = len(sys.argv) > 3
KEYS = ("pesq_wb", "stoi", "mcd_db", "ffe", "si_sdr_db") + (("dnsmos_ovrl",) if WITH_DNSMOS else ())
manifest = {json.loads(l)["id"]: json.loads(l) for l in open("data/manifests/test.jsonl")}

def formant_postfilter(x, gn, gd, tilt, order=16, hop=160, win=480):
    x = np.asarray(x, np.float64); n = len(x)
    window = np.hanning(win)
    lagw = np.exp(-0.5 * (2 * np.pi * 60 / 16000 * np.arange(order + 1)) ** 2)
    y = np.zeros(n); fir = np.zeros(n)
    prev_y = np.zeros(order + 1)
    gains = []
    kn = gn ** np.arange(order + 1); kd = gd ** np.arange(order + 1)
    xp = np.concatenate([np.zeros(order), x])
    for start in range(0, n, hop):
        stop = min(start + hop, n)
        c = (start + stop) // 2
        lo = c - win // 2
        seg = np.zeros(win); a0, b0 = max(lo, 0), min(lo + win, n)
        seg[a0 - lo:b0 - lo] = x[a0:b0]
        seg *= window
        r = np.correlate(seg, seg, "full")[win - 1:win + order] * lagw
        if r[0] <= 1e-9:
            y[start:stop] = x[start:stop]; continue
        r[0] *= 1.0001
        a = np.concatenate([[1.0], -scipy.linalg.solve_toeplitz(r[:order], r[1:order + 1])])
        num, den = a * kn, a * kd
        # FIR part from the input's own past
        seg_in = xp[start:stop + order]
        f = np.convolve(seg_in, num)[order:order + stop - start]
        # tilt from the impulse response of num/den
        imp = scipy.signal.lfilter(num, den, np.eye(1, 24)[0])
        k1 = -np.dot(imp[:-1], imp[1:]) / np.dot(imp, imp)
        mu = tilt * k1 if k1 < 0 else 0.0
        zi = scipy.signal.lfiltic([1.0], den, prev_y[::-1][:order])
        out, _ = scipy.signal.lfilter([1.0], den, f, zi=zi)
        prev_y = np.concatenate([prev_y, out])[-(order + 1):]
        y[start:stop] = out
        gains.append((start, stop, mu))
    # tilt compensation per frame, then energy kept per frame (smoothed)
    z = y.copy()
    for start, stop, mu in gains:
        z[start:stop] = y[start:stop] + mu * np.concatenate([[y[start - 1] if start else 0.0], y[start:stop - 1]])
    ex = np.convolve(x ** 2, np.hanning(2 * hop + 1), "same"); ez = np.convolve(z ** 2, np.hanning(2 * hop + 1), "same")
    g = np.sqrt((ex + 1e-9) / (ez + 1e-9))
    return np.clip(z * g, -1, 1)

def score(fid):
    torch.set_num_threads(1)
    ref = load_audio(manifest[fid]["path"], 16000)[0]
    out = {}
    for seed in (0, 1):
        dec = load_audio(f"{FOLDER}/seed{seed}/wav/{fid.replace('/', '__')}.wav", 16000)[0]
        for s in [None] + SETTINGS:
            yv = dec if s is None else torch.from_numpy(formant_postfilter(dec.numpy(), *s)).float()
            sc = intrusive_scores(ref, yv, 16000, 128)
            if WITH_DNSMOS:
                sc["dnsmos_ovrl"] = dnsmos(yv, 16000)["dnsmos_ovrl"]
            for k in KEYS:
                out.setdefault(str(s), {}).setdefault(k, []).append(sc[k])
    return fid, {g: {k: sum(v) / len(v) for k, v in d.items()} for g, d in out.items()}

if __name__ == "__main__":
    excluded = {"ivr_ru/ru_silence_2"}
    ids = [k for k in manifest if k not in excluded]
    if len(sys.argv) > 4: ids = ids[::int(sys.argv[4])]
    t = time.time()
    with Pool(2) as pool:
        res = dict(pool.imap_unordered(score, ids))
    print(f"{FOLDER}: {len(ids)} files, {time.time() - t:.0f} s", flush=True)
    variants = [str(s) for s in [None] + SETTINGS]
    files = {g: [{"id": i, **res[i][g]} for i in ids] for g in variants}
    for g in variants:
        finite = {k: [f[k] for f in files[g] if f[k] is not None and math.isfinite(f[k])] for k in KEYS}
        print(g, " ".join(f"{k} {sum(v) / len(v):.4f}" for k, v in finite.items()))
        if g != "None":
            d = {k: paired_difference(files["None"], files[g], k) for k in KEYS}
            print("   vs off", " ".join(f"{k} {x['mean']:+.4f}+-{x['ci95']:.4f}" for k, x in d.items()), flush=True)
