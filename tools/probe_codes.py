#!/usr/bin/env python3
"""Do the codes keep content and drop the speaker? A speaker probe on codes vs continuous latents, and phone purity.

Speaker probe: per-frame features of held-out utterances, either the quantized vectors (what the codes carry)
or the continuous encoder outputs, feed a small classifier of the speaker trained on half of each speaker's
utterances and tested on the other half. Accuracies are printed next to chance (always guessing the most
frequent speaker). Phone purity (with --alignments): each code is mapped to the phone it most often coincides
with; the share of frames that mapping labels correctly, next to always guessing the most frequent phone.

    python tools/probe_codes.py --manifest data/manifests/test.jsonl --out exp/probe
    python tools/probe_codes.py --manifest test.jsonl --alignments alignments.ctm       # or a folder of TextGrids
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from speechvq.analysis import frame_labels, phone_purity, read_ctm, read_textgrid, speaker_probe
from speechvq.assets import resolve_model
from speechvq.atomic import write_bytes_atomic
from speechvq.audio import load_audio, normalize_level
from speechvq.checkpoint import load_model
from speechvq.data.manifest import read_manifest
from speechvq.errors import SpeechVQError


@torch.no_grad()
def latents(model, wav: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(continuous encoder outputs [F, D], quantized vectors [F, D], codes [F]) of float `[T]` audio."""
    level, _ = normalize_level(wav, model.config.level_dbfs)
    z_e = model.encoder(level.clamp(-1, 1).view(1, 1, -1))  # [1, D, F]
    codes = model.quantizer.nearest(z_e[0].t().float())
    return z_e[0].t().numpy(), model.quantizer.lookup(codes.view(1, -1))[0].t().numpy(), codes.numpy()


def alignments_for(source: Path, utterance_ids: list[str], tier: str) -> dict[str, list]:
    """Phone intervals per utterance id, from a CTM file or a folder of <id basename>.TextGrid files."""
    if source.is_file():
        by_key = read_ctm(source)
        # a CTM names utterances its own way: accept the full id or its last path component
        return {u: by_key.get(u, by_key.get(u.split("/")[-1])) for u in utterance_ids
                if u in by_key or u.split("/")[-1] in by_key}
    if not source.is_dir():
        raise SpeechVQError(f"no such alignment file or folder: {source}")
    found = {}
    for u in utterance_ids:
        path = source / f"{u.split('/')[-1]}.TextGrid"
        if path.is_file():
            found[u] = read_textgrid(path, tier)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="held-out utterances with their speakers")
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument("--max-files", type=int, default=None)
    parser.add_argument("--max-seconds", type=float, default=10.0, help="only the first S seconds of each")
    parser.add_argument("--alignments", type=Path, default=None, help="CTM file or folder of TextGrids")
    parser.add_argument("--tier", default="phones", help="TextGrid tier holding the phones")
    parser.add_argument("--out", type=Path, default=None, help="write probe.json here")
    args = parser.parse_args()
    torch.manual_seed(0)
    try:
        model = load_model(resolve_model(args.model))
        entries = read_manifest(args.manifest)[: args.max_files]
        speakers = sorted({e.speaker for e in entries})
        if len(speakers) < 2:
            raise SpeechVQError("the speaker probe needs utterances of at least two speakers")
        rate, frame_s = model.sample_rate, model.hop_length / model.sample_rate
        features = []
        for entry in entries:
            wav = load_audio(entry.path, rate)[0][: int(args.max_seconds * rate)]
            features.append((entry, *latents(model, wav)))
        seen: dict[str, int] = {}
        halves: dict[str, tuple[list, list]] = {"continuous": ([], []), "codes": ([], [])}
        for entry, z_e, z_q, _ in features:  # alternate each speaker's utterances between training and test
            half = seen.get(entry.speaker, 0) % 2
            seen[entry.speaker] = seen.get(entry.speaker, 0) + 1
            label = speakers.index(entry.speaker)
            halves["continuous"][half].append((z_e, label))
            halves["codes"][half].append((z_q, label))
        lonely = sorted(speaker for speaker, count in seen.items() if count < 2)
        if lonely:
            raise SpeechVQError(f"every speaker needs two utterances or more for the speaker probe; "
                                f"{', '.join(lonely)} {'has' if len(lonely) == 1 else 'have'} one")
        results = {"utterances": len(entries), "speakers": len(speakers)}
        for name, (train, test) in halves.items():
            results[f"speaker_probe_{name}"] = asdict(speaker_probe(train, test, len(speakers)))
        if args.alignments is not None:
            aligned = alignments_for(args.alignments, [e.id for e, *_ in features], args.tier)
            if not aligned:
                raise SpeechVQError(f"no utterance of the manifest has alignments in {args.alignments}")
            codes = [c for e, _, _, c in features if e.id in aligned]
            labels = [frame_labels(aligned[e.id], len(c), frame_s) for e, _, _, c in features if e.id in aligned]
            results["phone_purity"] = asdict(phone_purity(codes, labels, ignore=("", "sil", "sp", "spn")))
    except SpeechVQError as err:
        print(f"probe_codes: {err}", file=sys.stderr)
        return 1

    print(f"{results['utterances']} utterances of {results['speakers']} speakers (half for training the probe, "
          f"half for testing)")
    for name in ("continuous", "codes"):
        r = results[f"speaker_probe_{name}"]
        print(f"speaker from {name:>10}: frame accuracy {r['frame_accuracy']:.3f} (chance {r['frame_chance']:.3f}), "
              f"utterance accuracy {r['utterance_accuracy']:.3f} (chance {r['utterance_chance']:.3f})")
    if "phone_purity" in results:
        p = results["phone_purity"]
        print(f"phone purity: {p['purity']:.3f} (chance {p['chance']:.3f}) over {p['frames']} frames, "
              f"{p['codes_used']} codes, {p['phones']} phones")
    if args.out:
        write_bytes_atomic(args.out / "probe.json", (json.dumps(results, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
