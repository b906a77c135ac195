"""Per-clip disk cache of what lip-sync training needs from a video: speech features and landmarks.

Tracking a face is by far the slowest part of reading a clip (about 10-20 ms a
frame here), so each clip's result is written once to `<cache>/<stem>-<key>.npz`
and read back on later runs. The key hashes the file's resolved path, size and
modification time, the face-finder settings and CACHE_VERSION, so an edited
video or a different finder is tracked again. Landmarks are stored raw (not
mouth shapes) so the shape code can change without invalidating the cache.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import audio, media
from ..errors import DoppelError
from ..faces import finder
from . import footage

log = logging.getLogger(__name__)
CACHE_VERSION = 1  # bump when what is stored changes
ENV = "DOPPEL_LIPSYNC_CACHE"  # environment variable naming the default cache folder


@dataclass
class ClipData:
    name: str  # file name of the clip
    features: np.ndarray  # (T, 28) float32 speech features at 100 fps
    fps: float  # video frame rate
    times: np.ndarray  # (N,) seconds of each video frame
    landmarks: np.ndarray  # (N, 68, 2) float32 pixels, gaps filled from neighbours
    found: np.ndarray  # (N,) bool: a face was found in this frame


def default_dir() -> Path:
    """$DOPPEL_LIPSYNC_CACHE, else $XDG_CACHE_HOME/doppel/lipsync, else ~/.cache/doppel/lipsync."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "doppel" / "lipsync"


def key(path: Path, cfg: finder.DetectConfig) -> str:
    """Hash of the file's identity and the settings that decide its landmarks."""
    st = path.stat()
    text = f"{CACHE_VERSION}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{cfg!r}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def load(path: str | os.PathLike, folder: str | os.PathLike | None = None,
         cfg: finder.DetectConfig = finder.DetectConfig()) -> ClipData:
    """Features and landmarks of one clip, from the cache when present (folder None: no disk cache)."""
    p = Path(path)
    if not p.is_file():
        raise DoppelError(f"no such video: {p}")
    file = Path(folder) / f"{p.stem}-{key(p, cfg)}.npz" if folder is not None else None
    if file is not None and file.is_file():
        try:
            return _read(file, p.name)
        except (OSError, ValueError, KeyError) as e:  # a torn or foreign file: track again
            log.warning("ignoring unreadable cache %s (%s)", file, e)
    data = compute(p, cfg)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        with media.atomic_path(file, suffix=".tmp.npz") as tmp:
            np.savez(tmp, features=data.features, fps=data.fps, times=data.times,
                     landmarks=data.landmarks, found=data.found)
    return data


def compute(p: Path, cfg: finder.DetectConfig) -> ClipData:
    feats = audio.features(p)
    foot = footage.load(p, cfg=cfg)
    return ClipData(p.name, feats, foot.fps, foot.times, foot.landmarks.astype(np.float32), foot.found)


def _read(file: Path, name: str) -> ClipData:
    with np.load(file) as z:
        return ClipData(name, z["features"], float(z["fps"]), z["times"], z["landmarks"], z["found"].astype(bool))
