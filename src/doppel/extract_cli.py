"""Arguments of `doppel extract` (and the quality flags `doppel faceset refilter` shares); dispatch only.

Imports only settings (faces.options): the extract stage (OpenCV, dlib) loads in `run`, so `doppel
extract --help` starts fast. doppel.extract re-exports these names.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import fields
from pathlib import Path

from .errors import DoppelError
from .faces.options import (DEFAULT_COVERAGE, DEFAULT_SIZE, SIZES, QualityConfig, add_detect_arguments,
                            detect_config)

FLAG_NAMES = {"max_identity": "--reference-distance"}  # QualityConfig field -> flag, when not --field-name


def add_quality_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per QualityConfig field; absent flags keep the face set's stored value or the default."""
    group = parser.add_argument_group("quality filters (thresholds)")
    for f in fields(QualityConfig):
        flag = FLAG_NAMES.get(f.name, "--" + f.name.replace("_", "-"))
        group.add_argument(flag, dest=f.name, type=type(f.default), default=argparse.SUPPRESS,
                           metavar="N", help=f"{f.metadata.get('help', '')} [default {f.default}]")


def quality_config(args: argparse.Namespace, stored: dict, reference: bool = False) -> QualityConfig:
    """Defaults, then thresholds stored in the face set, then flags given on this command line."""
    values = {f.name: f.default for f in fields(QualityConfig)}
    if reference:
        values["max_people"] = 0  # the reference picks the person out of a crowd
    values.update({k: type(values[k])(v) for k, v in stored.items() if k in values})
    values.update({k: getattr(args, k) for k in values if hasattr(args, k)})
    return QualityConfig(**values)


def stored_quality(root: str | os.PathLike) -> dict:
    """Thresholds saved by an earlier run in the face set at `root` ({} when there is none)."""
    from .faceset import ALIGNMENTS, FaceSet

    if not (Path(root) / ALIGNMENTS).is_file():
        return {}
    try:
        return FaceSet.open(root).meta.get("quality", {})
    except DoppelError:
        return {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="videos, photos or folders of photos")
    parser.add_argument("-o", "--output", required=True, metavar="FACESET",
                        help="face set folder: created, or extended when it already holds one")
    parser.add_argument("--size", type=int, choices=SIZES, default=DEFAULT_SIZE,
                        help="side of the aligned crops in pixels")
    parser.add_argument("--coverage", type=float, default=DEFAULT_COVERAGE,
                        help="fraction of the crop side the face's landmark box spans")
    parser.add_argument("--every", type=int, default=1, metavar="N", help="read every Nth video frame")
    parser.add_argument("--reference", metavar="PHOTO",
                        help="keep only faces of the person in this photo (see --reference-distance)")
    add_detect_arguments(parser)
    add_quality_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from .extract import ExtractConfig, extract

    if args.every < 1:
        raise DoppelError(f"--every must be at least 1, got {args.every}")
    if not 0.1 <= args.coverage <= 1.0:
        raise DoppelError(f"--coverage must be between 0.1 and 1, got {args.coverage}")
    qcfg = quality_config(args, stored_quality(args.output), args.reference is not None)
    cfg = ExtractConfig(size=args.size, coverage=args.coverage, every=args.every, quality=qcfg,
                        detect=detect_config(args), reference=args.reference)
    summary = extract(args.inputs, args.output, cfg)
    print(summary.table())
    return 0
