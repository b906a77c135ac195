"""The `doppel` command: parses arguments and dispatches to a stage; nothing else.

Each stage module named in COMMANDS provides `add_arguments(parser)` and
`run(args) -> int`; a stage whose module is not there yet is left out.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from . import interrupt
from .errors import DoppelError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "extract": ("doppel.extract_cli", "detect, align and filter faces from videos or photos into a face set"),
    "faceset": ("doppel.faceset_cli", "inspect a face set (contact sheet, re-filter)"),
    "pretrain": ("doppel.swap.pretrain", "train a face prior (shared encoder + generic decoder) on many people"),
    "train": ("doppel.swap.train_cli", "train the swap model (shared encoder, one decoder per person)"),
    "swap": ("doppel.swap.convert_cli", "draw person B's face over person A in a video or photo"),
    "lipsync": ("doppel.lipsync.cli", "make a video's mouth follow new speech audio; 'lipsync train' learns the model"),
    "detect": ("doppel.detect.cli", "say whether videos are manipulated, where and why; 'detect train' learns the models"),
    "ui": ("doppel.ui.cli", "a local web app (detect, face sets, train, swap, lip sync) on 127.0.0.1"),
    "provenance": ("doppel.provenance.cli", "check a file's synthetic label, invisible watermark and C2PA manifest"),
    "scan": ("doppel.scan.cli", "detect on many files with a Dask cluster into a SQLite store; 'scan report' writes reports"),
}
# global options that provenance reads from the environment wherever a file is written or read
PROVENANCE_ENV = {"watermark_key": "DOPPEL_WATERMARK_KEY", "watermark_strength": "DOPPEL_WATERMARK_STRENGTH",
                  "c2pa_cert": "DOPPEL_C2PA_CERT", "c2pa_key": "DOPPEL_C2PA_KEY"}


def _available() -> dict[str, tuple[str, str]]:
    """The commands whose module file is there (looked up on disk: importing a stage's package to ask
    would import its dependencies)."""
    root = Path(__file__).resolve().parent
    return {name: (mod, text) for name, (mod, text) in COMMANDS.items()
            if (root / Path(*mod.split(".")[1:])).with_suffix(".py").is_file()}


WATERMARK_STRENGTH = (0.25, 2.0)  # = provenance.watermark.STRENGTH_RANGE (tested), not imported: the parser stays light
VALUE_OPTIONS = {"--watermark-key", "--watermark-strength", "--c2pa-cert", "--c2pa-key"}  # global options that take a value


def command_in(argv: list[str]) -> str | None:
    """The command argv names (its first word that is not a global option or an option's value)."""
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in VALUE_OPTIONS:
            skip = True
        elif not a.startswith("-"):
            return a if a in COMMANDS else None
    return None


def _strength(text: str) -> str:
    """argparse type of --watermark-strength: checked here (one-line usage error), passed on as text."""
    lo, hi = WATERMARK_STRENGTH
    try:
        ok = lo <= float(text) <= hi
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"must be a number from {lo} to {hi}, got {text!r}")
    return text


def build_parser(commands: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `commands`, only those stages' modules are imported for their options (the
    others are listed with their help line): `doppel --help` and one command's start-up stay fast."""
    from . import __version__
    p = argparse.ArgumentParser(prog="doppel", description=(
        "Make and detect face-swap and lip-sync deepfakes. Every output doppel synthesizes is "
        "labelled as synthetic. For research, detection datasets, forensic analysis and consented work."))
    p.add_argument("--version", action="version", version=f"doppel {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    p.add_argument("--watermark-key", help="your own secret for the invisible watermark (written and read)")
    p.add_argument("--watermark-strength", type=_strength, metavar="X",
                   help="scale the invisible watermark's strength (0.25-2; default 1): lower shows less on flat, "
                   "evenly lit areas (a green screen) and survives less re-encoding and rescaling (docs/provenance.md)")
    p.add_argument("--c2pa-cert", help="PEM certificate chain to sign C2PA manifests with (default: "
                   "doppel's own, made on first use in ~/.config/doppel)")
    p.add_argument("--c2pa-key", help="PEM private key of --c2pa-cert")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (mod, text) in _available().items():
        sp = sub.add_parser(name, help=text, description=text,
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        sp.set_defaults(_module=mod)
        if commands is None or name in commands:
            importlib.import_module(mod).add_arguments(sp)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser([c] if (c := command_in(argv)) else [])
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for opt, env in PROVENANCE_ENV.items():
        if getattr(args, opt, None):
            os.environ[env] = getattr(args, opt)
    interrupt.install()  # Ctrl-C is remembered, so a loop notices it even if a finalizer swallowed it
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except DoppelError as e:
        print(f"doppel {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"doppel {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
