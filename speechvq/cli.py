"""The `speechvq` command: argparse subcommands; the only module that talks to users or exits.

    speechvq config -c tiny --set model.quantizer.codebook_size=32      # print a resolved config as YAML
    speechvq download librispeech --subset dev-clean --dir download     # fetch, verify, extract a corpus
    speechvq manifest folder /data/my_speakers --out data/manifests     # manifests, splits, speaker table
    speechvq prepare -c tiny --manifests data/manifests                 # check audio and fill the cache
    speechvq train -c tiny --exp exp/tiny                               # train, or resume, a model
    speechvq eval --model exp/tiny/best.pt --manifest data/manifests/test.jsonl --out exp/tiny/eval
    speechvq convert a.wav --speaker p226 --model exp/tiny/best.pt       # voice conversion

Expected failures (`SpeechVQError`) print one line `speechvq: error: ...` on stderr and exit 1; usage
errors exit 2 (argparse); Ctrl-C exits 130. Anything else is a bug and keeps its traceback.
Heavy modules (torch) are imported inside the handlers, so `--help` stays quick.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Callable, Optional, Sequence

from .config import load_config, preset_names
from .errors import SpeechVQError
from .version import __version__

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps the line breaks of the example epilogs."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="speechvq", formatter_class=_HelpFormatter,
        description="VQ-VAE speech codec: compress speech into discrete codes, resynthesise it with a WaveNet, "
                    "and convert voices.",
        epilog="examples:\n  speechvq config -c paper\n  speechvq train -c tiny --exp exp/tiny")
    parser.add_argument("--version", action="version", version=f"speechvq {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], summary: str, description: str,
                examples: Sequence[str]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=description, formatter_class=_HelpFormatter,
                                  epilog="examples:\n" + "\n".join(f"  {e}" for e in examples))
        sub.set_defaults(handler=handler)
        return sub

    config = command("config", run_config, "print a resolved configuration",
                     "Resolve a preset or YAML file plus --set overrides and print the full config as YAML.",
                     ["speechvq config -c paper",
                      "speechvq config -c recipes/vctk/conf/paper.yaml --set model.quantizer.ema=true"])
    add_config_arguments(config)
    config.add_argument("--list", action="store_true", help="list the presets that ship with speechvq and exit")

    download = command("download", run_download, "download and extract VCTK or LibriSpeech",
                       "Fetch the official archives (resuming partial downloads), check their size and SHA-256, "
                       "and extract them safely. Idempotent: finished steps are not repeated.",
                       ["speechvq download librispeech --subset dev-clean train-clean-100 --dir download",
                        "speechvq download vctk --dir download"])
    download.add_argument("corpus", choices=["vctk", "librispeech"])
    download.add_argument("--subset", nargs="+", default=None,
                          help="LibriSpeech subsets (default: train-clean-100 dev-clean test-clean); VCTK: 0.92")
    download.add_argument("--dir", default="download", help="where archives are stored and extracted")
    download.add_argument("--mirror", default=None, help="base URL of a mirror holding the same archive names")

    manifest = command("manifest", run_manifest, "build manifests, splits and the speaker table for a corpus",
                       "Scan a corpus and write all/train/valid/test/unseen.jsonl and speakers.json.",
                       ["speechvq manifest vctk download/VCTK-Corpus-0.92 --holdout-speakers p225 p226",
                        "speechvq manifest librispeech download/LibriSpeech --subset train-clean-100",
                        "speechvq manifest folder ~/recordings   # one subfolder per speaker"])
    manifest.add_argument("kind", choices=["vctk", "vctk080", "librispeech", "folder"],
                          help="corpus layout: vctk (0.92), vctk080, librispeech, folder (one folder per speaker)")
    manifest.add_argument("corpus_dir")
    manifest.add_argument("--out", default="data/manifests")
    manifest.add_argument("--mic", default="mic2", choices=["mic1", "mic2"], help="VCTK 0.92 microphone")
    manifest.add_argument("--subset", nargs="+", default=None, help="LibriSpeech subsets (default: all found)")
    manifest.add_argument("--valid-per-speaker", type=int, default=2)
    manifest.add_argument("--test-per-speaker", type=int, default=4)
    manifest.add_argument("--holdout-speakers", nargs="+", default=[], metavar="SPEAKER",
                          help="speakers kept out of training entirely (their utterances go to unseen.jsonl)")
    manifest.add_argument("--seed", type=int, default=0)

    prepare = command("prepare", run_prepare, "check every utterance and fill the audio cache",
                      "Decode, resample and level-normalise every utterance once, as training will see it; "
                      "reject unreadable, empty, non-finite or silent files from the split manifests.",
                      ["speechvq prepare -c paper --manifests data/manifests"])
    add_config_arguments(prepare)
    prepare.add_argument("--manifests", default="data/manifests", help="folder written by `speechvq manifest`")
    prepare.add_argument("--workers", type=int, default=2)

    train = command("train", run_train, "train a model, or resume training",
                    "Train as the config says; running the same command again resumes from EXP/last.pt. "
                    "Under torchrun, every process runs this command.",
                    ["speechvq train -c paper --exp exp/paper",
                     "torchrun --nproc_per_node 8 -m speechvq train -c paper --exp exp/paper"])
    add_config_arguments(train)
    train.add_argument("--exp", required=True, help="experiment folder (checkpoints, logs, config.yaml)")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    train.add_argument("--stop-at-step", type=int, default=None,
                       help="end this run after this many steps in all (saving last.pt) without changing the "
                            "learning-rate schedule; run again to continue")

    evaluate = command("eval", run_eval, "reconstruct a manifest's utterances and report quality",
                       "Encode and decode each utterance; write the decoded WAVs, report.json and report.md "
                       "(MCD, SI-SDR, bitrates, real-time factors, codebook use).",
                       ["speechvq eval --model exp/paper/best.pt --manifest data/manifests/test.jsonl --out exp/eval"])
    evaluate.add_argument("--model", required=True, help="checkpoint (.pt)")
    evaluate.add_argument("--manifest", required=True)
    evaluate.add_argument("--out", required=True, help="folder for the decoded WAVs and the reports")
    evaluate.add_argument("--max-files", type=int, default=None, help="only the first N utterances")
    evaluate.add_argument("--max-seconds", type=float, default=None, help="only the first S seconds of each")
    add_decoding_arguments(evaluate)

    convert = command("convert", run_convert, "convert utterances to other speakers' voices",
                      "Encode each source into codes and decode them with each target speaker's embedding. "
                      "A source is an audio file or a manifest (.jsonl) of them.",
                      ["speechvq convert source.wav --speaker p226 --model exp/paper/best.pt -o p226.wav",
                       "speechvq convert data/manifests/test.jsonl --max-files 4 --speaker p226 p227 "
                       "--model exp/paper/best.pt --out-dir exp/vc"])
    convert.add_argument("sources", nargs="+", metavar="SOURCE")
    convert.add_argument("--speaker", nargs="+", required=True, help="target speakers (names from the model's table)")
    convert.add_argument("--model", required=True, help="checkpoint (.pt)")
    convert.add_argument("-o", "--output", default=None, help="output WAV, for one source and one speaker "
                                                              "(default: SOURCE.SPEAKER.wav beside the source)")
    convert.add_argument("--out-dir", default=None, help="write STEM.SPEAKER.wav files here")
    convert.add_argument("--max-files", type=int, default=None, help="only the first N utterances of a manifest")
    convert.add_argument("--max-seconds", type=float, default=None, help="only the first S seconds of each source")
    convert.add_argument("--force", action="store_true", help="overwrite existing output files")
    add_decoding_arguments(convert)

    info = command("info", run_info, "describe a model checkpoint",
                   "Print a checkpoint's training step, sample rate, codebook, nominal bitrate and speakers.",
                   ["speechvq info --model exp/paper/best.pt", "speechvq info --model exp/paper/best.pt --speakers"])
    info.add_argument("--model", required=True, help="checkpoint (.pt)")
    info.add_argument("--speakers", action="store_true", help="print only the speaker names, one per line")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    """Sampling and device options of every subcommand that runs the decoder."""
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0: argmax)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the decoder's sampling")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """`-c/--config` and `--set`, shared by every subcommand that builds a Config."""
    parser.add_argument("-c", "--config", default="paper",
                        help=f"preset name ({', '.join(preset_names())}) or path to a YAML file")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config values by dotted key, e.g. model.quantizer.codebook_size=256")


def _progress(total: Optional[int], description: str, unit: str = "it", **kwargs):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True, file=sys.stderr, **kwargs)


def run_config(args: argparse.Namespace) -> int:
    """Print the resolved config (or the preset list) on stdout."""
    if args.list:
        print("\n".join(preset_names()))
        return 0
    sys.stdout.write(load_config(args.config, args.overrides).to_yaml())
    return 0


def run_download(args: argparse.Namespace) -> int:
    """Download, verify and extract each requested archive."""
    from .data.download import ARCHIVES, download_archive, extract_archive, with_mirror

    table = ARCHIVES[args.corpus]
    names = args.subset or (["train-clean-100", "dev-clean", "test-clean"] if args.corpus == "librispeech" else ["0.92"])
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SpeechVQError(f"unknown {args.corpus} subset(s) {', '.join(unknown)} (known: {', '.join(table)})")
    for name in names:
        archive = with_mirror(table[name], args.mirror)
        with _progress(archive.size, archive.name, unit="B", unit_scale=True, unit_divisor=1024) as bar:
            path = download_archive(archive, args.dir, progress=bar.update)
        print(f"verified {path}", file=sys.stderr)
        extract_archive(path, args.dir)
        print(f"extracted {path.name} into {args.dir}", file=sys.stderr)
    return 0


def run_manifest(args: argparse.Namespace) -> int:
    """Scan the corpus, split it, write the manifests; print a summary on stderr."""
    from .data.corpora import scan_corpus
    from .data.manifest import SplitSpec, write_splits

    with _progress(None, f"scanning {args.kind}", unit="file") as bar:
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
    from .data.check import check_manifests
    from .data.dataset import AudioCache
    from .data.manifest import read_manifest

    cfg = load_config(args.config, args.overrides)
    cache = AudioCache(cfg.data.cache_dir, cfg.model.sample_rate, cfg.model.level_dbfs)
    total = len(read_manifest(f"{args.manifests}/all.jsonl"))
    with _progress(total, "checking audio", unit="file") as bar:
        report = check_manifests(args.manifests, cache, workers=args.workers, progress=bar.update)
    print(f"kept {report.kept} utterances ({report.kept_duration_s / 3600:.2f} h), rejected {len(report.rejected)}"
          f" (see {args.manifests}/rejected.jsonl); splits: "
          + ", ".join(f"{k} {v}" for k, v in report.split_sizes.items()), file=sys.stderr)
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Train or resume; exit 130 when stopped by Ctrl-C (after saving)."""
    from .train import train

    cfg = load_config(args.config, args.overrides)
    result = train(cfg, args.exp, device=args.device, stop_at_step=args.stop_at_step)
    return EXIT_INTERRUPTED if result.stopped == "interrupted" else 0


