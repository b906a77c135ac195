"""Stage `swap`: redraw person A's face as person B in a video or photo.

Two passes over the input:
1. landmarks: faces are tracked frame by frame (faces.finder.FaceTracker) and
   linked into tracks; each track's dlib embedding is computed once (again at
   its 10th and 40th frame while it does not match) and
   compared with the model's mean face of A, so only A is swapped.
2. render: per target track the landmarks are cleaned (jumps dropped, short
   gaps interpolated) and smoothed over time; then frames are decoded again,
   aligned crops go through the model in batches, and each new face is
   colour-matched (statistics smoothed over time), masked and blended back
   inside the face's own region of the frame.
The output keeps the input's size, frame count, rate and audio, and carries
doppel's synthetic label.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from tqdm import tqdm

from .. import filetypes, interrupt, media, provenance
from ..errors import DoppelError
from ..faces import align, blend, finder
from ..faces import mask as masks
from ..torchutil import torch_threads
from .convert_cli import add_arguments, run, settings_from_args  # noqa: F401 (re-exported: the CLI is light)
from .convert_config import SwapSettings  # noqa: F401 (re-exported)
from .model import PEOPLE, ModelFacts, SwapModel, load_model

log = logging.getLogger(__name__)

KIND = "face-swap"
TRACK_IOU = 0.3  # a face continues a track when its box overlaps the track's last box this much
CHECK_AT = (1, 10, 40)  # a track's frame counts at which its identity is (re)checked until it matches A
PREVIEW_HEIGHT = 240  # pixels per preview tile


@dataclass(frozen=True)
class SwapSummary:
    input: str
    output: str
    frames: int  # frames written
    swapped: int  # frames with at least one face redrawn
    interpolated: int  # swapped frames whose face geometry was interpolated from neighbours
    passed_through: int  # frames written untouched (no face of A, or a gap too long to fill)
    rejected: int  # frames where A's landmarks were found but dropped as a jump
    faces_skipped: int  # faces of other people left alone (face x frame count)
    tracks: int  # face tracks of A that were swapped
    identity: str  # how A was picked: "embedding" or "largest face"
    seconds: float  # wall time of both passes
    fps: float  # frames / seconds
    frames_no_face: int = 0  # frames in which the face finder found no face at all

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Track:
    id: int
    frames: dict[int, np.ndarray] = field(default_factory=dict)  # frame index -> (68, 2) landmarks
    boxes: dict[int, np.ndarray] = field(default_factory=dict)  # frame index -> (4,) box
    distance: float = float("inf")  # smallest embedding distance to A over the frames checked
    last: int = -1  # newest frame index added (pass 1 links new faces to it every frame: no max() scan)

    def add(self, index: int, landmarks: np.ndarray) -> None:
        """Append the face of frame `index` (frames come in order)."""
        self.frames[index] = landmarks
        self.boxes[index] = finder.landmarks_box(landmarks)
        self.last = index


@dataclass(frozen=True)
class Placement:
    track: int  # track id (colour statistics are smoothed per track)
    landmarks: np.ndarray  # (68, 2) smoothed frame-pixel landmarks
    interpolated: bool  # geometry filled in from neighbouring frames


# --- model --------------------------------------------------------------------

def open_model(path: str | os.PathLike, to: str) -> tuple[SwapModel, ModelFacts]:
    """Load a swap model (its header read once) and check it is usable for conversion; DoppelError if not."""
    if to not in PEOPLE:
        raise DoppelError(f"--to must be one of {', '.join(PEOPLE)}, got {to!r}")
    try:
        model, header = load_model(path)
    except (RuntimeError, ValueError, KeyError, OSError) as e:
        raise DoppelError(f"model weights do not match its config: {path} ({str(e).splitlines()[0][:120]})") from None
    facts = ModelFacts.of(header, path)
    size = header.config.size
    with torch.no_grad():
        rgb, _ = model.convert(torch.zeros(1, 3, size, size), to)
    if rgb.shape != (1, 3, size, size):
        raise DoppelError(f"model crop size mismatch: draws {tuple(rgb.shape[2:])} for {size} inputs")
    return model, facts


# --- pass 1: landmarks and tracks ---------------------------------------------

class FrameSource:
    """The input's frames for both passes: kept in memory from the first pass when they fit
    in `budget` bytes (saves the second decode, ~6 ms a 720p frame), else decoded again."""

    def __init__(self, path: str, limit: int | None, budget: int):
        self.path, self.limit, self.budget = path, limit, budget
        self.cache: list[media.Frame] | None = None  # set once a whole pass fitted in the budget
        self.passes = 0

    def _decode(self) -> Iterator[media.Frame]:
        for frame in media.iter_frames(self.path):
            if self.limit is not None and frame.index >= self.limit:
                return
            yield frame

    def __iter__(self) -> Iterator[media.Frame]:
        if self.cache is not None:
            yield from self.cache
            return
        self.passes += 1
        keep, cache, size = self.passes == 1, [], 0
        for frame in self._decode():
            if keep:
                size += frame.image.nbytes
                keep = size <= self.budget
                if keep:
                    cache.append(frame)
                else:
                    cache = []  # over budget: let go of what was kept
            yield frame
        if keep:
            self.cache = cache


def _link(faces: list[finder.Face], tracks: list[Track], index: int, max_gap: int) -> list[tuple[finder.Face, Track | None]]:
    """Pair each face with the live track whose last box it overlaps most (greedy), or None."""
    live = [t for t in tracks if index - t.last <= max_gap + 1]
    pairs, used = [], set()
    for face in faces:
        box = finder.landmarks_box(face.landmarks)
        scored = [(finder.iou(box, t.boxes[t.last]), t) for t in live if t.id not in used]
        best = max(scored, key=lambda s: s[0], default=(0.0, None))
        track = best[1] if best[0] >= TRACK_IOU else None
        if track is not None:
            used.add(track.id)
        pairs.append((face, track))
    return pairs


def check_identity(track: Track, image: np.ndarray, landmarks: np.ndarray, identity: np.ndarray | None,
                   threshold: float) -> None:
    """Embed the face at the track's CHECK_AT-th frames (~120 ms each) until it is near A.

    A second look later in the track saves a track that began on a blurred or
    turned face; a track that matches is never embedded again.
    """
    if identity is None or track.distance <= threshold or len(track.frames) not in CHECK_AT:
        return
    d = float(np.linalg.norm(finder.embedding(image, landmarks) - identity))
    track.distance = min(track.distance, d)


def track_faces(frames: Iterable[media.Frame], settings: SwapSettings,
                identity: np.ndarray | None) -> tuple[list[Track], int]:
    """Pass 1: every face's landmarks, linked into tracks and checked against A; (tracks, frame count)."""
    tracker = finder.FaceTracker(settings.detect)
    tracks: list[Track] = []
    count = 0
    for frame in tqdm(frames, desc="landmarks", unit="frame", leave=False):
        count += 1
        for face, track in _link(tracker(frame.image), tracks, frame.index, settings.max_gap):
            if track is None:
                track = Track(len(tracks))
                tracks.append(track)
            track.add(frame.index, face.landmarks)
            check_identity(track, frame.image, face.landmarks, identity, settings.match_distance)
    return tracks, count


