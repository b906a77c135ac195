"""A speaker's video read once: frames (optional), times and 68 landmarks per frame.

Landmarks come from faces.detect.FaceTracker (the largest face in each frame);
results are cached per file within a run so training, synthesis and
evaluation do not track the same video twice.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import media
from ..errors import DoppelError
from ..faces import detect

log = logging.getLogger(__name__)
MIN_FOUND = 0.5  # a video whose face is found in fewer frames than this is refused

_CACHE: dict[tuple, "Footage"] = {}


@dataclass
class Footage:
    path: str
    fps: float  # frames per second of the video
    times: np.ndarray  # (N,) seconds of each frame
    landmarks: np.ndarray  # (N, 68, 2) float64 pixels; missing faces filled from neighbours
    found: np.ndarray  # (N,) bool: a face was found in this frame
    frames: list[np.ndarray] | None = None  # (H, W, 3) uint8 RGB, when kept


def load(path: str | os.PathLike, keep_frames: bool = False,
         cfg: detect.DetectConfig = detect.DetectConfig()) -> Footage:
    """Track the face through a video; raise DoppelError when it shows no usable face."""
    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime if p.exists() else 0, cfg)
    hit = _CACHE.get(key)
    if hit is not None and (hit.frames is not None or not keep_frames):
        return hit
    info = media.probe(p)
    if info.is_image:
        raise DoppelError(f"{p}: lip sync needs a video, not an image")
    foot = _track(p, info, keep_frames, cfg)
    _CACHE[key] = foot
    return foot


def _track(p: Path, info: media.VideoInfo, keep_frames: bool, cfg: detect.DetectConfig) -> Footage:
    tracker = detect.FaceTracker(cfg)
    times, lms, found, frames = [], [], [], []
    for fr in tqdm(media.iter_frames(p), total=info.frame_count or None, desc=f"landmarks {p.name}",
                   unit="frame", leave=False):
        faces = tracker(fr.image)
        times.append(fr.time)  # presentation time: some streams start late or run at a variable rate
        found.append(bool(faces))
        lms.append(faces[0].landmarks if faces else np.full((68, 2), np.nan))
        if keep_frames:
            frames.append(fr.image)
    found = np.array(found)
    if found.mean() < MIN_FOUND:
        raise DoppelError(f"{p}: a face was found in only {found.sum()} of {len(found)} frames")
    lm = np.array(lms)
    filled = _fill(lm, found)
    log.info("%s: %d frames, face in %d", p.name, len(found), found.sum())
    return Footage(str(p), info.fps, np.array(times), filled, found, frames if keep_frames else None)


def _fill(lm: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Landmarks of frames without a face taken from the nearest frame with one."""
    if found.all():
        return lm
    idx = np.flatnonzero(found)
    nearest = idx[np.abs(np.arange(len(lm))[:, None] - idx[None, :]).argmin(1)]
    return lm[nearest]


def clear_cache() -> None:
    _CACHE.clear()