def _load_model(path: str, device_name: str):
    from .checkpoint import load_model
    from .train.distributed import resolve_device

    return load_model(path, resolve_device(device_name))


def run_eval(args: argparse.Namespace) -> int:
    """Reconstruct and score the utterances of a manifest."""
    from .data.manifest import read_manifest
    from .evaluation import evaluate_utterances

    model = _load_model(args.model, args.device)
    entries = read_manifest(args.manifest)[: args.max_files]
    seconds = sum(min(e.duration_s, args.max_seconds or math.inf) for e in entries)
    with _progress(int(seconds * model.sample_rate), "decoding", unit="sample", unit_scale=True) as bar:
        report = evaluate_utterances(model, entries, args.out, args.max_seconds, args.temperature, args.seed,
                                     progress=bar.update)
    mean = report["mean"]
    print(f"{len(entries)} utterances: MCD {mean['mcd_db']:.2f} dB, SI-SDR {mean['si_sdr_db']:.2f} dB, "
          f"decode RTF {mean['decode_rtf']:.2f}; report in {args.out}/report.md", file=sys.stderr)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    """Convert each source to each target speaker's voice."""
    from pathlib import Path

    from .audio import load_audio, save_audio
    from .data.manifest import read_manifest
    from .inference import decode_codes, encode_waveform, speaker_row

    sources: list[Path] = []
    for source in args.sources:
        if source.endswith(".jsonl"):
            sources += [Path(e.path) for e in read_manifest(source)[: args.max_files]]
        else:
            sources.append(Path(source))
    if args.output and (len(sources) > 1 or len(args.speaker) > 1):
        raise SpeechVQError("-o names one file: use --out-dir for several sources or speakers")
    jobs = []
    for source in sources:
        for speaker in args.speaker:
            folder = Path(args.out_dir) if args.out_dir else source.parent
            output = Path(args.output) if args.output else folder / f"{source.stem}.{speaker}.wav"
            if output.exists() and not args.force:
                raise SpeechVQError(f"{output} exists; use --force to overwrite it")
            jobs.append((source, speaker, output))
    model = _load_model(args.model, args.device)
    for speaker in args.speaker:
        speaker_row(model, speaker)  # fail before the slow part
    for source, speaker, output in jobs:
        wav = load_audio(source, model.sample_rate)[0]
        if args.max_seconds is not None:
            wav = wav[: max(1, int(args.max_seconds * model.sample_rate))]
        encoded = encode_waveform(model, wav)
        with _progress(encoded.n_samples, f"{source.name} as {speaker}", unit="sample", unit_scale=True) as bar:
            converted = decode_codes(model, encoded, speaker=speaker, temperature=args.temperature,
                                     seed=args.seed, progress=bar.update)
        save_audio(output, converted, model.sample_rate)
        print(f"wrote {output}", file=sys.stderr)
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Describe a checkpoint: its speakers only, or a summary as text or JSON, on stdout."""
    import json

    from .checkpoint import load_checkpoint

    checkpoint = load_checkpoint(args.model)
    if args.speakers:
        print("\n".join(checkpoint.speakers))
        return 0
    model_cfg = checkpoint.config.model
    summary = {"checkpoint": args.model, "step": checkpoint.step, "speechvq_version": checkpoint.speechvq_version,
               "sample_rate": model_cfg.sample_rate, "hop_length": model_cfg.hop_length,
               "codebook_size": model_cfg.quantizer.codebook_size, "nominal_bitrate_bps": model_cfg.bitrate_bps,
               "receptive_field": model_cfg.decoder.receptive_field, "speakers": checkpoint.speakers,
               "parameters": sum(int(v.numel()) for k, v in checkpoint.model_state.items()
                                 if not k.startswith("quantizer.ema_"))}
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    for key, value in summary.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"{key:>20}: {shown}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except SpeechVQError as err:
        print(f"speechvq: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("speechvq: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
