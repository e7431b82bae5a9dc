"""The `speechvq` command: argparse subcommands; the only module that talks to users or exits.

    speechvq config -c tiny --set model.quantizer.codebook_size=32      # print a resolved config as YAML
    speechvq config --list                                               # the presets that ship

Expected failures (`SpeechVQError`) print one line `speechvq: error: ...` on stderr and exit 1; usage
errors exit 2 (argparse); Ctrl-C exits 130. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

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
        prog="speechvq",
        description="VQ-VAE speech codec: compress speech into discrete codes, resynthesise it with a WaveNet, "
                    "and convert voices.",
        formatter_class=_HelpFormatter,
        epilog="examples:\n  speechvq config -c paper\n  speechvq config -c tiny --set train.lr=3e-4",
    )
    parser.add_argument("--version", action="version", version=f"speechvq {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    config = commands.add_parser(
        "config", help="print a resolved configuration",
        description="Resolve a preset or YAML file plus --set overrides and print the full config as YAML.",
        formatter_class=_HelpFormatter,
        epilog="examples:\n  speechvq config -c paper\n"
               "  speechvq config -c recipes/vctk/conf/base.yaml --set model.quantizer.ema=true")
    add_config_arguments(config)
    config.add_argument("--list", action="store_true", help="list the presets that ship with speechvq and exit")
    config.set_defaults(handler=run_config)
    return parser


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
    cfg = load_config(args.config, args.overrides)
    sys.stdout.write(cfg.to_yaml())
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
