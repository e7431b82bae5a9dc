"""Handlers of the codec commands: encode, decode, info, code-stats.

encode and decode take many inputs (files, folders searched recursively, quoted globs); a file that fails
gets one `speechvq: error:` line and the others go on; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

from ..audio import AUDIO_EXTENSIONS
from ..errors import SpeechVQError
from .common import decode_options, progress_bar

CLIP_LEVEL = 0.999
CLIP_FRACTION = 0.001  # more samples than this at full scale: warn that the input looks clipped


def expand_inputs(items: Iterable[str], suffixes: tuple[str, ...]) -> list[Path]:
    """Files named directly, found below folders (recursively, by suffix), or matched by a quoted glob.

    A name that matches nothing is kept, so that it fails later with "no such file".
    """
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        elif not path.exists() and glob.has_magic(item):
            found += sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
        else:
            found.append(path)
    return found


def output_paths(inputs: list[Path], output: Optional[str], suffix: str) -> list[Path]:
    """Where each input's result goes: `-o FILE` for one input, else inside `-o FOLDER` or beside the input."""
    if output and len(inputs) == 1 and not output.endswith("/") and not Path(output).is_dir():
        return [Path(output)]
    paths = []
    for source in inputs:
        stem = source.name[: -len(".svq")] if source.name.endswith(".svq") else source.stem
        paths.append((Path(output) if output else source.parent) / f"{stem}{suffix}")
    return paths


def report_error(message: str) -> None:
    print(f"speechvq: error: {message}", file=sys.stderr)


def for_each_file(inputs: list[Path], outputs: list[Path], force: bool,
                  work: Callable[[Path, Path], None], description: str) -> int:
    """Run `work(source, output)` per file; one error line per failure; returns the exit status."""
    if not inputs:
        raise SpeechVQError("no input files")
    failures = 0
    claimed: set[Path] = set()
    files = progress_bar(len(inputs), description, unit="file", disable=len(inputs) == 1)
    for source, output in zip(inputs, outputs):
        try:
            if output.resolve() in claimed:
                raise SpeechVQError(f"{source}: another input already writes {output}")
            claimed.add(output.resolve())
            if output.exists() and not force:
                raise SpeechVQError(f"{output} exists; use --force to overwrite it")
            work(source, output)
        except SpeechVQError as err:
            failures += 1
            report_error(str(err))
        files.update(1)
    files.close()
    if failures and len(inputs) > 1:
        print(f"{failures} of {len(inputs)} files failed", file=sys.stderr)
    return 1 if failures else 0


def load_codec(args: argparse.Namespace):
    """The codec of --model (default: the shipped model) on --device."""
    from ..assets import resolve_model
    from ..codec import Codec
    from ..train.distributed import resolve_device

    return Codec.from_checkpoint(resolve_model(args.model), resolve_device(args.device))


def read_for_model(source: Path, sample_rate: int):
    """Mono float32 `[T]` at `sample_rate`, with notes on stderr about what was changed or looks wrong."""
    import torch

    from ..audio import read_audio_file, resample

    wav, file_rate = read_audio_file(source)
    if wav.shape[0] > 1:
        print(f"note: {source}: downmixed {wav.shape[0]} channels to mono", file=sys.stderr)
    if file_rate != sample_rate:
        print(f"note: {source}: resampled {file_rate} Hz -> {sample_rate} Hz", file=sys.stderr)
    if not torch.isfinite(wav).all():
        raise SpeechVQError(f"{source} holds NaN or infinite samples")
    clipped = float((wav.abs() >= CLIP_LEVEL).float().mean())
    if clipped > CLIP_FRACTION:
        print(f"warning: {source} looks clipped ({100 * clipped:.2f}% of samples at full scale)", file=sys.stderr)
    return resample(wav.mean(dim=0), file_rate, sample_rate)


