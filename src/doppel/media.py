"""Video, image and audio input/output on PyAV; every write is atomic.

Frames are RGB uint8 arrays of shape (H, W, 3). Audio is float32 mono in [-1, 1].
"""
from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

import av
import cv2
import numpy as np

from .errors import DoppelError
from .filetypes import DEFAULT_CRF, IMAGE_EXTS, VIDEO_EXTS, is_image_path, is_video_path  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

AUDIO_CODEC = "aac"
AUDIO_RATE_OUT = 48000  # AAC output rate when re-encoding
# MP4s are written fragmented (a fragment from each keyframe, ~10 s) with a global sidx index in front:
# players and seeking work as with a plain MP4, and the C2PA SDK hashes a fragmented file fragment by
# fragment, so signing and reading a manifest hold megabytes; a plain MP4 cost about its own size in
# memory to read and twice that to sign (+339 MB for a 172 MB 10-minute output; docs/testing.md)
MOVFLAGS = "frag_keyframe+empty_moov+delay_moov+default_base_moof+global_sidx"


class MediaError(DoppelError):
    """Input that cannot be read as media; the message is one line for the user."""


@dataclass(frozen=True)
class Frame:
    index: int  # 0-based position in the stream
    time: float  # presentation time in seconds
    image: np.ndarray  # (H, W, 3) uint8 RGB


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float  # average frame rate (frames / duration for variable rate)
    frame_count: int  # counted from the stream header, or estimated
    duration: float  # seconds
    has_audio: bool
    audio_rate: int | None
    is_image: bool = False
    rotation: int = 0  # display rotation (degrees counter-clockwise) the frames are turned by to be upright


