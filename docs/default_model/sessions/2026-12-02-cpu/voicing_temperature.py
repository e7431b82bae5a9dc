"""Screening: voicing-dependent sampling temperature (LPCNet's pitch-correlation sharpening, FFTNet's
conditional sampling) with the shipped model, voicing taken from the INPUT (oracle: what a transmitted
voicing/periodicity stream would give). Per-frame temperature is applied by scaling each frame's Gumbel
noise (argmax(l/T + g) = argmax(l + T g)), engine temperature 1.

python exp.py OUT SETTING SEED
"""
import json
import sys
import time
from pathlib import Path

import torch

import speechvq.generation.engine as engine_mod
from speechvq.assets import resolve_model
from speechvq.audio import load_audio
from speechvq.codec import Codec
from speechvq.data.manifest import read_manifest
from speechvq.evaluation import files_without_speech, pinned_decoding
from speechvq.generation import DecodeOptions
from speechvq.inference import decode_many
from speechvq.metrics import dnsmos, intrusive_scores
from speechvq.pitch import track_pitch, voiced_f0
from speechvq.config import PitchConfig

MANIFEST = "/work/diag/cpu3/manifests/test.jsonl"
MAX_SECONDS = 6.0
GROUP = 16

STATE = {"scale": None, "frame": 0}
_orig = engine_mod._block_noise


def _patched(generator, hop, batch, classes, n_frames, n_steps):
    noise = _orig(generator, hop, batch, classes, n_frames, n_steps)
    f0 = STATE["frame"]
    STATE["frame"] += n_frames
    scale = STATE["scale"][:, f0:f0 + n_frames].repeat_interleave(hop, dim=1)[:, :n_steps]
    return noise * scale.t().unsqueeze(-1).float()


engine_mod._block_noise = _patched


def periodicity(level_wav, rate, hop):
    """g in [0, 1] per code frame (1 - YIN d'), 0 in silence or out of range; and the binary voicing."""
    cfg = PitchConfig()
    track = track_pitch(level_wav, rate, hop, cfg.fmin_hz, cfg.fmax_hz)
    g = (1.0 - track.aperiodicity).clamp(0, 1)
    ok = (track.level_dbfs > cfg.silence_dbfs) & (track.f0_hz >= cfg.fmin_hz * 0.97) & \
        (track.f0_hz <= cfg.fmax_hz * 1.03)
    voiced = ok & (track.aperiodicity < cfg.voicing_threshold)
    return torch.where(ok, g, torch.zeros_like(g)), voiced


def temperatures(setting, g, voiced):
    kind, *params = setting.split("_")
    if kind == "const":
        return torch.full_like(g, float(params[0]))
    if kind == "lpc":  # LPCNet: logits x c, c = 1 + max(0, 1.5 g - 0.5)
        c = 1.0 + (1.5 * g - 0.5).clamp(min=0)
        return float(params[0]) / c
    if kind == "bin":
        return torch.where(voiced, torch.full_like(g, float(params[0])), torch.full_like(g, float(params[1])))
    raise ValueError(setting)


def main():
    out, setting, seed = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    target = out / setting / f"seed{seed}.json"
    if target.exists():
        return
    codec = Codec.from_checkpoint(resolve_model(None), "cpu")
    model = codec.model
    rate, hop = model.sample_rate, model.hop_length
    entries = read_manifest(MANIFEST)
    silent = set(files_without_speech(entries))
    entries = [e for e in entries if e.id not in silent]
    options, desc = pinned_decoding(model.decoder, "native", "reduced")
    options = DecodeOptions(engine=options.engine, precision=options.precision, threads=options.threads,
                            mode="sequential", max_batch=GROUP)
    items = []
    for e in entries:
        wav = load_audio(e.path, rate)[0][: int(MAX_SECONDS * rate)]
        encoded, _ = codec.read(codec.compress(wav, speaker=e.speaker))
        g, voiced = periodicity(wav * encoded.gain, rate, hop)
        items.append((e, wav, encoded, g, voiced))
    items.sort(key=lambda item: item[2].n_samples)
    rows, t0 = [], time.time()
    for start in range(0, len(items), GROUP):
        group = items[start:start + GROUP]
        n_frames = max(item[3].numel() for item in group)
        scale = torch.ones(len(group), n_frames)
        for row, item in enumerate(group):
            temps = temperatures(setting, item[3], item[4])
            scale[row, :temps.numel()] = temps
        STATE["scale"], STATE["frame"] = scale, 0
        decoded = decode_many(model, [item[2] for item in group], [None] * len(group), temperature=1.0,
                              seed=seed, options=options)
        for item, wav_out in zip(group, decoded):
            e, wav, encoded, g, voiced = item
            scores = intrusive_scores(wav, wav_out, rate, max_shift=2 * hop)
            _, out_voiced = voiced_f0(wav_out * encoded.gain, rate, hop)
            temps = temperatures(setting, g, voiced)
            rows.append({"id": e.id, **scores, "dnsmos_ovrl": dnsmos(wav_out, rate)["dnsmos_ovrl"],
                         "in_voiced": float(voiced.float().mean()), "out_voiced": float(out_voiced.float().mean()),
                         "mean_t_voiced": float(temps[voiced].mean()) if voiced.any() else None,
                         "mean_t_unvoiced": float(temps[~voiced].mean()) if (~voiced).any() else None})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"setting": setting, "seed": seed, "decoding": desc, "seconds": time.time() - t0,
                                  "files": rows}, indent=1))


if __name__ == "__main__":
    main()