def run_encode(args: argparse.Namespace) -> int:
    """Encode audio files into .svq code files."""
    from ..atomic import write_bytes_atomic
    from ..bitstream import parse

    inputs = expand_inputs(args.inputs, AUDIO_EXTENSIONS)
    outputs = output_paths(inputs, args.output, ".svq")
    codec = load_codec(args)

    def work(source: Path, output: Path) -> None:
        if source.is_dir():
            raise SpeechVQError(f"{source} is a folder with no audio files")
        wav = read_for_model(source, codec.model.sample_rate)
        start = time.perf_counter()
        data = codec.compress(wav, speaker=args.speaker, coding=args.coding, chunk_frames=args.chunk_frames)
        elapsed = time.perf_counter() - start
        header, _ = parse(data)
        write_bytes_atomic(output, data)
        rates = bitrates(header, len(data))
        print(f"{source} -> {output}: {header.duration_s:.2f} s, {len(data)} bytes; bit/s nominal "
              f"{rates['nominal_bps']:.0f}, entropy {rates['entropy_bps']:.0f}, file {rates['file_bps']:.0f}; "
              f"encode RTF {elapsed / max(header.duration_s, 1e-9):.3f}", file=sys.stderr)

    return for_each_file(inputs, outputs, args.force, work, "encoding")


def run_decode(args: argparse.Namespace) -> int:
    """Decode .svq code files into WAV files, all files as one batch of generation streams."""
    from ..audio import save_audio
    from ..bitstream import read_bytes
    from ..inference import build_engine, decode_many

    inputs = expand_inputs(args.inputs, (".svq",))
    if not inputs:
        raise SpeechVQError("no input files")
    outputs = output_paths(inputs, args.output, ".decoded.wav")
    codec = load_codec(args)
    model = codec.model
    if args.speaker is not None and args.speaker not in model.speakers:
        raise SpeechVQError(f"unknown speaker {args.speaker!r} (this model knows: {', '.join(model.speakers)})")
    options = decode_options(args)
    engine = build_engine(model, options)
    jobs, failures, claimed = [], 0, set()
    for source, output in zip(inputs, outputs):  # read and check everything before the slow part
        try:
            if output.resolve() in claimed:
                raise SpeechVQError(f"{source}: another input already writes {output}")
            claimed.add(output.resolve())
            if output.exists() and not args.force:
                raise SpeechVQError(f"{output} exists; use --force to overwrite it")
            encoded, header = codec.read(read_bytes(source), str(source))
        except SpeechVQError as err:
            failures += 1
            report_error(str(err))
            continue
        voice = args.speaker or header.speaker or (model.speakers[0] if model.has_speakers else None)
        if model.has_speakers and not (args.speaker or header.speaker):
            print(f"note: {source} records no speaker; decoding as {voice}", file=sys.stderr)
        jobs.append((source, output, encoded, header, voice))
    if jobs:
        audio_s = sum(header.duration_s for _, _, _, header, _ in jobs)
        start = time.perf_counter()
        total = sum(encoded.n_samples for _, _, encoded, _, _ in jobs)
        with progress_bar(total, f"decoding ({engine.label}, {options.mode})", unit="sample", unit_scale=True) as bar:
            waveforms = decode_many(model, [j[2] for j in jobs], [j[4] for j in jobs], args.temperature, args.seed,
                                    progress=bar.update, options=options, engine=engine)
        elapsed = time.perf_counter() - start
        for (source, output, _, header, voice), wav in zip(jobs, waveforms):
            save_audio(output, wav, header.sample_rate)
            print(f"{source} -> {output}: {header.duration_s:.2f} s as {voice}", file=sys.stderr)
        print(f"decoded {audio_s:.2f} s of audio in {elapsed:.1f} s (real-time factor {elapsed / audio_s:.2f}; "
              f"engine {engine.label}, {options.mode})", file=sys.stderr)
    if failures and len(inputs) > 1:
        print(f"{failures} of {len(inputs)} files failed", file=sys.stderr)
    return 1 if failures else 0


def bitrates(header, file_bytes: int) -> dict[str, float]:
    """The three bitrates of a code file, bits per second of audio."""
    frame_rate = header.sample_rate / header.hop_length
    return {"nominal_bps": frame_rate * math.log2(header.codebook_size),
            "entropy_bps": frame_rate * header.code_entropy_bits,
            "file_bps": 8 * file_bytes / header.duration_s}