def _check_exists(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"no such file: {p}")
    return p


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    p = _check_exists(path)
    try:
        return av.open(str(p))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise MediaError(f"not a readable media file: {p} ({e.__class__.__name__})") from None


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size, rate, length and audio presence of a video or image file."""
    p = _check_exists(path)
    if p.is_dir():
        files = image_files(p)
        if not files:
            raise MediaError(f"folder holds no images: {p}")
        h, w = read_image(files[0]).shape[:2]
        return VideoInfo(str(p), w, h, 1.0, len(files), float(len(files)), False, None, True)
    if is_image_path(p):
        h, w = read_image(p).shape[:2]
        return VideoInfo(str(p), w, h, 1.0, 1, 1.0, False, None, True)
    with _open(p) as c:
        if not c.streams.video:
            raise MediaError(f"no video stream in {p}")
        v = c.streams.video[0]
        dur = float(v.duration * v.time_base) if v.duration else (c.duration or 0) / 1e6
        rate = float(v.average_rate) if v.average_rate else 0.0
        n = v.frames or int(round(dur * rate))
        if rate <= 0 and dur > 0 and n > 0:
            rate = n / dur
        a = c.streams.audio[0] if c.streams.audio else None
        rotation = _first_rotation(c, v)
        w, h = v.codec_context.width, v.codec_context.height
        if rotation % 180:
            w, h = h, w
        return VideoInfo(str(p), w, h, rate or 25.0, n, dur, a is not None, a.rate if a else None,
                         rotation=rotation)


def _first_rotation(c: av.container.InputContainer, v) -> int:
    """Display rotation of the stream (from its first frame's display matrix), a multiple of 90."""
    try:
        frame = next(c.decode(v), None)
    except av.error.FFmpegError:
        return 0
    return _quarter(frame.rotation if frame is not None else 0) * 90


def _quarter(rotation: float | None) -> int:
    """Quarter turns (np.rot90's k, counter-clockwise) nearest to a display rotation in degrees."""
    return int(round((rotation or 0) / 90)) % 4


def upright(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB, turned by its display matrix (phone video) to stand upright."""
    image = frame.to_ndarray(format="rgb24")
    k = _quarter(frame.rotation)
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def image_files(folder: str | os.PathLike) -> list[Path]:
    return sorted(f for f in Path(folder).iterdir() if is_image_path(f))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB."""
    p = _check_exists(path)
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise MediaError(f"not a readable image: {p}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def iter_frames(path: str | os.PathLike, step: int = 1) -> Iterator[Frame]:
    """Yield every `step`-th frame of a video, an image, or a folder of images.

    Raises MediaError when the file has no decodable frame at all; a stream that
    breaks part-way ends the iteration with a warning (truncated files).
    """
    p = _check_exists(path)
    if p.is_dir():
        files = image_files(p)
        if not files:
            raise MediaError(f"folder holds no images: {p}")
        for i, f in enumerate(files[::step]):
            yield Frame(i * step, float(i * step), read_image(f))
        return
    if is_image_path(p):
        yield Frame(0, 0.0, read_image(p))
        return
    yielded = 0
    with _open(p) as c:
        if not c.streams.video:
            raise MediaError(f"no video stream in {p}")
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for frame in c.decode(stream):
                if index % step == 0:
                    t = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 25)
                    yield Frame(index, t, upright(frame))
                    yielded += 1
                index += 1
        except av.error.FFmpegError as e:
            if index == 0:
                raise MediaError(f"cannot decode video: {p} ({e})") from None
            log.warning("%s: decoding stopped at frame %d (%s)", p, index, e)
    if yielded == 0:
        raise MediaError(f"video has no frames: {p}")


T = TypeVar("T")


def prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Yield what `items` yields, produced ahead by a background thread (at most `depth` waiting).

    Decoding (PyAV) and OpenCV release the GIL, so on two or more cores the producer's work
    overlaps the consumer's. Errors in the producer are raised here, in order; when the
    consumer stops early the producer stops too and closes `items`.
    """
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(items)
        try:
            for x in it:
                if not put((True, x)):
                    return
            put((False, None))
        except BaseException as e:  # noqa: BLE001 (handed to the consumer)
            put((False, e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="doppel-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            more, x = q.get()
            if more:
                yield x
            elif x is None:
                return
            else:
                raise x
    finally:
        stop.set()
        thread.join(timeout=5)


def read_frames(path: str | os.PathLike, step: int = 1) -> list[Frame]:
    return list(iter_frames(path, step))


def read_audio(path: str | os.PathLike, rate: int = 16000) -> np.ndarray:
    """Decode the first audio stream as float32 mono at `rate` Hz, shape (N,).

    Raises MediaError when there is no audio stream or it decodes to nothing.
    """
    p = _check_exists(path)
    with _open(p) as c:
        if not c.streams.audio:
            raise MediaError(f"no audio stream in {p}")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        try:
            for frame in c.decode(c.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as e:
            if not chunks:
                raise MediaError(f"cannot decode audio: {p} ({e})") from None
            log.warning("%s: audio decoding stopped early (%s)", p, e)
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        raise MediaError(f"audio stream is empty: {p}")
    return np.concatenate(chunks).astype(np.float32)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(final.parent, os.W_OK):
        raise MediaError(f"output folder is not writable: {final.parent}")
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=suffix or final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_image(path: str | os.PathLike, image: np.ndarray, params: list[int] | None = None) -> None:
    """Write (H, W, 3) uint8 RGB atomically; format from the extension."""
    _check_rgb(image)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params or []):
            raise MediaError(f"could not write image: {path}")


def _check_rgb(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")


class VideoWriter:
    """H.264 yuv420p MP4 writer with optional audio, written to a temporary file.

    Use as a context manager; the file appears at `path` only when the block
    exits without an exception. `audio` is a path whose first audio stream is
    re-encoded to AAC, or a (samples float32 mono, rate) tuple; `metadata` goes
    into the container (MP4 keeps standard keys such as comment/description);
    `finalize(tmp)` runs on the finished temporary file just before it is renamed
    (provenance signs it there, so no unsigned output is ever left behind).
    """

    def __init__(self, path: str | os.PathLike, fps: float, crf: int = DEFAULT_CRF,
                 audio: str | os.PathLike | tuple[np.ndarray, int] | None = None,
                 metadata: dict[str, str] | None = None, preset: str = "veryfast",
                 max_duration: float | None = None, finalize=None):
        self.path = Path(path)
        self.fps = fps
        self.crf = crf
        self.audio = audio
        self.metadata = metadata or {}
        self.preset = preset
        self.max_duration = max_duration  # cut audio to the video's length
        self.finalize = finalize
        self.frames_written = 0
        self._ctx = None
        self._container = None
        self._stream = None
        self._audio = None
        self._astream = None

    def __enter__(self) -> "VideoWriter":
        self._ctx = atomic_path(self.path, suffix=".mp4")
        self._tmp = self._ctx.__enter__()
        self._container = av.open(str(self._tmp), "w", format="mp4", options={"movflags": MOVFLAGS})
        for k, v in self.metadata.items():
            self._container.metadata[k] = v
        return self

    def _open_stream(self, w: int, h: int) -> None:
        rate = Fraction(self.fps).limit_denominator(1001)
        s = self._container.add_stream("libx264", rate=rate)
        s.width, s.height = w - w % 2, h - h % 2
        s.pix_fmt = "yuv420p"
        s.options = {"crf": str(self.crf), "preset": self.preset}
        s.thread_type = "AUTO"
        self._stream = s
        self._audio = self._load_audio()
        if self._audio is not None:
            self._astream = self._container.add_stream(AUDIO_CODEC, rate=self._audio[1])
            self._astream.layout = "mono"

    def _load_audio(self) -> tuple[np.ndarray, int] | None:
        if self.audio is None:
            return None
        if isinstance(self.audio, tuple):
            samples, rate = self.audio
            return np.asarray(samples, np.float32).reshape(-1), int(rate)
        try:
            return read_audio(self.audio, AUDIO_RATE_OUT), AUDIO_RATE_OUT
        except MediaError:
            log.info("no audio to copy from %s", self.audio)
            return None

    def write(self, image: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame; odd sizes are cropped by one pixel."""
        _check_rgb(image)
        if self._stream is None:
            self._open_stream(image.shape[1], image.shape[0])
        image = image[: self._stream.height, : self._stream.width]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.frames_written
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def _write_audio(self) -> None:
        if self._audio is None:
            return
        samples, rate = self._audio
        limit = self.max_duration if self.max_duration is not None else self.frames_written / self.fps
        samples = samples[: int(round(limit * rate))]
        if samples.size == 0:
            samples = np.zeros(1024, np.float32)
        s = self._astream
        chunk = 1024
        for start in range(0, samples.size, chunk):
            block = samples[start:start + chunk].reshape(1, -1)
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="flt", layout="mono")
            fr.sample_rate = rate
            fr.pts = start
            for packet in s.encode(fr):
                self._container.mux(packet)
        for packet in s.encode():
            self._container.mux(packet)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                if self._stream is None:
                    raise MediaError(f"no frames were written to {self.path}")
                for packet in self._stream.encode():
                    self._container.mux(packet)
                self._write_audio()
            self._container.close()
            if exc_type is None and self.finalize is not None:
                self.finalize(self._tmp)
        except BaseException as e:
            self._container.close()
            self._ctx.__exit__(type(e), e, e.__traceback__)
            raise
        self._ctx.__exit__(exc_type, exc, tb)
