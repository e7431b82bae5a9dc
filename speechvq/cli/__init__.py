"""The `speechvq` command: argparse subcommands; the only module that talks to users or exits.

    speechvq config -c tiny --set model.quantizer.codebook_size=32      # print a resolved config as YAML
    speechvq download librispeech --subset dev-clean --dir download     # fetch, verify, extract a corpus
    speechvq manifest folder /data/my_speakers --out data/manifests     # manifests, splits, speaker table
    speechvq prepare -c tiny --manifests data/manifests                 # check audio and fill the cache
    speechvq train -c tiny --exp exp/tiny                               # train, or resume, a model
    speechvq eval --model exp/tiny/best.pt --manifest data/manifests/test.jsonl --out exp/tiny/eval
    speechvq convert a.wav --speaker p226 --model exp/tiny/best.pt       # voice conversion
    speechvq encode a.wav --model exp/tiny/best.pt && speechvq decode a.svq --model exp/tiny/best.pt
    speechvq info a.svq                                                 # header and bitrates
    speechvq serve                                                      # a web page on http://127.0.0.1:7860/

Expected failures (`SpeechVQError`) print one line `speechvq: error: ...` on stderr and exit 1; usage
errors exit 2 (argparse); Ctrl-C exits 130. Anything else is a bug and keeps its traceback.
Heavy modules (torch) are imported inside the handlers, so `--help` stays quick.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Optional, Sequence

from ..config import DEFAULT_TEMPERATURE, load_config, preset_names
from ..errors import SpeechVQError
from ..generation import DEFAULT_CHOOSE_EVERY_S
from ..postfilter import DEFAULT_POSTFILTER_GAIN
from ..version import __version__
from ..web import DEFAULT_MAX_SECONDS, DEFAULT_MAX_UPLOAD_MB
from .codec_commands import run_code_stats, run_decode, run_encode, run_export, run_info
from .demo import run_demo
from .serve import run_serve
from .workflow import run_convert, run_download, run_eval, run_manifest, run_prepare, run_train

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
    train.add_argument("--init", default=None, metavar="CKPT",
                       help="start a new run from the weights of this checkpoint or exported model (e.g. the "
                            "shipped one), where shapes allow; speaker rows are matched by name")
    train.add_argument("--max-minutes", type=float, default=None, metavar="M",
                       help="wall-clock budget of this run, start-up included: the cosine schedule is fitted to "
                            "end when it is spent, and the run stops with its last checkpoint inside it")

    evaluate = command("eval", run_eval, "reconstruct a manifest's utterances and report quality",
                       "Encode and decode each utterance; write the decoded WAVs, report.json and report.md "
                       "(PESQ-WB and STOI with the eval extra, MCD, SI-SDR, bitrates, real-time factors, codebook use) "
                       "with spectrogram and code-usage plots.",
                       ["speechvq eval --model exp/paper/best.pt --manifest data/manifests/test.jsonl --out exp/eval"])
    evaluate.add_argument("--model", default=None, help="checkpoint (.pt); default: the shipped model")
    evaluate.add_argument("--manifest", required=True)
    evaluate.add_argument("--out", required=True, help="folder for the decoded WAVs and the reports")
    evaluate.add_argument("--max-files", type=int, default=None, help="only the first N utterances")
    evaluate.add_argument("--spread", action="store_true",
                          help="with --max-files: N utterances spread evenly over the manifest (every speaker)")
    evaluate.add_argument("--max-seconds", type=float, default=None, help="only the first S seconds of each")
    evaluate.add_argument("--plots", type=int, default=8, help="spectrogram PNGs for the first N utterances")
    add_decoding_arguments(evaluate)

    convert = command("convert", run_convert, "convert utterances to other speakers' voices",
                      "Encode each source into codes and decode them in each target voice: a named voice of the "
                      "model (--speaker), or the voice of any reference recording (--like; an utterance-mode "
                      "model takes on any speaker's voice, a table model its closest training voice). "
                      "A source is an audio file or a manifest (.jsonl) of them.",
                      ["speechvq convert source.wav --speaker p226 --model exp/paper/best.pt -o p226.wav",
                       "speechvq convert source.wav --like someone.wav other.flac --out-dir vc/",
                       "speechvq convert data/manifests/test.jsonl --max-files 4 --speaker p226 p227 "
                       "--model exp/paper/best.pt --out-dir exp/vc"])
    convert.add_argument("sources", nargs="+", metavar="SOURCE")
    targets = convert.add_mutually_exclusive_group(required=True)
    targets.add_argument("--speaker", nargs="+", help="target voices (names of the model's speakers)")
    targets.add_argument("--like", nargs="+", metavar="REF", help="target voices: reference recordings, one each")
    convert.add_argument("--model", default=None, help="checkpoint (.pt); default: the shipped model")
    convert.add_argument("-o", "--output", default=None, help="output WAV, for one source and one speaker "
                                                              "(default: SOURCE.SPEAKER.wav beside the source)")
    convert.add_argument("--out-dir", default=None, help="write STEM.SPEAKER.wav files here")
    convert.add_argument("--max-files", type=int, default=None, help="only the first N utterances of a manifest")
    convert.add_argument("--max-seconds", type=float, default=None, help="only the first S seconds of each source")
    convert.add_argument("--force", action="store_true", help="overwrite existing output files")
    add_decoding_arguments(convert)

    encode = command("encode", run_encode, "compress audio files into .svq code files",
                     "Encode WAV/FLAC/OGG files (any rate and channel count: resampled and downmixed, with a note) "
                     "into code files. Inputs may be files, folders (searched recursively) or quoted globs.",
                     ["speechvq encode speech.wav --model model.pt                  # -> speech.svq",
                      "speechvq encode recordings/ -o codes/ --model model.pt --speaker p225",
                      "speechvq encode 'takes/*.flac' --model model.pt --coding packed --metadata take=3"])
    add_file_arguments(encode, "output file (one input) or folder (default: beside each input, .svq)")
    encode.add_argument("--speaker", default=None,
                        help="a named voice to record as the default for decoding (default: an utterance-mode "
                             "model records the input's own speaker vector, a table model the training voice "
                             "that explains the input best)")
    encode.add_argument("--coding", default="auto", choices=["auto", "packed", "markov1"],
                        help="auto: entropy-coded (markov1) when the checkpoint has code statistics, else packed")
    encode.add_argument("--format-version", type=int, default=2, choices=[1, 2],
                        help="2: compact binary header; 1: the JSON header of speechvq 0.1 (about 300 bytes)")
    encode.add_argument("--metadata", nargs="+", default=None, metavar="KEY=VALUE",
                        help="free-form text fields to store in each file (they cost bytes; none by default)")
    encode.add_argument("--chunk-frames", type=int, default=25_000,
                        help="encoder frames per pass: bounds memory on long files, same codes")
    encode.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")

    decode = command("decode", run_decode, "resynthesise .svq code files into WAV",
                     "Decode code files with the model that made them, in the recorded speaker's voice unless "
                     "--speaker says otherwise. Shows progress and the real-time factor.",
                     ["speechvq decode speech.svq --model model.pt                 # -> speech.decoded.wav",
                      "speechvq decode codes/ -o decoded/ --model model.pt --speaker p226"])
    add_file_arguments(decode, "output WAV (one input) or folder (default: beside each input, .decoded.wav)")
    voice = decode.add_mutually_exclusive_group()
    voice.add_argument("--speaker", default=None, help="a named voice to decode in (default: what the file records)")
    voice.add_argument("--like", default=None, metavar="REF", help="decode in the voice of this reference recording")
    add_decoding_arguments(decode)

    info = command("info", run_info, "describe .svq code files or a model checkpoint",
                   "Print each code file's header, duration and three bitrates (nominal frame rate x log2 K, "
                   "empirical entropy of its codes, actual file size per second). A version-2 file leaves the "
                   "sample rate, hop and codebook to the model its fingerprint names: the duration and bitrates "
                   "come from --model (default: the shipped model) when it is that model. With --model, describe "
                   "the checkpoint too.",
                   ["speechvq info speech.svq", "speechvq info speech.svq --json",
                    "speechvq info --model model.pt --speakers"])
    info.add_argument("files", nargs="*", metavar="FILE.svq")
    info.add_argument("--model", default=None, help="a checkpoint (.pt): to describe, or to read the files with")
    info.add_argument("--speakers", action="store_true", help="with --model: only the speaker names, one per line")
    info.add_argument("--json", action="store_true", help="one JSON object per line")

    stats = command("code-stats", run_code_stats, "measure code statistics for entropy coding",
                    "Encode a manifest's utterances (training data) and store the counts of codes and code pairs "
                    "in the checkpoint, which then writes entropy-coded (markov1) code files.",
                    ["speechvq code-stats --model exp/paper/best.pt --manifest data/manifests/train.jsonl "
                     "--max-files 2000 --spread"])
    stats.add_argument("--model", required=True, help="checkpoint (.pt), rewritten atomically with the counts")
    stats.add_argument("--manifest", required=True)
    stats.add_argument("--max-files", type=int, default=None, help="only the first N utterances")
    stats.add_argument("--spread", action="store_true",
                       help="with --max-files: N utterances spread evenly over the manifest (every speaker)")
    stats.add_argument("--max-seconds", type=float, default=None)
    stats.add_argument("--device", default="auto")

    demo = command("demo", run_demo, "the shipped model on shipped sample speech: encode, decode, convert",
                   "Offline, on this machine: encode 3.25 s of held-out sample speech into a .svq file, decode it, "
                   "convert it into two other voices, and write the WAVs and a spectrogram PNG; print the file "
                   "size, the bitrates, the real-time factors and the speaker similarity of the conversions "
                   "(similarity needs the eval extra: pip install 'speechvq[eval]').",
                   ["speechvq demo", "speechvq demo --out /tmp/demo --voices june"])
    demo.add_argument("--out", default="speechvq-demo", help="folder for the WAVs, the .svq file and the PNG")
    demo.add_argument("--model", default=None, help="checkpoint (.pt); default: the shipped model")
    demo.add_argument("--voices", nargs="*", default=None, metavar="SPEAKER",
                      help="voices to convert into (default: carlo june)")
    demo.add_argument("--seconds", type=float, default=None, help="use only the first S seconds of the sample")
    add_decoding_arguments(demo)

    serve = command("serve", run_serve, "a local web page to try the codec and voice conversion",
                    "Serve a page where you upload or record speech (or pick the shipped sample), hear it decoded "
                    "and converted, see the spectrograms, bitrates and real-time factors, and download the .svq "
                    "file. Needs the web extra: pip install 'speechvq[web]'. Binds to 127.0.0.1 unless --host "
                    "says otherwise.",
                    ["speechvq serve", "speechvq serve --model exp/paper/best.pt --port 8000 --max-seconds 60"])
    serve.add_argument("--model", default=None, help="checkpoint (.pt); default: the shipped model")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=7860)
    serve.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, help="largest upload accepted, MB")
    serve.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, help="longest audio accepted, seconds")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                       help="the web server's logging")
    add_decoding_arguments(serve)

    export = command("export", run_export, "write an inference copy of a checkpoint (weights only)",
                     "Drop the optimiser, scheduler and resume state from a training checkpoint: about a third of "
                     "the size, and all that encode/decode/convert need.",
                     ["speechvq export exp/paper/best.pt model.pt"])
    export.add_argument("checkpoint", help="training checkpoint (.pt)")
    export.add_argument("output", help="the inference checkpoint to write (.pt)")
    export.add_argument("--force", action="store_true", help="overwrite an existing output file")
    return parser


def add_file_arguments(parser: argparse.ArgumentParser, output_help: str) -> None:
    """Inputs, -o, --model and --force of the commands that turn many files into many files."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT")
    parser.add_argument("-o", "--output", default=None, help=output_help)
    parser.add_argument("--model", default=None, help="checkpoint (.pt); default: the shipped model")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    """Sampling, engine, chunking and device options of every subcommand that runs the decoder."""
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                        help="sampling temperature (0: argmax; the default was chosen by measurement, see README)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the decoder's sampling")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--engine", default="auto",
                        choices=["auto", "native", "numba", "torch", "triton", "graph", "reference"],
                        help="generation engine: auto = on the CPU whichever of the C loop (native), numba and "
                             "fused PyTorch was measured fastest on this machine (timed once, cached in "
                             "~/.cache/speechvq); on a GPU the Triton kernel (triton), else CUDA graphs (graph); "
                             "reference = the plain step, the ground truth")
    parser.add_argument("--precision", default="reduced", choices=["reduced", "full"],
                        help="reduced: the fast engines' quicker arithmetic, about 1e-3 off in the logits "
                             "(half-precision weights in the C loop, single-pass TF32 in the Triton kernel); "
                             "full: float32 accuracy")
    parser.add_argument("--sequential", action="store_true",
                        help="decode each utterance as one stream instead of chunk-parallel")
    parser.add_argument("--chunk-s", type=float, default=1.0, help="chunk length for chunk-parallel decoding")
    parser.add_argument("--overlap-s", type=float, default=0.192,
                        help="each chunk's warm-up plus cross-fade before its own start")
    parser.add_argument("--crossfade-s", type=float, default=0.064, help="cross-fade at each join")
    parser.add_argument("--threads", type=int, default=None, help="threads of the native and numba engines")
    parser.add_argument("--postfilter", type=float, default=DEFAULT_POSTFILTER_GAIN, metavar="GAIN",
                        help="pitch post-filter gain in [0, 1) where the codes carry a pitch stream (0: off; "
                             "the default was chosen by measurement, see README)")
    parser.add_argument("--best-of", type=int, default=1, metavar="N",
                        help="sample every chunk N times, all continuing from the sample that the encoder puts "
                             "closest to the codes at every --choose-every (N times the generation time; see README)")
    parser.add_argument("--choose-every", type=float, default=DEFAULT_CHOOSE_EVERY_S, metavar="SECONDS",
                        dest="choose_every_s",
                        help="with --best-of: choose among the N samples every SECONDS as they are generated, "
                             "all continuing from the closest (the default was measured best); 0: once per "
                             "chunk (see README)")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """`-c/--config` and `--set`, shared by every subcommand that builds a Config."""
    parser.add_argument("-c", "--config", default="paper",
                        help=f"preset name ({', '.join(preset_names())}) or path to a YAML file")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config values by dotted key, e.g. model.quantizer.codebook_size=256")


def run_config(args: argparse.Namespace) -> int:
    """Print the resolved config (or the preset list) on stdout."""
    if args.list:
        print("\n".join(preset_names()))
        return 0
    sys.stdout.write(load_config(args.config, args.overrides).to_yaml())
    return 0


def _show_package_messages() -> None:
    """The package's log messages (e.g. the one-time timing of the CPU engines) as `speechvq: ...` on stderr."""
    logger = logging.getLogger("speechvq")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("speechvq: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _show_package_messages()
    try:
        return args.handler(args)
    except SpeechVQError as err:
        print(f"speechvq: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("speechvq: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
