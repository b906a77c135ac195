"""The one place synthesized outputs are written: label + watermark + C2PA inside the atomic write.

Stages call `video_writer(...)` instead of media.VideoWriter and `write_image(...)` for
stills; each output gets a fresh run id, the watermark carries it in every frame, the
JSON label records it, and the manifest is signed on the temporary file before rename.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from .. import media
from ..errors import DoppelError
from . import watermark
from .label import MARKER, label as make_label, save_image

log = logging.getLogger(__name__)


def _stamp(kind: str, key: str | None, details: dict) -> tuple[dict, int, watermark.MarkSettings]:
    """(label dict, payload, mark settings) for a new output."""
    key = watermark.key_from_env(key)
    try:
        strength = watermark.strength_from_env()
    except ValueError as e:
        raise DoppelError(f"${watermark.STRENGTH_ENV}: {e}") from None
    if kind.endswith("-preview") or details.get("preview"):
        strength *= watermark.PREVIEW_STRENGTH
    run_id = watermark.new_run_id()
    payload = watermark.make_payload(run_id)
    d = make_label(kind, **details)
    d["watermark"] = {"payload": f"{payload:012x}", "run_id": f"{run_id:08x}",
                      "key": "default" if key == watermark.DEFAULT_KEY
                      else "custom " + hashlib.sha256(key.encode()).hexdigest()[:8]}
    if strength != 1.0:
        d["watermark"]["strength"] = strength
    return d, payload, watermark.MarkSettings(key=key, strength=watermark.MarkSettings.strength * strength)


def _sign(tmp: Path, final: Path, label: dict, parent: str | os.PathLike | None) -> None:
    """Sign `tmp` in place (through a second temporary file beside it)."""
    from . import c2pa
    signed = tmp.with_name(tmp.stem + ".c2pa" + tmp.suffix)
    try:
        c2pa.sign(tmp, signed, final.name, label, Path(parent) if parent else None)
        os.replace(signed, tmp)
    except ImportError as e:
        log.warning("no C2PA manifest on %s: c2pa-python is not usable here (%s)", final, e)
    finally:
        if signed.exists():
            signed.unlink()


class LabeledVideoWriter(media.VideoWriter):
    """media.VideoWriter that watermarks each frame, labels the container and signs the file."""

    def __init__(self, path, fps, kind: str, details: dict, parent=None, key: str | None = None, **kw):
        self.label, self.payload, self.mark = _stamp(kind, key, details)
        meta = {"comment": f"{MARKER} synthetic media made by doppel ({kind}); not a real recording",
                "description": json.dumps(self.label)}
        super().__init__(path, fps, metadata=meta, finalize=self._finalize, **kw)
        self.parent = parent

    def write(self, image: np.ndarray) -> None:
        super().write(watermark.embed(image, self.payload, self.mark))

    def _finalize(self, tmp: Path) -> None:
        _sign(tmp, self.path, self.label, self.parent)


def video_writer(path, fps: float, kind: str, details: dict | None = None, parent=None, key: str | None = None,
                 **writer_options) -> LabeledVideoWriter:
    """A labelled, watermarked, signed MP4 writer; `details` go into the label, `parent` (the
    edited video) into the C2PA manifest; media.VideoWriter options (crf, audio, ...) pass through."""
    return LabeledVideoWriter(path, fps, kind, details or {}, parent=parent, key=key, **writer_options)


def write_image(path, image: np.ndarray, kind: str, parent=None, key: str | None = None, **details) -> dict:
    """Write an RGB uint8 PNG/JPEG watermarked, labelled and signed, atomically; returns the label."""
    path = Path(path)
    label, payload, mark = _stamp(kind, key, details)
    marked = watermark.embed(image, payload, mark)
    with media.atomic_path(path) as tmp:
        save_image(tmp, marked, label, path)
        _sign(tmp, path, label, parent)
    return label
