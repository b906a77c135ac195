"""`doppel provenance check FILE...`: label, watermark and C2PA manifest of each file.

Read a mark made with your own key with `doppel --watermark-key K provenance check FILE`.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import DoppelError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["check"], help="check: read and verify the provenance signals")
    p.add_argument("files", nargs="+", help="videos or images")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")


def run(args: argparse.Namespace) -> int:
    from .. import media
    from .check import check, lines

    results, failed = [], 0
    for f in args.files:
        try:
            r = check(f)  # a key given as `doppel --watermark-key K` is in the environment
        except media.MediaError as e:
            print(f"{f}: skipped: {e}", file=sys.stderr)
            failed += 1
            continue
        results.append({"file": f, **r})
        if not args.json:
            verdict = "SYNTHETIC (" + "; ".join(r["evidence"]) + ")" if r["evidence"] else \
                "no provenance signal found (this does not mean it is real)"
            print(f"{f}: {verdict}")
            for line in lines(r):
                print(f"  {line}")
    if args.json:
        print(json.dumps(results, indent=1, default=str))
    if failed == len(args.files):
        raise DoppelError("no file could be read")
    return 0