def select_targets(tracks: list[Track], identity: np.ndarray | None, max_distance: float) -> tuple[list[Track], int]:
    """Tracks of A: near A's mean embedding, or (no identity) the largest face of each frame.

    Returns (target tracks, number of other faces left alone).
    """
    if identity is not None:
        near = [t for t in tracks if t.distance <= max_distance]
        skipped = sum(len(t.frames) for t in tracks if t.distance > max_distance)
        return near, skipped
    largest: dict[int, tuple[float, Track]] = {}
    for t in tracks:
        for i, b in t.boxes.items():
            area = (b[2] - b[0]) * (b[3] - b[1])
            if i not in largest or area > largest[i][0]:
                largest[i] = (area, t)
    kept = {t.id: Track(t.id) for t in tracks}
    for i, (_, t) in largest.items():
        kept[t.id].frames[i], kept[t.id].boxes[i] = t.frames[i], t.boxes[i]
    skipped = sum(len(t.frames) for t in tracks) - len(largest)
    return [t for t in kept.values() if t.frames], skipped


# --- geometry over time -------------------------------------------------------

def find_jumps(frames: dict[int, np.ndarray], threshold: float) -> set[int]:
    """Frames whose landmarks sit far from the midpoint of both neighbours (a local maximum).

    The error is the mean point distance over the face size; a steady motion
    keeps the midpoint close, a one-frame glitch does not.
    """
    idx = sorted(frames)
    err = {}
    for i in idx:
        if i - 1 in frames and i + 1 in frames:
            mid = (frames[i - 1] + frames[i + 1]) / 2
            err[i] = np.linalg.norm(frames[i] - mid, axis=1).mean() / masks.face_size(frames[i])
    return {i for i, e in err.items() if e > threshold and e >= err.get(i - 1, 0) and e >= err.get(i + 1, 0)}


