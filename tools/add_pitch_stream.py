#!/usr/bin/env python3
"""Give a trained model a pitch stream without changing what its decoder generates.

The new model is the old one with `model.pitch.bits` set: its code files carry the log-F0 + voicing symbols
of every 16 ms (`speechvq.pitch`), the decoder's pitch vectors start at zero (so the same codes, voice and
seed generate the same samples as before), and decoding applies the pitch post-filter (`speechvq.postfilter`)
with those symbols. Each named voice's mean log-F0 bin, which voice conversion moves a source's pitch to,
is measured on the voice's utterances in `--manifest` (a training manifest). Training continued from the
result (`speechvq train --init`) can then learn the pitch vectors.

    python tools/add_pitch_stream.py speechvq/assets/default.pt --manifest data/manifests/train.jsonl \
        --out exp/pitch/default.pt
    speechvq code-stats --model exp/pitch/default.pt --manifest data/manifests/train.jsonl --max-files 3000 --spread

The code statistics are dropped (the pitch stream needs its own counts): measure them again as above.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from speechvq.audio import load_audio, normalize_level
from speechvq.checkpoint import init_from_checkpoint, load_checkpoint, save_checkpoint
from speechvq.config import ConfigError
from speechvq.data.manifest import read_manifest
from speechvq.errors import SpeechVQError
from speechvq.models import SpeechVQ


def voice_pitch_means(model: SpeechVQ, entries) -> tuple[torch.Tensor, torch.Tensor]:
    """Per named voice of `model`: the mean pitch symbol of its utterances' voiced frames (float32 `[S]`) and
    the number of its utterances with a voiced frame (int64 `[S]`), from the symbols its encoder sends."""
    rows = {name: row for row, name in enumerate(model.speakers)}
    sums = torch.zeros(len(rows), dtype=torch.float64)
    counts = torch.zeros(len(rows), dtype=torch.float64)
    utterances = torch.zeros(len(rows), dtype=torch.long)
    for entry in tqdm(entries, desc="pitch of the voices", unit="file"):
        row = rows.get(entry.speaker)
        if row is None:
            continue
        wav = load_audio(entry.path, model.sample_rate)[0]
        if not wav.numel():
            continue
        level_wav, _ = normalize_level(wav, model.config.level_dbfs)  # as `inference.encode_waveform` does
        symbols = model.encode_pitch(level_wav.clamp(-1.0, 1.0).view(1, 1, -1))[0]
        voiced = symbols[symbols > 0]
        if voiced.numel():
            sums[row] += float(voiced.double().sum())
            counts[row] += voiced.numel()
            utterances[row] += 1
    return (sums / counts.clamp(min=1)).float(), utterances


def add_pitch_stream(source: str, manifest: str, target: str, bits: int) -> dict:
    """Write `source` with a pitch stream of `bits` bits per symbol to `target` (see the module docstring).

    Returns:
        {"speakers": {name: (mean bin, utterances)}} for the printout.

    Raises:
        SpeechVQError: an unreadable checkpoint or manifest, a model that already has a pitch stream, a bad
            `bits`, or a manifest without any of the model's voices.
    """
    checkpoint = load_checkpoint(source)
    config = checkpoint.config
    if config.model.pitch.bits:
        raise SpeechVQError(f"{source} already has a pitch stream ({config.model.pitch.bits} bits)")
    try:
        pitch = dataclasses.replace(config.model.pitch, bits=bits)  # checked as any config value is
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, pitch=pitch))
    except ConfigError as err:
        raise SpeechVQError(str(err)) from None
    model = SpeechVQ(config.model, speakers=checkpoint.speakers).eval()
    report = init_from_checkpoint(model, source)
    new = set(report.kept)
    if not new <= {"pitch_embedding.weight", "voice_pitch", "voice_pitch_updates"}:
        raise SpeechVQError(f"{source}: weights that did not carry over: {', '.join(sorted(new))}")
    means, utterances = voice_pitch_means(model, read_manifest(manifest)) if model.n_speakers else (None, None)
    if model.n_speakers:
        if not bool((utterances > 0).any()):
            raise SpeechVQError(f"{manifest}: no voiced utterance of the model's voices")
        model.voice_pitch.copy_(means)
        model.voice_pitch_updates.copy_(utterances)
    # the record init_from_checkpoint made of the source (step, file name, fingerprint), marked as a change
    history = report.history[:-1] + [{**report.history[-1], "samples_seen": None,
                                      "change": f"pitch stream added ({bits} bits, vectors at zero)"}]
    # a new file in the exported form: weights, config, step and record, no training state or code statistics
    save_checkpoint(target, model, config, step=checkpoint.step, extra={**checkpoint.extra, "history": history})
    load_checkpoint(target).build_model()  # what was written loads as a model
    return {"speakers": {name: (float(means[row]), int(utterances[row])) for row, name in enumerate(model.speakers)}
            if model.n_speakers else {}}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the model (.pt) to give a pitch stream")
    parser.add_argument("--manifest", required=True, help="utterances of the model's voices (its training split)")
    parser.add_argument("--bits", type=int, default=6, help="bits per pitch symbol (model.pitch.bits)")
    parser.add_argument("--out", required=True, help="the new model (.pt)")
    parser.add_argument("--force", action="store_true", help="overwrite --out")
    args = parser.parse_args(argv)
    if Path(args.out).exists() and not args.force:
        print(f"add_pitch_stream: {args.out} exists (use --force to overwrite)", file=sys.stderr)
        return 1
    try:
        result = add_pitch_stream(args.model, args.manifest, args.out, args.bits)
    except SpeechVQError as err:
        print(f"add_pitch_stream: {err}", file=sys.stderr)
        return 1
    for name, (mean, count) in result["speakers"].items():
        print(f"{name}: mean pitch symbol {mean:.1f} over {count} utterances")
    print(f"wrote {args.out}; measure its code statistics next (speechvq code-stats)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
