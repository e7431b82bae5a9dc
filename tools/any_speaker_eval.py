#!/usr/bin/env python3
"""How well a model carries voices it never trained on: resynthesis, speaker identification, --like conversion.

For the utterances of held-out speakers (a recipe's unseen.jsonl), with a pretrained speaker-verification
encoder (Resemblyzer's GE2E, the `eval` extra) as the judge:

    resynthesis   each utterance encoded as a user's file is (no --speaker: an utterance-mode model records its
                  own speaker vector, a table model its closest training voice) and decoded: cosine similarity
                  of decoded vs original, and speaker identification of the decoded audio among the real speech
                  of every speaker in --corpus (nearest speaker centroid; chance is 1 / speakers)
    conversion    each utterance decoded `like` a reference utterance of another held-out speaker (what
                  `speechvq convert SRC --like REF` does): similarity to the reference's speaker and to the
                  source's, and identification as the reference's speaker
    originals     the same identification on the real utterances: the judge's own ceiling
    file sizes    a 2 s and a 10 s excerpt (utterances of one speaker joined) in format versions 1 and 2:
                  bytes and the three bitrates

Centroids are mean embeddings of --references utterances per speaker, never the ones evaluated.

    python tools/any_speaker_eval.py --model exp/cpu_utt/best.pt --unseen data/manifests/unseen.jsonl \\
        --corpus data/manifests/all.jsonl --out exp/cpu_utt/any_speaker --files 8 --max-seconds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from speechvq.assets import resolve_model
from speechvq.atomic import write_bytes_atomic
from speechvq.audio import load_audio, save_audio
from speechvq.codec import Codec
from speechvq.data.manifest import Utterance, read_manifest
from speechvq.errors import SpeechVQError
from speechvq.inference import decode_many, reference_voice
from speechvq.similarity import SpeakerSimilarity


def centroids(scorer: SpeakerSimilarity, entries: list[Utterance], exclude: set[str], per_speaker: int,
              rate: int) -> dict[str, np.ndarray]:
    """Unit-length mean embedding of up to `per_speaker` utterances of each speaker (ids in `exclude` left out)."""
    chosen: dict[str, list[Utterance]] = defaultdict(list)
    for entry in entries:
        if entry.id not in exclude and len(chosen[entry.speaker]) < per_speaker and entry.duration_s >= 1.0:
            chosen[entry.speaker].append(entry)
    result = {}
    for speaker, items in sorted(chosen.items()):
        mean = np.mean([scorer.embed(load_audio(e.path, rate)[0], rate) for e in items], axis=0)
        result[speaker] = mean / np.linalg.norm(mean)
    return result


def identify(embedding: np.ndarray, table: dict[str, np.ndarray]) -> str:
    """The speaker whose centroid is nearest (highest cosine)."""
    return max(table, key=lambda speaker: float(embedding @ table[speaker]))


def file_sizes(codec: Codec, entries: list[Utterance], rate: int) -> list[dict]:
    """Bytes and bitrates of a 2 s and a 10 s excerpt (one speaker's utterances joined) in format versions 1
    and 2. Version 1 cannot hold a speaker vector: there the same codes record the first named voice."""
    speaker = entries[0].speaker
    audio = torch.cat([load_audio(e.path, rate)[0] for e in entries if e.speaker == speaker][:20])
    rows = []
    for seconds in (2, 10):
        if audio.numel() < seconds * rate:
            continue
        encoded = codec.encode(audio[: seconds * rate])
        for version in (1, 2):
            item = encoded
            if version == 1 and encoded.speaker_levels is not None and codec.model.has_voices:
                item = dataclasses.replace(encoded, speaker=codec.model.speakers[0], speaker_levels=None)
            data = codec.to_bytes(item, version=version)
            _, info = codec.read(data)
            rows.append({"seconds": seconds, "version": version, "bytes": len(data), "coding": info.header.coding,
                         "speaker": info.header.speaker_kind,
                         **{k: round(v, 1) for k, v in info.bitrates(len(data)).items()}})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument("--unseen", required=True, help="manifest of the held-out speakers' utterances")
    parser.add_argument("--corpus", required=True, help="manifest of every speaker's utterances (centroids)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--files", type=int, default=8, help="utterances per held-out speaker")
    parser.add_argument("--min-seconds", type=float, default=1.5, help="shortest utterance evaluated")
    parser.add_argument("--max-seconds", type=float, default=3.0, help="only the first S seconds of each")
    parser.add_argument("--references", type=int, default=20, help="utterances per speaker centroid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    try:
        scorer = SpeakerSimilarity()
        codec = Codec.from_checkpoint(resolve_model(args.model))
        model, rate = codec.model, codec.model.sample_rate
        unseen = read_manifest(args.unseen)
        speakers = sorted({e.speaker for e in unseen})
        if len(speakers) < 2:
            raise SpeechVQError("the unseen manifest needs two or more speakers (conversion pairs them up)")
        picked = {s: [e for e in unseen if e.speaker == s and e.duration_s >= args.min_seconds][: args.files]
                  for s in speakers}
        evaluated = [e for s in speakers for e in picked[s]]
        table = centroids(scorer, read_manifest(args.corpus), {e.id for e in evaluated}, args.references, rate)
        audio = {e.id: load_audio(e.path, rate)[0][: int(args.max_seconds * rate)] for e in evaluated}
        encoded = [codec.encode(audio[e.id]) for e in evaluated]
        # conversion: each source like the utterance at the same position of the next held-out speaker
        pairs = []
        for index, speaker in enumerate(speakers):
            references = picked[speakers[(index + 1) % len(speakers)]]
            pairs += list(zip(picked[speaker], references))
        likes = [reference_voice(model, audio[ref.id], ref.id) for _, ref in pairs]
        print(f"decoding {len(evaluated)} resyntheses and {len(pairs)} conversions", file=sys.stderr)
        outputs = decode_many(model, encoded + [encoded[evaluated.index(src)] for src, _ in pairs],
                              [None] * len(evaluated) + likes, seed=args.seed)
    except SpeechVQError as err:
        print(f"any_speaker_eval: {err}", file=sys.stderr)
        return 1

    resynthesis, conversion, originals = [], [], []
    for entry, item, wav in zip(evaluated, encoded, outputs):
        save_audio(out / "wav" / f"{entry.id.replace('/', '__')}.decoded.wav", wav, rate)
        embedding, original = scorer.embed(wav, rate), scorer.embed(audio[entry.id], rate)
        resynthesis.append({"id": entry.id, "speaker": entry.speaker, "recorded_voice": item.speaker or "own vector",
                            "similarity": float(embedding @ original), "identified_as": identify(embedding, table)})
        originals.append({"id": entry.id, "identified_as": identify(original, table), "speaker": entry.speaker})
    for (source, reference), wav in zip(pairs, outputs[len(evaluated):]):
        save_audio(out / "wav" / f"{source.id.replace('/', '__')}.like.{reference.speaker}.wav", wav, rate)
        embedding = scorer.embed(wav, rate)
        conversion.append({"source": source.id, "reference": reference.id,
                           "to_reference_speaker": float(embedding @ table[reference.speaker]),
                           "to_source_speaker": float(embedding @ table[source.speaker]),
                           "identified_as": identify(embedding, table), "reference_speaker": reference.speaker,
                           "source_speaker": source.speaker})

    def accuracy(rows, key):
        return sum(r["identified_as"] == r[key] for r in rows) / max(1, len(rows))

    summary = {
        "model": args.model or "shipped", "speaker_mode": model.speaker_mode, "speakers_judged": len(table),
        "chance": 1 / len(table), "unseen_speakers": speakers, "utterances": len(evaluated),
        "originals_identified": accuracy(originals, "speaker"),
        "resynthesis_similarity": float(np.mean([r["similarity"] for r in resynthesis])),
        "resynthesis_identified": accuracy(resynthesis, "speaker"),
        "conversion_to_reference": float(np.mean([r["to_reference_speaker"] for r in conversion])),
        "conversion_to_source": float(np.mean([r["to_source_speaker"] for r in conversion])),
        "conversion_closer_to_reference": sum(r["to_reference_speaker"] > r["to_source_speaker"]
                                              for r in conversion) / max(1, len(conversion)),
        "conversion_identified_as_reference": accuracy(conversion, "reference_speaker"),
        "conversion_identified_as_source": accuracy(conversion, "source_speaker"),
        "file_sizes": file_sizes(codec, unseen, rate),
    }
    lines = [f"# Unseen speakers: {', '.join(speakers)} ({len(evaluated)} utterances, first {args.max_seconds:g} s)",
             "", f"Model: {summary['model']} (speaker mode {model.speaker_mode}). Judge: Resemblyzer GE2E, "
             f"nearest centroid among {len(table)} speakers (chance {summary['chance']:.3f}).", "",
             "| measure | value |", "| --- | --- |",
             f"| originals identified as their speaker | {summary['originals_identified']:.3f} |",
             f"| resynthesis: similarity decoded vs original | {summary['resynthesis_similarity']:.3f} |",
             f"| resynthesis: identified as the true speaker | {summary['resynthesis_identified']:.3f} |",
             f"| like-conversion: similarity to reference speaker / to source speaker | "
             f"{summary['conversion_to_reference']:.3f} / {summary['conversion_to_source']:.3f} |",
             f"| like-conversion: closer to the reference's speaker | {summary['conversion_closer_to_reference']:.3f} |",
             f"| like-conversion: identified as reference / as source speaker | "
             f"{summary['conversion_identified_as_reference']:.3f} / {summary['conversion_identified_as_source']:.3f} |",
             "", "| excerpt | format | coding | speaker | bytes | nominal bit/s | entropy bit/s | file bit/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['seconds']} s | v{r['version']} | {r['coding']} | {r['speaker']} | {r['bytes']} | "
              f"{r['nominal_bps']:.0f} | {r['entropy_bps']:.0f} | {r['file_bps']:.0f} |" for r in summary["file_sizes"]]
    report = "\n".join(lines) + "\n"
    write_bytes_atomic(out / "report.md", report.encode())
    write_bytes_atomic(out / "report.json", (json.dumps({"summary": summary, "resynthesis": resynthesis,
                                                          "conversion": conversion, "originals": originals},
                                                         indent=1) + "\n").encode())
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