def fill_gaps(frames: dict[int, np.ndarray], max_gap: int) -> tuple[dict[int, np.ndarray], set[int]]:
    """Linear interpolation over runs of <= max_gap missing frames between good ones."""
    idx = sorted(frames)
    out, filled = dict(frames), set()
    for a, b in zip(idx, idx[1:]):
        if 1 < b - a <= max_gap + 1:
            for i in range(a + 1, b):
                w = (i - a) / (b - a)
                out[i] = (1 - w) * frames[a] + w * frames[b]
                filled.add(i)
    return out, filled


def smooth_track(frames: dict[int, np.ndarray], sigma: float) -> dict[int, np.ndarray]:
    """Gaussian smoothing of landmarks along each run of consecutive frames."""
    if sigma <= 0 or len(frames) < 2:
        return frames
    idx = sorted(frames)
    out, start = {}, 0
    for k in range(1, len(idx) + 1):
        if k == len(idx) or idx[k] != idx[k - 1] + 1:
            run = idx[start:k]
            pts = gaussian_filter1d(np.stack([frames[i] for i in run]), sigma, axis=0, mode="nearest")
            out.update(zip(run, pts))
            start = k
    return out


def plan(targets: list[Track], settings: SwapSettings) -> tuple[dict[int, list[Placement]], int]:
    """Frame index -> faces to draw; also the number of frames rejected as jumps and not refilled."""
    placements: dict[int, list[Placement]] = {}
    rejected = set()
    for t in targets:
        bad = find_jumps(t.frames, settings.jump)
        good = {i: lm for i, lm in t.frames.items() if i not in bad}
        full, filled = fill_gaps(good, settings.max_gap)
        rejected |= bad - set(full)
        for i, lm in smooth_track(full, settings.smooth).items():
            placements.setdefault(i, []).append(Placement(t.id, lm, i in filled))
    return placements, len(rejected - set(placements))


# --- pass 2: render -----------------------------------------------------------

