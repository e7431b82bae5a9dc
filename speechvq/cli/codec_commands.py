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

    return Codec.from_checkpoint(resolve_model(args.model), resolve_device(getattr(args, "device", "auto")))


def read_for_model(source: Path, sample_rate: int):
    """Mono float32 `[T]` at `sample_rate`, with notes on stderr about what was changed or looks wrong."""
    from ..audio import prepare_for_model, read_audio_file

    wav, file_rate = read_audio_file(source)
    mono, notes = prepare_for_model(wav, file_rate, sample_rate, str(source))
    for note in notes:
        print(note, file=sys.stderr)
    return mono


def parse_metadata(items: Optional[list[str]]) -> Optional[dict[str, str]]:
    """`--metadata KEY=VALUE ...` as a dict (None when not given)."""
    if not items:
        return None
    metadata = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpeechVQError(f"--metadata takes KEY=VALUE pairs, got {item!r}")
        metadata[key] = value
    return metadata


def run_encode(args: argparse.Namespace) -> int:
    """Encode audio files into .svq code files."""
    from ..atomic import write_bytes_atomic

    inputs = expand_inputs(args.inputs, AUDIO_EXTENSIONS)
    outputs = output_paths(inputs, args.output, ".svq")
    metadata = parse_metadata(args.metadata)
    codec = load_codec(args)

    def work(source: Path, output: Path) -> None:
        if source.is_dir():
            raise SpeechVQError(f"{source} is a folder with no audio files")
        wav = read_for_model(source, codec.model.sample_rate)
        start = time.perf_counter()
        encoded = codec.encode(wav, speaker=args.speaker, chunk_frames=args.chunk_frames)
        data = codec.to_bytes(encoded, args.coding, args.format_version, metadata)
        elapsed = time.perf_counter() - start
        _, info = codec.read(data, str(output))
        write_bytes_atomic(output, data)
        if encoded.voice_scores:
            (best, nll), *rest = encoded.voice_scores.items()
            runner_up = f"; next {rest[0][0]} {rest[0][1]:.3f}" if rest else ""
            print(f"note: {source}: no --speaker given: recorded the closest training voice, {best} "
                  f"(NLL {nll:.3f} nats/sample{runner_up})", file=sys.stderr)
        rates = info.bitrates(len(data))
        print(f"{source} -> {output}: {info.duration_s:.2f} s, {len(data)} bytes; bit/s nominal "
              f"{rates['nominal_bps']:.0f}, entropy {rates['entropy_bps']:.0f}, file {rates['file_bps']:.0f}; "
              f"voice: {info.voice}; encode RTF {elapsed / max(info.duration_s, 1e-9):.3f}", file=sys.stderr)

    return for_each_file(inputs, outputs, args.force, work, "encoding")


def run_decode(args: argparse.Namespace) -> int:
    """Decode .svq code files into WAV files, all files as one batch of generation streams."""
    from ..audio import save_audio
    from ..bitstream import read_bytes
    from ..inference import build_engine, decode_many, reference_voice, resolve_voice, speaker_row

    inputs = expand_inputs(args.inputs, (".svq",))
    if not inputs:
        raise SpeechVQError("no input files")
    outputs = output_paths(inputs, args.output, ".decoded.wav")
    codec = load_codec(args)
    model = codec.model
    request = args.speaker
    if args.speaker is not None:
        speaker_row(model, args.speaker)  # fail before the slow part
    if args.like is not None:
        request = reference_voice(model, read_for_model(Path(args.like), model.sample_rate), Path(args.like).name)
    options = decode_options(args)
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
        voice = resolve_voice(model, encoded, request)
        jobs.append((source, output, encoded, header, voice))
    if jobs:
        engine = build_engine(model, options)  # may time the CPU engines first: only once there is work to do
        audio_s = sum(header.duration_s for _, _, _, header, _ in jobs)
        start = time.perf_counter()
        total = sum(encoded.n_samples for _, _, encoded, _, _ in jobs)
        with progress_bar(total, f"decoding ({engine.label}, {options.label})", unit="sample", unit_scale=True) as bar:
            waveforms = decode_many(model, [j[2] for j in jobs], [j[4] for j in jobs], args.temperature, args.seed,
                                    progress=bar.update, options=options, engine=engine)
        elapsed = time.perf_counter() - start
        for (source, output, _, header, voice), wav in zip(jobs, waveforms):
            save_audio(output, wav, header.sample_rate)
            print(f"{source} -> {output}: {header.duration_s:.2f} s, voice: {voice.label}", file=sys.stderr)
        print(f"decoded {audio_s:.2f} s of audio in {elapsed:.1f} s (real-time factor {elapsed / audio_s:.2f}; "
              f"engine {engine.label}, {options.label})", file=sys.stderr)
    if failures and len(inputs) > 1:
        print(f"{failures} of {len(inputs)} files failed", file=sys.stderr)
    return 1 if failures else 0


