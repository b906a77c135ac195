"""`doppel faceset sheet|refilter|info FACESET`: look at a face set and re-filter it without re-detecting.

Module level imports only argparse-level things (OpenCV, numpy and the face set load where they are used),
so `doppel faceset --help` starts fast.
"""
from __future__ import annotations

import argparse
import logging
from collections import Counter
from typing import TYPE_CHECKING

from . import filetypes
from .errors import DoppelError
from .extract_cli import add_quality_arguments, quality_config

if TYPE_CHECKING:
    import numpy as np

    from .faceset import FaceRecord, FaceSet

log = logging.getLogger(__name__)

BANNER = 22  # height in pixels of a group's label row on the contact sheet
BACKGROUND = (32, 32, 32)  # RGB of the sheet's background
TEXT = (235, 235, 235)  # RGB of the labels


def _banner(text: str, width: int) -> np.ndarray:
    import cv2
    import numpy as np

    row = np.full((BANNER, width, 3), BACKGROUND, np.uint8)
    cv2.putText(row, text, (4, BANNER - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, TEXT, 1, cv2.LINE_AA)
    return row


def _grid(thumbs: list[np.ndarray], columns: int, thumb: int) -> np.ndarray:
    """Thumbnails (thumb, thumb, 3) uint8 in rows of `columns`, padded with background."""
    import numpy as np

    rows = -(-len(thumbs) // columns)
    out = np.full((rows * thumb, columns * thumb, 3), BACKGROUND, np.uint8)
    for i, t in enumerate(thumbs):
        r, c = divmod(i, columns)
        out[r * thumb:(r + 1) * thumb, c * thumb:(c + 1) * thumb] = t
    return out


def contact_sheet(groups: list[tuple[str, list[np.ndarray]]], columns: int = 16, thumb: int = 64) -> np.ndarray:
    """One image of labelled groups of face crops: a banner row, then the crops in a grid.

    groups: (label, [crop (S, S, 3) uint8 RGB, ...]); crops are resized to `thumb`.
    Returns (H, columns * thumb, 3) uint8 RGB.
    """
    import cv2
    import numpy as np

    if columns < 1 or thumb < 8:
        raise ValueError(f"columns must be >= 1 and thumb >= 8, got {columns}, {thumb}")
    width = columns * thumb
    parts = []
    for label, crops in groups:
        parts.append(_banner(label, width))
        if crops:
            parts.append(_grid([cv2.resize(c, (thumb, thumb), interpolation=cv2.INTER_AREA) for c in crops],
                               columns, thumb))
    if not parts:
        raise ValueError("nothing to draw")
    return np.concatenate(parts, 0)


def sheet_groups(fs: FaceSet, max_kept: int, per_reason: int) -> list[tuple[str, list[np.ndarray]]]:
    """The kept faces, then the dropped ones by reason (most frequent first), read from disk."""
    from .faceset_filter import spread

    def load(records: list[FaceRecord]) -> list[np.ndarray]:
        return [fs.load_crop(r) for r in records]
    groups = [(f"kept: {len(fs.faces)}", load(spread(fs.faces, max_kept)))]
    by_reason: dict[str, list[FaceRecord]] = {}
    for r in fs.dropped:
        by_reason.setdefault(r.reason, []).append(r)
    for reason, records in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        groups.append((f"dropped, {reason}: {len(records)}", load(spread(records, per_reason))))
    return groups


def info_table(fs: FaceSet) -> str:
    """Size, counts per reason and sources of a face set, as text rows."""
    counts = Counter(r.reason for r in fs.dropped)
    sources = Counter(r.source for r in fs.faces)
    rows = [("folder", str(fs.root)), ("crop size", f"{fs.size} px, coverage {fs.coverage}"),
            ("faces kept", len(fs.faces)), ("identity embedding", "yes" if fs.meta.get("identity") else "no")]
    rows += [(f"dropped: {k}", v) for k, v in sorted(counts.items())]
    rows += [(f"kept from {k}", v) for k, v in sorted(sources.items())]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run_sheet(args: argparse.Namespace) -> int:
    from . import media
    from .faceset import FaceSet

    fs = FaceSet.open(args.faceset)
    if not fs.faces and not fs.dropped:
        raise DoppelError(f"face set is empty: {fs.root}")
    if not args.output.lower().endswith(tuple(filetypes.OUTPUT_IMAGE_EXTS)):
        raise DoppelError(f"the sheet is written as PNG or JPEG, not {args.output}")
    image = contact_sheet(sheet_groups(fs, args.max_kept, args.per_reason), args.columns, args.thumb)
    media.write_image(args.output, image)
    print(f"wrote {args.output} ({image.shape[1]}x{image.shape[0]})")
    return 0


def run_refilter(args: argparse.Namespace) -> int:
    from .faceset_filter import apply_filters
    from .faceset import FaceSet

    fs = FaceSet.open(args.faceset)
    stored = fs.meta.get("quality", {})
    apply_filters(fs, quality_config(args, stored))
    print(info_table(fs))
    return 0


def run_info(args: argparse.Namespace) -> int:
    from .faceset import FaceSet

    print(info_table(FaceSet.open(args.faceset)))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = sub.add_parser("sheet", formatter_class=fmt, help="contact sheet of kept faces and of dropped faces by reason")
    p.add_argument("faceset", metavar="FACESET")
    p.add_argument("-o", "--output", required=True, metavar="SHEET.png", help="image to write")
    p.add_argument("--columns", type=int, default=16, help="thumbnails per row")
    p.add_argument("--thumb", type=int, default=64, help="thumbnail side in pixels")
    p.add_argument("--max-kept", type=int, default=64, help="kept faces shown, spread over the set (0: all)")
    p.add_argument("--per-reason", type=int, default=16, help="dropped faces shown per reason (0: all)")
    p.set_defaults(_action=run_sheet)
    p = sub.add_parser("refilter", formatter_class=fmt,
                       help="re-apply thresholds to the stored scores, moving crops between faces/ and dropped/")
    p.add_argument("faceset", metavar="FACESET")
    add_quality_arguments(p)
    p.set_defaults(_action=run_refilter)
    p = sub.add_parser("info", formatter_class=fmt, help="counts, sources and settings of a face set")
    p.add_argument("faceset", metavar="FACESET")
    p.set_defaults(_action=run_info)


def run(args: argparse.Namespace) -> int:
    return args._action(args)
