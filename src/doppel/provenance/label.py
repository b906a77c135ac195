"""doppel's synthetic metadata label: written into every output, read back by the detector.

Videos carry it in the MP4 container's `comment` (a fixed marker line) and
`description` (JSON with what made it). PNG images carry the same JSON in a
tEXt chunk, JPEG images in a COM segment. Metadata is easy to strip, so the
detector never treats a missing label as evidence of a real video.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import av
import numpy as np
from PIL import Image, PngImagePlugin

from .. import __version__, media

MARKER = "doppel-synthetic/1"  # fixed string the detector looks for
PNG_KEY = "doppel"


def label(kind: str, **details) -> dict:
    """The label's content: what was made, by which doppel, when, from what."""
    return {"marker": MARKER, "synthetic": True, "kind": kind, "tool": f"doppel {__version__}",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "details": {k: str(v) for k, v in details.items()}}


def video_metadata(kind: str, **details) -> dict[str, str]:
    """Container metadata for media.VideoWriter(metadata=...)."""
    lab = label(kind, **details)
    return {"comment": f"{MARKER} synthetic media made by doppel ({kind}); not a real recording",
            "description": json.dumps(lab)}


def write_labeled_image(path: str | os.PathLike, image: np.ndarray, kind: str, parent=None, **details) -> None:
    """Write an RGB uint8 image (PNG or JPEG by extension) labelled, watermarked and signed, atomically.

    `parent` is the photo it was made from (the C2PA ingredient), when there is one.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    if Path(path).suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise media.MediaError(f"labelled images are PNG or JPEG, not {Path(path).suffix}: {path}")
    from .writer import write_image
    write_image(path, image, kind, parent=parent, **details)


def save_image(tmp: Path, image: np.ndarray, lab: dict, final: Path) -> None:
    """Save `image` to `tmp` as PNG or JPEG (by `final`'s extension) with the label `lab` embedded."""
    text = json.dumps(lab)
    pil = Image.fromarray(image)
    if final.suffix.lower() == ".png":
        info = PngImagePlugin.PngInfo()
        info.add_text(PNG_KEY, text)
        pil.save(tmp, format="PNG", pnginfo=info)
    else:
        pil.save(tmp, format="JPEG", quality=95, comment=text.encode())


def read_label(path: str | os.PathLike) -> dict | None:
    """The doppel label of a video or image file, or None when it carries none."""
    path = Path(path)
    if media.is_image_path(path):
        try:
            with Image.open(path) as im:
                text = im.info.get(PNG_KEY) or im.info.get("comment")
        except OSError:
            return None
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        return _parse(text)
    try:
        with av.open(str(path)) as c:
            meta = dict(c.metadata)
    except (av.error.FFmpegError, OSError):
        return None
    found = _parse(meta.get("description"))
    if found is None and MARKER in meta.get("comment", ""):
        found = {"marker": MARKER, "synthetic": True, "kind": "unknown", "details": {}}
    return found


def _parse(text: str | None) -> dict | None:
    if not text or MARKER not in text:
        return None
    try:
        d = json.loads(text)
    except json.JSONDecodeError:
        return {"marker": MARKER, "synthetic": True, "kind": "unknown", "details": {}}
    return d if isinstance(d, dict) else None