def run_info(args: argparse.Namespace) -> int:
    """Describe code files and/or a model checkpoint, on stdout."""
    from ..bitstream import parse, read_bytes

    if not args.files and not args.model:
        raise SpeechVQError("give code files to describe, or --model CHECKPOINT")
    codec = None
    status = 0
    for path in args.files:
        try:
            data = read_bytes(path)
            header, _ = parse(data, path)
            summary = {"file": path, "format_version": header.version, "file_bytes": len(data),
                       **describe_header(header)}
            if codec is None and header.version == 2:
                codec = load_codec(args)
            completed = _complete(codec, data, path, header)
            summary.update(completed)
        except SpeechVQError as err:
            report_error(str(err))
            status = 1
            continue
        print(json.dumps(summary) if args.json else "\n".join(f"{k:>18}: {v}" for k, v in summary.items()) + "\n")
    if args.model:
        print_model_info(args)
    return status


def describe_header(header) -> dict:
    """What a code file's header holds, as plain fields (the speaker vector and pitch stream as their sizes)."""
    fields = {"coding": header.coding, "model_fingerprint": header.model_fingerprint, "samples": header.samples,
              "frames": header.frames, "gain": round(header.gain, 6), "speaker": header.speaker_kind}
    if header.speaker_voice is not None or header.speaker_name is not None:
        fields["speaker_voice"] = header.speaker_name if header.speaker_name is not None else header.speaker_voice
    if header.speaker_vector is not None:
        fields["speaker_vector_bytes"] = len(header.speaker_vector)
    if header.pitch is not None:
        fields["pitch_stream_bytes"] = len(header.pitch)
    if header.metadata is not None:
        fields["metadata"] = header.metadata
    return fields


def _complete(codec, data: bytes, path: str, header) -> dict:
    """Duration, rates and voice from the model that reads the file (a version-1 file also describes itself);
    a note where no model at hand can read a version-2 file."""
    from ..codec import CodeFile

    info = None
    if codec is not None and (header.version == 2 or header.model_fingerprint == codec.fingerprint):
        try:
            _, info = codec.read(data, path)
        except SpeechVQError as err:
            if header.version == 2:
                return {"note": f"duration and bitrates need the model that made it (--model): {err}"}
    if info is None:  # a version-1 file read without its model: what its JSON header records
        meta = header.metadata
        info = CodeFile(header, meta["sample_rate"], meta["hop_length"], meta["codebook_size"],
                        meta["code_entropy_bits"], header.speaker_name or "none")
    return {"sample_rate": info.sample_rate, "duration_s": round(info.duration_s, 4), "voice": info.voice,
            **{k: round(v, 1) for k, v in info.bitrates(len(data)).items()}}


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
               "pitch_stream": (f"{model_cfg.pitch.bits} bits every {model_cfg.pitch.frame_codes} codes "
                                f"({model_cfg.pitch_bitrate_bps:g} bit/s)") if model_cfg.pitch.enabled else "none",
               "receptive_field": model_cfg.decoder.receptive_field,
               "code_statistics": checkpoint.code_statistics is not None, "speaker_mode": model_cfg.speaker_mode,
               "speakers": checkpoint.speakers,
               "parameters": sum(int(v.numel()) for k, v in checkpoint.model_state.items()
                                 if not k.startswith("quantizer.ema_"))}
    if args.json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        print(f"{key:>20}: {', '.join(value) if isinstance(value, list) else value}")


def run_code_stats(args: argparse.Namespace) -> int:
    """Measure code statistics on a manifest's utterances and store them in the checkpoint."""
    from ..audio import load_audio
    from ..codec import measure_code_statistics, save_code_statistics
    from ..data.manifest import read_manifest, select_files

    codec = load_codec(args)
    entries = select_files(read_manifest(args.manifest), args.max_files, args.spread)
    rate = codec.model.sample_rate

    def waveforms():
        for entry in entries:
            wav = load_audio(entry.path, rate)[0]
            yield wav if args.max_seconds is None else wav[: max(1, int(args.max_seconds * rate))]

    with progress_bar(len(entries), "measuring codes", unit="file") as bar:
        statistics = measure_code_statistics(codec, waveforms(), progress=bar.update)
    save_code_statistics(args.model, statistics)
    frames = int(statistics.unigram.sum())
    pitch = ""
    if statistics.pitch is not None:
        pitch = (f"; {int(statistics.pitch.unigram.sum())} pitch symbols: {statistics.pitch.transition_bits():.2f} "
                 f"bits/symbol (nominal {codec.model.config.pitch.bits})")
    print(f"{frames} codes from {len(entries)} utterances stored in {args.model}: the markov1 model needs "
          f"{statistics.transition_bits():.2f} bits/code on them (nominal "
          f"{math.log2(codec.model.quantizer.codebook_size):.2f}){pitch}; entropy model {statistics.fingerprint}",
          file=sys.stderr)
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
    statistics = "with code statistics" if exported.code_statistics is not None else "no code statistics"
    print(f"{args.output}: step {exported.step}, {len(exported.speakers)} speaker(s), {size / 2**20:.1f} MiB, "
          f"{statistics}")
    return 0
