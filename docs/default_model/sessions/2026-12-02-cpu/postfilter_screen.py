"""Screening: a pitch (comb) post-filter on the shipped model's decoded audio, driven by the input's pitch as the
pitch stream would send it (YIN, 16 ms symbols, 53-cent bins). Step 1 decodes and saves (const 0.6), step 2
filters and scores.

python exp2.py decode SEED        -> wav/seedS/*.wav + meta
python exp2.py score SEED VARIANT -> post/VARIANT/seedS.json
"""
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speechvq.assets import resolve_model
from speechvq.audio import load_audio
from speechvq.codec import Codec
from speechvq.config import PitchConfig
from speechvq.data.manifest import read_manifest
from speechvq.evaluation import files_without_speech, pinned_decoding
from speechvq.generation import DecodeOptions
from speechvq.inference import decode_many
from speechvq.metrics import dnsmos, intrusive_scores
from speechvq.pitch import encode_pitch, symbol_f0_hz, track_pitch, is_voiced, voiced_f0

ROOT = Path("/work/diag/vt")
MANIFEST = "/work/diag/cpu3/manifests/test.jsonl"
MAX_SECONDS = 6.0
GROUP = 16
RATE = 16000
PITCH_HOP = 256


def entries():
    items = read_manifest(MANIFEST)
    silent = set(files_without_speech(items))
    return [e for e in items if e.id not in silent]


def decode(seed):
    codec = Codec.from_checkpoint(resolve_model(None), "cpu")
    model = codec.model
    options, desc = pinned_decoding(model.decoder, "native", "reduced")
    options = DecodeOptions(engine=options.engine, precision=options.precision, threads=options.threads)
    folder = ROOT / "wav" / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    todo = []
    for e in entries():
        wav = load_audio(e.path, RATE)[0][: int(MAX_SECONDS * RATE)]
        encoded, _ = codec.read(codec.compress(wav, speaker=e.speaker))
        todo.append((e, encoded))
    todo.sort(key=lambda item: item[1].n_samples)
    for start in range(0, len(todo), GROUP):
        group = todo[start:start + GROUP]
        decoded = decode_many(model, [g[1] for g in group], [None] * len(group), temperature=0.6, seed=seed,
                              options=options)
        for (e, encoded), wav_out in zip(group, decoded):
            sf.write(folder / (e.id.replace("/", "__") + ".wav"), wav_out.numpy(), RATE, subtype="FLOAT")
            (folder / (e.id.replace("/", "__") + ".gain")).write_text(str(encoded.gain))


def delayed(x, lag):
    """x[n - lag] for a per-sample fractional lag array (linear interpolation); zero outside."""
    n = np.arange(len(x), dtype=np.float64)
    pos = n - lag
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    valid_lo = (lo >= 0) & (lo < len(x))
    valid_hi = (lo + 1 >= 0) & (lo + 1 < len(x))
    a = np.where(valid_lo, x[np.clip(lo, 0, len(x) - 1)], 0.0)
    b = np.where(valid_hi, x[np.clip(lo + 1, 0, len(x) - 1)], 0.0)
    return (1 - frac) * a + frac * b


def comb(x, f0_frames, gain, taps, hop=PITCH_HOP):
    """Zero-phase comb: y = x + sum_k g^k (x[n-kT] + x[n+kT]), normalised; T, g per sample from frames."""
    n = len(x)
    frame_of = np.minimum(np.arange(n) // hop, len(f0_frames) - 1)
    f0 = f0_frames[frame_of]
    voiced = f0 > 0
    # smooth the per-sample gain over one frame so frame edges do not click
    g = np.where(voiced, gain, 0.0)
    kernel = np.hanning(hop * 2 + 1)
    kernel /= kernel.sum()
    g = np.convolve(g, kernel, mode="same")
    period = np.where(voiced, RATE / np.maximum(f0, 1.0), 0.0)
    # hold the period through unvoiced stretches (gain is ~0 there) so the interpolation stays sane
    index = np.maximum.accumulate(np.where(period > 0, np.arange(n), 0))
    period = np.where(period[index] > 0, period[index], 100.0)
    y = x.astype(np.float64).copy()
    norm = np.ones(n)
    for k in range(1, taps + 1):
        w = g ** k
        y += w * (delayed(x, k * period) + delayed(x, -k * period))
        norm += 2 * w
    return (y / norm).astype(np.float32), norm


def score(seed, variant):
    target = ROOT / "post" / variant / f"seed{seed}.json"
    if target.exists():
        return
    kind, *params = variant.split("_")
    cfg = PitchConfig(bits=6)
    rows = []
    t0 = time.time()
    for e in entries():
        wav = load_audio(e.path, RATE)[0][: int(MAX_SECONDS * RATE)]
        name = e.id.replace("/", "__")
        out, _ = sf.read(ROOT / "wav" / f"seed{seed}" / (name + ".wav"), dtype="float32")
        gain = float((ROOT / "wav" / f"seed{seed}" / (name + ".gain")).read_text())
        level = wav * gain
        if kind == "none":
            post = out
        else:
            if kind == "sym":  # what the pitch stream sends
                symbols = encode_pitch(level, RATE, PITCH_HOP, cfg)
                f0 = symbol_f0_hz(symbols, cfg).numpy()
            elif kind == "raw":  # the tracker's unquantized F0 where voiced
                track = track_pitch(level, RATE, PITCH_HOP, cfg.fmin_hz, cfg.fmax_hz)
                f0 = torch.where(is_voiced(track, cfg), track.f0_hz, torch.zeros_like(track.f0_hz)).numpy()
            else:
                raise ValueError(kind)
            g, taps = float(params[0]), int(params[1])
            if variant.startswith("sym") and len(params) > 2 and params[2] == "pkg":
                from speechvq.postfilter import pitch_postfilter
                post = pitch_postfilter(torch.from_numpy(out), torch.from_numpy(f0), PITCH_HOP, RATE, g, taps).numpy()
                post = np.clip(post, -1, 1)
                post_t = torch.from_numpy(np.ascontiguousarray(post))
                scores = intrusive_scores(wav, post_t, RATE, max_shift=128)
                _, out_voiced = voiced_f0(post_t * gain, RATE, 64)
                rows.append({"id": e.id, **scores, "dnsmos_ovrl": dnsmos(post_t, RATE)["dnsmos_ovrl"],
                             "out_voiced": float(out_voiced.float().mean())})
                continue
            post, norm = comb(out.astype(np.float64), f0.astype(np.float64), g, taps)
            # keep the frame energy of the decoded output (the comb attenuates the noise between harmonics)
            post = post * (np.sqrt((out.astype(np.float64) ** 2).mean() / max((post.astype(np.float64) ** 2).mean(), 1e-12)))
            post = np.clip(post, -1, 1).astype(np.float32)
        post_t = torch.from_numpy(np.ascontiguousarray(post))
        scores = intrusive_scores(wav, post_t, RATE, max_shift=128)
        _, out_voiced = voiced_f0(post_t * gain, RATE, 64)
        rows.append({"id": e.id, **scores, "dnsmos_ovrl": dnsmos(post_t, RATE)["dnsmos_ovrl"],
                     "out_voiced": float(out_voiced.float().mean())})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"variant": variant, "seed": seed, "seconds": time.time() - t0, "files": rows}))


if __name__ == "__main__":
    if sys.argv[1] == "decode":
        decode(int(sys.argv[2]))
    else:
        score(int(sys.argv[2]), sys.argv[3])
