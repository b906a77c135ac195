"""A speaker's video read once: times and 68 landmarks per frame (frames only on request).

Landmarks come from faces.finder.FaceTracker (the largest face in each frame);
results are cached per file within a run so training, synthesis and
evaluation do not track the same video twice. Synthesis does not keep the
frames (a minute of 1080p is 9 GB): it reads them again through FrameReader,
which holds a bounded window of decoded frames and seeks back for the
backward half of ping-pong playback.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from tqdm import tqdm

from .. import media
from ..errors import DoppelError
from ..faces import finder

log = logging.getLogger(__name__)
MIN_FOUND = 0.5  # a video whose face is found in fewer frames than this is refused
READER_BUDGET = 256 << 20  # bytes of decoded frames FrameReader holds (about 43 frames of 1080p)
ROWS_AHEAD = 1 << 15  # per-frame rows tracking allocates up front at most (a header may overstate the count)
SEEK_AHEAD = 250  # a forward jump of more frames than this seeks instead of decoding through (x264's GOP)

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
         cfg: finder.DetectConfig = finder.DetectConfig()) -> Footage:
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


def _track(p: Path, info: media.VideoInfo, keep_frames: bool, cfg: finder.DetectConfig) -> Footage:
    tracker = finder.FaceTracker(cfg)
    # Per-frame results go into arrays sized from the header (grown if it undercounts), not lists of
    # small arrays: small blocks kept between the 6 MB frame buffers pin malloc's heap (see prepare).
    n = info.frame_count
    times, lm, found = _Rows(n, ()), _Rows(n, (68, 2)), _Rows(n, (), bool)
    frames = []
    for fr in tqdm(media.iter_frames(p), total=info.frame_count or None, desc=f"landmarks {p.name}",
                   unit="frame", leave=False):
        faces = tracker(fr.image)
        times.append(fr.time)  # presentation time: some streams start late or run at a variable rate
        found.append(bool(faces))
        lm.append(faces[0].landmarks if faces else np.nan)
        if keep_frames:
            frames.append(fr.image)
    found = found.array()
    if found.mean() < MIN_FOUND:
        raise DoppelError(f"{p}: a face was found in only {found.sum()} of {len(found)} frames")
    filled = _fill(lm.array(), found)
    log.info("%s: %d frames, face in %d", p.name, len(found), found.sum())
    return Footage(str(p), info.fps, times.array(), filled, found, frames if keep_frames else None)


class _Rows:
    """An array filled one row at a time, preallocated for `n` rows (at most ROWS_AHEAD) and doubled when more come."""

    def __init__(self, n: int, shape: tuple, dtype=np.float64):
        self.data, self.n = np.empty((min(max(n, 16), ROWS_AHEAD), *shape), dtype), 0

    def append(self, row) -> None:
        if self.n == len(self.data):
            self.data = np.concatenate([self.data, np.empty_like(self.data)])
        self.data[self.n] = row
        self.n += 1

    def array(self) -> np.ndarray:
        """The rows filled so far (a copy, so the spare capacity is freed)."""
        return self.data[: self.n].copy()


def _fill(lm: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Landmarks of frames without a face taken from the nearest frame with one."""
    if found.all():
        return lm
    idx = np.flatnonzero(found)
    nearest = idx[np.abs(np.arange(len(lm))[:, None] - idx[None, :]).argmin(1)]
    return lm[nearest]


def clear_cache() -> None:
    _CACHE.clear()


class FrameReader:
    """Frames of a video by index in any order, holding at most `budget` bytes of them.

    Indices are those of media.iter_frames (decode order from the start), matched
    after a seek by presentation time against `times` from the tracking pass. A
    backward step outside the window seeks to the keyframe before and decodes a
    window's worth ending at the frame asked for, so playing backwards costs one
    seek per window. Streams whose times do not identify frames are decoded from
    the start instead (correct, slower).
    """

    def __init__(self, path: str | os.PathLike, times: np.ndarray, budget: int | None = None):
        self.path, self.times = Path(path), np.asarray(times, float)
        self.budget = READER_BUDGET if budget is None else budget
        self.seekable = len(self.times) < 2 or bool(np.all(np.diff(self.times) > 0))
        self.window: OrderedDict[int, np.ndarray] = OrderedDict()
        self.capacity = 2
        self.frames = None  # iterator of (index, frame) from the current decoding position
        self.next = 0  # index the iterator yields next
        self.container = None
        self.seeks = 0  # count of (re)starts of decoding, for tests and logs

    def __enter__(self) -> "FrameReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        self.window.clear()  # its frames (up to `budget`) are free again before the writer signs the output

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None
        self.frames = None

    def __getitem__(self, j: int) -> np.ndarray:
        j = int(j)
        if j in self.window:
            return self.window[j]
        if self.frames is None or not self.next <= j <= self.next + SEEK_AHEAD:
            self._restart(max(0, j - self.capacity + 1) if j < self.next else j)
        for i, image in self.frames:
            self._keep(i, image)
            if i == j:
                return image
        raise IndexError(f"{self.path}: no frame {j}")

    def _keep(self, i: int, image: np.ndarray) -> None:
        self.capacity = max(2, self.budget // max(image.nbytes, 1))
        self.window[i] = image
        while len(self.window) > self.capacity:
            self.window.popitem(last=False)

    def _restart(self, start: int) -> None:
        """Decode from frame `start` on: seek by its time when frames can be told apart by time."""
        self.close()
        self.seeks += 1
        self.container = av.open(str(self.path))
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"
        seek = start > 0 and self.seekable
        if seek:
            self.container.seek(int(self.times[start] / stream.time_base), stream=stream, backward=True)
        self.frames = self._decode(stream, start, seek)

    def _decode(self, stream, start: int, seek: bool) -> Iterator[tuple[int, np.ndarray]]:
        """(index, image) of the frames from `start` on; indices counted from 0, or found by time after a seek."""
        count = 0
        try:
            for frame in self.container.decode(stream):
                i = self._index_of(frame.time) if seek else count
                if i is None or (count == 0 and i > start):  # cannot place it, or landed late
                    break
                count += 1
                self.next = i + 1
                if i >= start:
                    yield i, media.upright(frame)
            else:
                return
        except av.error.FFmpegError as e:  # the tracking pass stopped at the same place, with a warning
            log.debug("%s: decoding stopped (%s)", self.path, e)
            return
        log.info("%s: seeking does not find frame %d; decoding from the start", self.path, start)
        self.seekable = False
        self._restart(start)
        yield from self.frames

    def _index_of(self, t: float | None) -> int | None:
        if t is None:
            return None
        k = int(np.searchsorted(self.times, t - 1e-6))
        return k if k < len(self.times) and abs(self.times[k] - t) < 1e-6 else None
