"""Screening: a short-term (formant) post-filter A(z/gn)/A(z/gd) (1 + gt k1 z^-1) on the shipped model's decodes
(ship_pf: full files, full precision, pitch post-filter 0.7 already applied), LPC from the decoded audio itself.

python exp.py SEED VARIANT   VARIANT = none | f_GN_GD_GT[_ORDER]
"""
import json
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import scipy.signal
import soundfile as sf
import torch

from speechvq.audio import load_audio
from speechvq.data.manifest import read_manifest
from speechvq.evaluation import files_without_speech
from speechvq.metrics import dnsmos, intrusive_scores
from speechvq.postfilter import _smooth

ROOT = Path("/work/diag/fpf")
DEC = Path("/work/diag/ship_pf/default-9b21b754")
MANIFEST = "/work/diag/cpu3/manifests/test.jsonl"
RATE = 16000
HOP = 160
WIN = 512


def entries():
    items = read_manifest(MANIFEST)
    silent = set(files_without_speech(items))
    return [e for e in items if e.id not in silent]


def formant_postfilter(x, gn, gd, gt, order=16):
    x = x.astype(np.float64)
    n = len(x)
    frames = -(-n // HOP)
    padded = np.pad(x, (WIN // 2, WIN // 2 + frames * HOP - n + HOP))
    win = np.hanning(WIN)
    rng = np.random.default_rng(0)
    y = np.zeros(frames * HOP)
    xin = np.pad(x, (0, frames * HOP - n))
    x_past = np.zeros(order)
    y_past = np.zeros(order)
    last_t = 0.0
    powers = np.arange(order + 1)
    for f in range(frames):
        seg = padded[f * HOP + HOP // 2: f * HOP + HOP // 2 + WIN] * win
        seg = seg + 1e-6 * rng.standard_normal(WIN)
        a = librosa.lpc(seg, order=order)
        b = a * gn ** powers
        d = a * gd ** powers
        # tilt from the first two autocorrelations of the truncated impulse response of B/D
        imp = np.zeros(64); imp[0] = 1
        h = scipy.signal.lfilter(b, d, imp)
        k1 = -np.dot(h[1:], h[:-1]) / np.dot(h, h)
        mu = gt * k1 if k1 < 0 else 0.0
        chunk = xin[f * HOP:(f + 1) * HOP]
        zi = scipy.signal.lfiltic(b, d, y_past[::-1], x_past[::-1])
        out, _ = scipy.signal.lfilter(b, d, chunk, zi=zi)
        hist = np.concatenate([x_past, chunk]); x_past = hist[-order:]
        hist = np.concatenate([y_past, out]); y_past = hist[-order:]
        # tilt compensation 1 + mu z^-1 (mu <= 0 for the usual low-pass tilt)
        prev = np.concatenate([[last_t], out[:-1]])
        last_t = out[-1]
        y[f * HOP:(f + 1) * HOP] = out + mu * prev
    y = y[:n]
    # keep the local loudness of the input (two 16 ms frames of smoothing, as the pitch post-filter)
    pin = _smooth(torch.from_numpy(x * x), 256).numpy()
    pout = _smooth(torch.from_numpy(y * y), 256).numpy()
    ratio = np.sqrt(np.clip(pin, 0, None) / np.maximum(pout, 1e-12))
    ratio = np.minimum(ratio, 4.0)
    return (y * ratio).astype(np.float32)


def score(seed, variant):
    target = ROOT / "post" / variant / f"seed{seed}.json"
    if target.exists():
        return
    rows = []
    t0 = time.time()
    filt_seconds = 0.0
    for e in entries():
        wav = load_audio(e.path, RATE)[0]
        name = e.id.replace("/", "__")
        out, _ = sf.read(DEC / f"seed{seed}" / "wav" / (name + ".wav"), dtype="float32")
        if variant == "none":
            post = out
        else:
            parts = variant.split("_")
            gn, gd, gt = map(float, parts[1:4])
            order = int(parts[4]) if len(parts) > 4 else 16
            t1 = time.time()
            post = formant_postfilter(out, gn, gd, gt, order)
            filt_seconds += time.time() - t1
            post = np.clip(post, -1, 1)
        post_t = torch.from_numpy(np.ascontiguousarray(post))
        scores = intrusive_scores(wav, post_t, RATE, max_shift=128)
        rows.append({"id": e.id, **scores, "dnsmos_ovrl": dnsmos(post_t, RATE)["dnsmos_ovrl"]})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"variant": variant, "seed": seed, "seconds": time.time() - t0,
                                  "filter_seconds": filt_seconds, "files": rows}))


if __name__ == "__main__":
    score(int(sys.argv[1]), sys.argv[2])