def run_info(args: argparse.Namespace) -> int:
    """Describe code files (no model needed) and/or a model checkpoint, on stdout."""
    from dataclasses import asdict

    from ..bitstream import read_file

    if not args.files and not args.model:
        raise SpeechVQError("give code files to describe, or --model CHECKPOINT")
    status = 0
    for path in args.files:
        try:
            header, _ = read_file(path)
        except SpeechVQError as err:
            report_error(str(err))
            status = 1
            continue
        size = Path(path).stat().st_size
        summary = {"file": path, **asdict(header), "duration_s": round(header.duration_s, 4), "file_bytes": size,
                   **{k: round(v, 1) for k, v in bitrates(header, size).items()}}
        print(json.dumps(summary) if args.json else "\n".join(f"{k:>18}: {v}" for k, v in summary.items()) + "\n")
    if args.model:
        print_model_info(args)
    return status


def print_model_info(args: argparse.Namespace) -> None:
    from ..checkpoint import load_checkpoint

    checkpoint = load_checkpoint(args.model)
    if args.speakers:
        print("\n".join(checkpoint.speakers))
        return
    from ..codec import model_fingerprint

    model_cfg = checkpoint.config.model
    summary = {"checkpoint": args.model, "step": checkpoint.step, "speechvq_version": checkpoint.speechvq_version,
               "fingerprint": model_fingerprint(checkpoint.build_model()),
               "sample_rate": model_cfg.sample_rate, "hop_length": model_cfg.hop_length,
               "codebook_size": model_cfg.quantizer.codebook_size, "nominal_bitrate_bps": model_cfg.bitrate_bps,
               "receptive_field": model_cfg.decoder.receptive_field,
               "code_statistics": checkpoint.code_statistics is not None, "speakers": checkpoint.speakers,
               "parameters": sum(int(v.numel()) for k, v in checkpoint.model_state.items()
                                 if not k.startswith("quantizer.ema_"))}
    if args.json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        print(f"{key:>20}: {', '.join(value) if isinstance(value, list) else value}")


def run_code_stats(args: argparse.Namespace) -> int:
    """Measure code statistics on a manifest's utterances and store them in the checkpoint."""
    import numpy as np

    from ..audio import load_audio
    from ..codec import measure_code_statistics, save_code_statistics
    from ..data.manifest import read_manifest

    codec = load_codec(args)
    entries = read_manifest(args.manifest)[: args.max_files]
    rate = codec.model.sample_rate

    def waveforms():
        for entry in entries:
            wav = load_audio(entry.path, rate)[0]
            yield wav if args.max_seconds is None else wav[: max(1, int(args.max_seconds * rate))]

    with progress_bar(len(entries), "measuring codes", unit="file") as bar:
        statistics = measure_code_statistics(codec, waveforms(), progress=bar.update)
    save_code_statistics(args.model, statistics)
    frames = int(statistics.unigram.sum())
    first, table = statistics.transition_table()
    bits = -float((statistics.bigram * np.log2(table.astype(np.float64))).sum()) / max(1, frames - len(entries))
    print(f"{frames} codes from {len(entries)} utterances stored in {args.model}: the markov1 model needs "
          f"{bits:.2f} bits/code on them (nominal {math.log2(codec.model.quantizer.codebook_size):.2f}); "
          f"entropy model {statistics.fingerprint}", file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Write a weights-only copy of a checkpoint."""
    from ..checkpoint import export_checkpoint

    if Path(args.output).exists() and not args.force:
        raise SpeechVQError(f"{args.output} exists (use --force to overwrite)")
    if Path(args.output).resolve() == Path(args.checkpoint).resolve():
        raise SpeechVQError("the output must be another file than the checkpoint")
    exported = export_checkpoint(args.checkpoint, args.output)
    size = Path(args.output).stat().st_size
    print(f"{args.output}: step {exported.step}, {len(exported.speakers)} speaker(s), {size / 2**20:.1f} MiB")
    return 0
