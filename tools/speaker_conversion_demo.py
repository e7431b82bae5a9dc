#!/usr/bin/env python3
"""Voice conversion, heard and measured: a grid of converted WAVs, one PNG of spectrograms, a similarity table.

For a few source utterances (held-out ones, from a manifest) and target speakers, the codes of each source
are decoded with each target's speaker embedding. Each output is then scored with a pretrained
speaker-verification encoder (Resemblyzer, offline; the `eval` extra): cosine similarity to the target
speaker's real speech (the mean embedding of up to --references other utterances of the target in the
manifest) and to the source speaker's (likewise, the source utterance excluded). A conversion succeeds when it
is closer to the target than to the source; the table reports how often.

    python tools/speaker_conversion_demo.py --manifest data/manifests/test.jsonl --out exp/vc_demo \\
        --sources 4 --targets carlo june tux_fr
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from speechvq.assets import resolve_model
from speechvq.atomic import write_bytes_atomic
from speechvq.audio import load_audio, save_audio
from speechvq.checkpoint import load_model
from speechvq.data.manifest import Utterance, read_manifest
from speechvq.errors import SpeechVQError
from speechvq.inference import decode_many, encode_waveform, speaker_row
from speechvq.plots import save_spectrogram_grid
from speechvq.similarity import SpeakerSimilarity


def pick_sources(entries: list[Utterance], count: int, targets: list[str], min_seconds: float) -> list[Utterance]:
    """The first long-enough utterance of each speaker (targets last), until `count` are chosen."""
    by_speaker: dict[str, Utterance] = {}
    for entry in entries:
        if entry.speaker not in by_speaker and entry.duration_s >= min_seconds:
            by_speaker[entry.speaker] = entry
    order = sorted(by_speaker, key=lambda s: (s in targets, s))
    return [by_speaker[s] for s in order[:count]]


def speaker_embedding(scorer: SpeakerSimilarity, entries: list[Utterance], speaker: str, exclude: str,
                      limit: int, rate: int) -> np.ndarray:
    """Mean (renormalised) embedding of up to `limit` utterances of `speaker`, `exclude` (an id) left out."""
    chosen = [e for e in entries if e.speaker == speaker and e.id != exclude][:limit]
    if not chosen:
        raise SpeechVQError(f"the manifest holds no reference utterance of {speaker}")
    mean = np.mean([scorer.embed(load_audio(e.path, rate)[0], rate) for e in chosen], axis=0)
    return mean / np.linalg.norm(mean)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="held-out utterances (sources and references)")
    parser.add_argument("--targets", nargs="+", required=True, help="target speakers (from the model's table)")
    parser.add_argument("--sources", type=int, default=4, help="source utterances, one per speaker")
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-seconds", type=float, default=3.0, help="only the first S seconds of each source")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="shortest source utterance considered")
    parser.add_argument("--references", type=int, default=5, help="utterances per speaker embedding")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    try:
        scorer = SpeakerSimilarity()
        model = load_model(resolve_model(args.model))
        rate = model.sample_rate
        for target in args.targets:
            speaker_row(model, target)
        entries = read_manifest(args.manifest)
        sources = pick_sources(entries, args.sources, args.targets, args.min_seconds)
        jobs = [(s, t) for s in sources for t in args.targets if t != s.speaker]
        if not jobs:
            raise SpeechVQError("no source utterance of another speaker than the targets")
        # each source also decoded in its own voice: how close plain resynthesis gets, the yardstick
        jobs += [(s, s.speaker) for s in sources if s.speaker in model.speakers]
        audio = {s.id: load_audio(s.path, rate)[0][: int(args.max_seconds * rate)] for s in sources}
        encoded = {s.id: encode_waveform(model, audio[s.id], speaker=None) for s in sources}
        print(f"converting {len(sources)} sources into {len(args.targets)} voices ({len(jobs)} outputs)",
              file=sys.stderr)
        outputs = decode_many(model, [encoded[s.id] for s, _ in jobs], [t for _, t in jobs], seed=args.seed)
        embeddings = {}
        for speaker in {s.speaker for s in sources} | set(args.targets):
            excluded = next((s.id for s in sources if s.speaker == speaker), "")
            embeddings[speaker] = speaker_embedding(scorer, entries, speaker, excluded, args.references, rate)
    except SpeechVQError as err:
        print(f"speaker_conversion_demo: {err}", file=sys.stderr)
        return 1

    rows, resynthesis = [], []
    for (source, target), wav in zip(jobs, outputs):
        if target == source.speaker:
            resynthesis.append({"source": source.id, "to_source": float(scorer.embed(wav, rate)
                                                                        @ embeddings[source.speaker])})
            continue
        name = f"{source.id.replace('/', '__')}__to__{target}.wav"
        save_audio(out / "wav" / name, wav, rate)
        embedding = scorer.embed(wav, rate)
        rows.append({"source": source.id, "source_speaker": source.speaker, "target": target, "wav": f"wav/{name}",
                     "to_target": float(embedding @ embeddings[target]),
                     "to_source": float(embedding @ embeddings[source.speaker])})
    successes = sum(r["to_target"] > r["to_source"] for r in rows)
    grid = [[("original", audio[s.id])] + [(f"to {t}", wav) for (src, t), wav in zip(jobs, outputs)
                                           if src is s and t != s.speaker] for s in sources]
    save_spectrogram_grid(out / "spectrograms.png", grid, rate, row_titles=[s.id for s in sources])
    lines = ["| source | target | similarity to target | similarity to source | closer to target |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['source']} | {r['target']} | {r['to_target']:.3f} | {r['to_source']:.3f} | "
              f"{'yes' if r['to_target'] > r['to_source'] else 'no'} |" for r in rows]
    lines += ["", f"Closer to the target than to the source in {successes} of {len(rows)} conversions "
              f"(Resemblyzer cosine similarity; speaker embeddings from up to {args.references} held-out "
              f"utterances each)."]
    if resynthesis:
        mean = sum(r["to_source"] for r in resynthesis) / len(resynthesis)
        lines += [f"Yardstick: the sources decoded in their own voices score {mean:.3f} on average against their "
                  f"speakers ({len(resynthesis)} utterances)."]
    table = "\n".join(lines) + "\n"
    write_bytes_atomic(out / "similarity.md", table.encode())
    write_bytes_atomic(out / "similarity.json", (json.dumps({"rows": rows, "successes": successes,
                                                              "resynthesis": resynthesis}, indent=1) + "\n").encode())
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
