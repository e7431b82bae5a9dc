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

from speechvq.audio import load_audio, mu_law_silence
from speechvq.checkpoint import load_model
from speechvq.data.manifest import read_manifest
from speechvq.evaluation import mean_interval
from speechvq.inference import scoring_inputs


@torch.no_grad()
def file_nll(model, path: str, speaker: str) -> dict:
    """{"voiced": [nll sum, samples], "unvoiced": [...]} of one file, teacher-forced from its start."""
    inputs = scoring_inputs(model, load_audio(path, model.sample_rate)[0], speaker)
    targets = model.mu_law_targets(inputs.level_wav[None])
    previous = F.pad(targets[:, :-1], (1, 0), value=mu_law_silence(model.classes))
    logits = model.decoder(previous, local=inputs.local[None],
                           speaker=None if inputs.vector is None else inputs.vector.view(1, -1),
                           period=None if inputs.period is None else inputs.period[None])
    nll = F.cross_entropy(logits.float(), targets, reduction="none")[0]
    voiced = inputs.voiced[:nll.numel()]
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