def face_region(matrix: np.ndarray, box: tuple[float, float, float, float],
                shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """Frame box (x0, y0, x1, y1) covering the crop-pixel box `box` plus 2 pixels, clipped to the
    frame; None if empty."""
    x0, y0, x1, y1 = align.frame_box(matrix, box, shape, margin=2)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _warp_back(image: np.ndarray, matrix: np.ndarray, shape: tuple[int, int], border: int) -> np.ndarray:
    """Crop -> frame region warp; bilinear (bicubic costs ~3x more at 720p for no visible gain here)."""
    return cv2.warpAffine(image, matrix, (shape[1], shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=border)


class Renderer:
    """Draws model outputs into frames; holds the per-track colour statistics (EMA)."""

    def __init__(self, model: SwapModel, coverage: float, settings: SwapSettings):
        self.model = model
        self.size = model.cfg.size
        self.coverage = coverage
        self.settings = settings
        self.transfer = blend.COLOR[settings.color]
        self.stats: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def run_model(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Faces (N, S, S, 3) uint8 -> new faces (N, S, S, 3) float32 [0, 1] and masks (N, S, S) or None."""
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255)
        rgb, mask = self.model.convert(x, self.settings.to)
        rgb = rgb.permute(0, 2, 3, 1).contiguous().numpy()
        return rgb, (mask[:, 0].numpy() if mask is not None else None)

    def recolour(self, track: int, face: np.ndarray, crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Colour-match the new face to the original crop inside the mask, statistics smoothed per track."""
        t, w = self.transfer, self.settings.color_smooth
        src, dst = t.stats(face, mask), t.stats(crop.astype(np.float32) / 255, mask)
        prev = self.stats.get(track, (None, None))
        src, dst = blend.ema(prev[0], src, w), blend.ema(prev[1], dst, w)
        self.stats[track] = (src, dst)
        return t.apply(face, src, dst)

    def draw(self, image: np.ndarray, place: Placement, matrix: np.ndarray, crop: np.ndarray,
             face: np.ndarray, learned: np.ndarray | None) -> None:
        """Blend one new face (S, S, 3) float into `image` (H, W, 3) uint8, in place."""
        k = int(np.clip(round(1 / align.matrix_scale(matrix)), 1, 4))  # mask drawn near frame resolution
        big = masks.make_mask(align.transform_points(place.landmarks, matrix) * k, self.size * k,
                              self.settings.mask, learned)
        bx, by, bw, bh = cv2.boundingRect((big > 0).astype(np.uint8))
        region = face_region(matrix, (bx / k, by / k, (bx + bw) / k, (by + bh) / k), image.shape) if bw else None
        if region is None:
            return
        x0, y0, x1, y1 = region  # only where the mask reaches: warps and blend stay small
        small = cv2.resize(big, (self.size, self.size), interpolation=cv2.INTER_AREA) if k > 1 else big
        face = self.recolour(place.track, face, crop, small)
        roi_shape = (y1 - y0, x1 - x0)
        m = np.clip(_warp_back(big, align.shift(matrix, x0, y0, k), roi_shape, cv2.BORDER_CONSTANT), 0, 1)
        new = np.clip(_warp_back(face, align.shift(matrix, x0, y0), roi_shape, cv2.BORDER_REPLICATE), 0, 1)
        new = blend.sharpen(new, self.settings.sharpen, sigma=max(1.0, 0.5 * k))
        new = (new * 255 + 0.5).astype(np.uint8)
        roi = image[y0:y1, x0:x1]
        if self.settings.seamless:
            new = blend.seamless(new, roi, m)
        image[y0:y1, x0:x1] = blend.composite(roi, new, m)

    def render(self, frames: list[media.Frame], placements: dict[int, list[Placement]]) -> list[np.ndarray]:
        """Swap every planned face in a batch of frames; returns the new images."""
        jobs, crops = [], []
        for f in frames:
            for p in placements.get(f.index, []):
                m = align.align_matrix(p.landmarks, self.size, self.coverage)
                jobs.append((f.index, p, m))
                crops.append(align.crop(f.image, m, self.size))
        out = {f.index: f.image.copy() for f in frames}
        if jobs:
            rgb, learned = self.run_model(crops)
            for j, (i, p, m) in enumerate(jobs):
                self.draw(out[i], p, m, crops[j], rgb[j], None if learned is None else learned[j])
        return [out[f.index] for f in frames]


def _batches(frames: Iterator[media.Frame], n: int) -> Iterator[list[media.Frame]]:
    batch = []
    for f in frames:
        batch.append(f)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


# --- preview and checks -------------------------------------------------------

def preview_strip(pairs: list[tuple[np.ndarray, np.ndarray, int]]) -> np.ndarray:
    """Rows of (input | swapped) tiles, PREVIEW_HEIGHT tall, captioned; (H, W, 3) uint8."""
    rows = []
    for before, after, index in pairs:
        h, w = before.shape[:2]
        size = (max(1, round(w * PREVIEW_HEIGHT / h)), PREVIEW_HEIGHT)
        tiles = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in (before, after)]
        for tile, text in zip(tiles, (f"input #{index}", f"swapped #{index} (synthetic)")):
            cv2.putText(tile, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])


def _writable(path: Path, exts: set[str] | frozenset[str], what: str) -> None:
    if path.suffix.lower() not in exts:
        raise DoppelError(f"{what} must end in {'/'.join(sorted(exts))}: {path}")
    if path.is_dir():
        raise DoppelError(f"{what} is a folder: {path}")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    try:  # really create a file there: permission bits say nothing for root, or on /proc
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise DoppelError(f"{what} is not writable: {path} ({e.strerror or e.__class__.__name__})") from None


def check_paths(input: Path, output: Path, preview: str | None) -> bool:
    """Validate paths before any work; returns True when the input is a photo."""
    if not input.exists():
        raise DoppelError(f"no such file: {input}")
    if input.is_dir():
        raise DoppelError(f"give a video or a photo, not a folder: {input}")
    photo = media.is_image_path(input)
    _writable(output, filetypes.OUTPUT_IMAGE_EXTS if photo else filetypes.OUTPUT_VIDEO_EXTS, "output")
    if output.resolve() == input.resolve():
        raise DoppelError(f"output would overwrite the input: {output}")
    if preview:
        _writable(Path(preview), {".png"}, "preview")
    return photo


# --- the stage ----------------------------------------------------------------

def _prepare(input: Path, model_path: str | os.PathLike, output: Path,
             settings: SwapSettings) -> tuple[bool, SwapModel, ModelFacts, np.ndarray | None]:
    """Every check that can fail before a frame is read: (is photo, model, its facts, A's identity)."""
    photo = check_paths(input, output, settings.preview)
    if settings.color not in blend.COLOR:
        raise DoppelError(f"unknown colour transfer {settings.color!r}; choose from {', '.join(blend.COLOR)}")
    model, facts = open_model(model_path, settings.to)
    if settings.mask.shape == "learned" and not model.cfg.mask:
        raise DoppelError("--mask learned needs a model that draws a mask (train one with --gan); this one draws none")
    identity = None if facts.identity_a is None else np.asarray(facts.identity_a, np.float32)
    if identity is None:
        log.warning("model has no identity_a: swapping the largest face in each frame")
    return photo, model, facts, identity


def swap(input: str | os.PathLike, model_path: str | os.PathLike, output: str | os.PathLike,
         settings: SwapSettings = SwapSettings()) -> SwapSummary:
    """Draw B's face over A's in a video or photo; writes `output` (labelled) and returns a summary."""
    start = time.perf_counter()
    input, output = Path(input), Path(output)
    photo, model, facts, identity = _prepare(input, model_path, output, settings)
    source = FrameSource(str(input), settings.max_frames, settings.cache_mb << 20)
    tracks, count = track_faces(source, settings, identity)
    targets, skipped = select_targets(tracks, identity, settings.match_distance)
    placements, rejected = plan(targets, settings)
    if not placements:
        raise DoppelError(f"no face of A found in {input} ({len(tracks)} face tracks, none near A)")
    renderer = Renderer(model, facts.coverage, settings)
    details = dict(model=Path(model_path).name, variant="gan" if model.cfg.mask else "plain", to=settings.to,
                   source=input.name, mask=settings.mask.shape, color=settings.color)
    shown = _preview_picks(sorted(placements), settings.preview_frames) if settings.preview else set()
    try:
        with torch_threads(settings.threads):
            fps = media.probe(input).fps
            pairs = _write(source, input, output, photo, fps, count, renderer, placements, shown, settings, details)
        if settings.preview:
            provenance.write_labeled_image(settings.preview, preview_strip(pairs), KIND, **details, preview=True)
    except OSError as e:  # disk full, folder gone: the atomic writers left nothing behind
        raise DoppelError(f"could not write {e.filename or output}: {e.strerror or e}") from None
    secs = time.perf_counter() - start
    swapped = len(placements)
    return SwapSummary(str(input), str(output), count, swapped,
                       sum(1 for ps in placements.values() if any(p.interpolated for p in ps)),
                       count - swapped, rejected, skipped, len({p.track for ps in placements.values() for p in ps}),
                       "embedding" if identity is not None else "largest face", round(secs, 2),
                       round(count / secs, 2), count - len({i for t in tracks for i in t.frames}))


def _preview_picks(indices: list[int], n: int) -> set[int]:
    if not indices:
        return set()
    picks = np.linspace(0, len(indices) - 1, min(n, len(indices))).round().astype(int)
    return {indices[k] for k in picks}


def _write(frames: Iterable[media.Frame], input: Path, output: Path, photo: bool, fps: float, total: int,
           renderer: Renderer, placements: dict[int, list[Placement]], shown: set[int], settings: SwapSettings,
           details: dict) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Pass 2: render and write `total` frames (as many as pass 1 read); returns (input, output, index)
    of the preview frames."""
    frames = iter(frames)
    bar = tqdm(desc="swap", unit="frame", total=total)
    pairs = []
    if photo:
        f = next(frames)
        out = renderer.render([f], placements)[0]
        provenance.write_labeled_image(output, out, KIND, parent=input, **details)
        bar.update(1)
        bar.close()
        return [(f.image, out, 0)] if shown else []
    with provenance.video_writer(output, fps, KIND, details, parent=input, crf=settings.crf,
                                 audio=str(input)) as writer:
        for batch in _batches(frames, settings.batch):
            interrupt.check()
            for f, out in zip(batch, renderer.render(batch, placements)):
                writer.write(out)
                if f.index in shown:
                    pairs.append((f.image, out, f.index))
            bar.update(len(batch))
    bar.close()
    return pairs
