"""Handlers of the corpus and model commands: download, manifest, prepare, train, eval, convert."""

from __future__ import annotations

import argparse
import math
import sys

from ..config import load_config
from ..errors import SpeechVQError
from .common import decode_options, load_model_on, progress_bar

EXIT_INTERRUPTED = 130  # also the exit status of a run stopped by Ctrl-C after saving


def run_download(args: argparse.Namespace) -> int:
    """Download, verify and extract each requested archive."""
    from ..data.download import ARCHIVES, download_archive, extract_archive, with_mirror

    table = ARCHIVES[args.corpus]
    names = args.subset or (["train-clean-100", "dev-clean", "test-clean"] if args.corpus == "librispeech" else ["0.92"])
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SpeechVQError(f"unknown {args.corpus} subset(s) {', '.join(unknown)} (known: {', '.join(table)})")
    for name in names:
        archive = with_mirror(table[name], args.mirror)
        with progress_bar(archive.size, archive.name, unit="B", unit_scale=True, unit_divisor=1024) as bar:
            path = download_archive(archive, args.dir, progress=bar.update)
        print(f"verified {path}", file=sys.stderr)
        extract_archive(path, args.dir)
        print(f"extracted {path.name} into {args.dir}", file=sys.stderr)
    return 0


def run_manifest(args: argparse.Namespace) -> int:
    """Scan the corpus, split it, write the manifests; print a summary on stderr."""
    from ..data.corpora import scan_corpus
    from ..data.manifest import SplitSpec, write_splits

    with progress_bar(None, f"scanning {args.kind}", unit="file") as bar:
        result = scan_corpus(args.kind, args.corpus_dir, mic=args.mic, subsets=args.subset, progress=bar.update)
    if result.skipped:
        print(f"skipped {len(result.skipped)} file(s), e.g.:", file=sys.stderr)
        for path, reason in list(result.skipped.items())[:5]:
            print(f"  {path}: {reason}", file=sys.stderr)
    spec = SplitSpec(args.valid_per_speaker, args.test_per_speaker, tuple(args.holdout_speakers), args.seed)
    counts = write_splits(args.out, result.entries, spec)
    hours = sum(e.duration_s for e in result.entries) / 3600
    print(f"{len(result.entries)} utterances ({hours:.2f} h) from {len({e.speaker for e in result.entries})} "
          f"speakers -> {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    """Check the audio of every utterance and fill the cache."""
    from ..data.check import check_manifests
    from ..data.dataset import AudioCache
    from ..data.manifest import read_manifest

    cfg = load_config(args.config, args.overrides)
    cache = AudioCache(cfg.data.cache_dir, cfg.model.sample_rate, cfg.model.level_dbfs)
    total = len(read_manifest(f"{args.manifests}/all.jsonl"))
    with progress_bar(total, "checking audio", unit="file") as bar:
        report = check_manifests(args.manifests, cache, workers=args.workers, progress=bar.update)
    print(f"kept {report.kept} utterances ({report.kept_duration_s / 3600:.2f} h), rejected {len(report.rejected)}"
          f" (see {args.manifests}/rejected.jsonl); splits: "
          + ", ".join(f"{k} {v}" for k, v in report.split_sizes.items()), file=sys.stderr)
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Train or resume; exit 130 when stopped by Ctrl-C (after saving)."""
    from ..train import train

    cfg = load_config(args.config, args.overrides)
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise SpeechVQError("--max-minutes must be positive")
    result = train(cfg, args.exp, device=args.device, stop_at_step=args.stop_at_step, init=args.init,
                   max_minutes=args.max_minutes)
    return EXIT_INTERRUPTED if result.stopped == "interrupted" else 0


def run_eval(args: argparse.Namespace) -> int:
    """Reconstruct and score the utterances of a manifest."""
    from ..data.manifest import read_manifest, select_files
    from ..evaluation import evaluate_utterances
    from .codec_commands import load_codec

    codec = load_codec(args)
    model = codec.model
    entries = select_files(read_manifest(args.manifest), args.max_files, args.spread)
    seconds = sum(min(e.duration_s, args.max_seconds or math.inf) for e in entries)
    with progress_bar(int(seconds * model.sample_rate), "decoding", unit="sample", unit_scale=True) as bar:
        report = evaluate_utterances(codec, entries, args.out, args.max_seconds, args.temperature, args.seed,
                                     progress=bar.update, options=decode_options(args), plots=args.plots)
    mean = report["mean"]
    if report["missing_metrics"]:
        print(f"note: {', '.join(report['missing_metrics'])} not computed: pip install 'speechvq[eval]'",
              file=sys.stderr)
    scores = "".join(f"{label} {mean[key]:.{digits}f}, " for key, label, digits in
                     (("pesq_wb", "PESQ-WB", 2), ("stoi", "STOI", 3)) if mean.get(key) is not None)
    print(f"{len(entries)} utterances: {scores}MCD {mean['mcd_db']:.2f} dB, SI-SDR {mean['si_sdr_db']:.2f} dB, "
          f"decode RTF {mean['decode_rtf']:.2f}; report in {args.out}/report.md", file=sys.stderr)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    """Convert each source to each target voice (named, or like a reference recording)."""
    from pathlib import Path

    from ..assets import resolve_model
    from ..audio import load_audio, save_audio
    from ..data.manifest import read_manifest
    from ..inference import decode_codes, encode_waveform, reference_voice, speaker_row
    from .codec_commands import read_for_model

    sources: list[Path] = []
    for source in args.sources:
        if source.endswith(".jsonl"):
            sources += [Path(e.path) for e in read_manifest(source)[: args.max_files]]
        else:
            sources.append(Path(source))
    tags = args.speaker if args.speaker else [f"like-{Path(ref).stem}" for ref in args.like]
    if args.output and (len(sources) > 1 or len(tags) > 1):
        raise SpeechVQError("-o names one file: use --out-dir for several sources or target voices")
    jobs = []
    for source in sources:
        for index, tag in enumerate(tags):
            folder = Path(args.out_dir) if args.out_dir else source.parent
            output = Path(args.output) if args.output else folder / f"{source.stem}.{tag}.wav"
            if output.exists() and not args.force:
                raise SpeechVQError(f"{output} exists; use --force to overwrite it")
            jobs.append((source, index, output))
    model = load_model_on(resolve_model(args.model), args.device)
    if args.speaker:
        for speaker in args.speaker:
            speaker_row(model, speaker)  # fail before the slow part
        voices = list(args.speaker)
    else:  # each reference's voice, computed once
        voices = [reference_voice(model, read_for_model(Path(ref), model.sample_rate), Path(ref).name)
                  for ref in args.like]
        for ref, voice in zip(args.like, voices):
            print(f"{ref}: {voice.label}", file=sys.stderr)
    for source, index, output in jobs:
        wav = load_audio(source, model.sample_rate)[0]
        if args.max_seconds is not None:
            wav = wav[: max(1, int(args.max_seconds * model.sample_rate))]
        encoded = encode_waveform(model, wav, choose_voice=False)
        with progress_bar(encoded.n_samples, f"{source.name} as {tags[index]}", unit="sample",
                          unit_scale=True) as bar:
            converted = decode_codes(model, encoded, speaker=voices[index], temperature=args.temperature,
                                     seed=args.seed, progress=bar.update, options=decode_options(args))
        save_audio(output, converted, model.sample_rate)
        print(f"wrote {output}", file=sys.stderr)
    return 0
