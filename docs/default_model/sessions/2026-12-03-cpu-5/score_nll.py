#!/usr/bin/env python3
"""Teacher-forced NLL of whole utterances (each from its own start, real past throughout), voiced and unvoiced
samples apart (the pitch stream's voicing), for several models on the same files; each model after the first
is paired with the first over files (mean difference and its 95% interval).

    python score_nll.py MANIFEST OUT.json MODEL [MODEL ...]
"""

from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F

from speechvq.audio import load_audio, mu_law_silence, normalize_level
from speechvq.checkpoint import load_model
from speechvq.data.manifest import read_manifest
from speechvq.evaluation import mean_interval
from speechvq.inference import encode_waveform, resolve_voice
from speechvq.pitch import voiced_f0


@torch.no_grad()
def file_nll(model, path: str, speaker: str) -> dict:
    """{"voiced": [nll sum, samples], "unvoiced": [...]} of one file, teacher-forced from its start."""
    rate, hop = model.sample_rate, model.hop_length
    wav = load_audio(path, rate)[0]
    encoded = encode_waveform(model, wav, speaker if speaker in model.speakers else None)
    pitch = None if encoded.pitch is None else encoded.pitch.view(1, -1)
    local = model.local_conditioning(encoded.codes.view(1, -1), pitch)
    vector = resolve_voice(model, encoded).vector
    level_wav = normalize_level(wav, model.config.level_dbfs)[0].clamp(-1.0, 1.0)
    targets = model.mu_law_targets(level_wav[None])
    inputs = F.pad(targets[:, :-1], (1, 0), value=mu_law_silence(model.classes))
    period = model.lag_periods(pitch, local.shape[-1])
    logits = model.decoder(inputs, local=local, speaker=None if vector is None else vector.view(1, -1),
                           period=period)
    nll = F.cross_entropy(logits.float(), targets, reduction="none")[0]
    pitch_hop = model.config.pitch.frame_codes * hop
    voiced = voiced_f0(level_wav, rate, pitch_hop, model.config.pitch)[1].repeat_interleave(pitch_hop)[:nll.numel()]
    return {name: [float(nll[mask].sum()), int(mask.sum())] for name, mask in (("voiced", voiced),
                                                                                 ("unvoiced", ~voiced))}


def main() -> int:
    manifest, out, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
    torch.manual_seed(0)
    entries = read_manifest(manifest)
    per_model = {}
    for path in paths:
        model = load_model(path).eval()
        per_model[path] = [file_nll(model, e.path, e.speaker) for e in entries]
    report = {"manifest": manifest, "files": len(entries), "models": {}}
    first = paths[0]
    for path, files in per_model.items():
        row = {}
        for name in ("voiced", "unvoiced", "all"):
            def mean(f):  # a file's mean NLL of the class
                s, n = (f["voiced"][0] + f["unvoiced"][0], f["voiced"][1] + f["unvoiced"][1]) if name == "all" \
                    else f[name]
                return s / n if n else None
            totals = [(mean(f), mean(g)) for f, g in zip(files, per_model[first])]
            totals = [(a, b) for a, b in totals if a is not None and b is not None]
            row[name] = {"nll": sum(a for a, _ in totals) / len(totals)}
            if path != first:
                interval = mean_interval([a - b for a, b in totals])
                row[name].update(diff=interval["mean"], ci95=interval["ci95"])
        report["models"][path] = row
        print(path, json.dumps(row))
    with open(out, "w") as handle:
        json.dump(report, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
