"""Stage: videos or photos -> face set (`doppel extract INPUT... -o FACESET`).

Reads as named steps: check the inputs, embed the reference face, open (or
start) the face set, then per frame find faces, align, score and file each one
under faces/ or dropped/; finally apply the set-level variety filters, store
the person's mean embedding in meta["identity"] and save atomically.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import interrupt, media
from .errors import DoppelError
from .faces import align, finder, quality
from .faces.quality import QualityConfig
from .faceset import FaceRecord, FaceSet
# the command line (extract_cli) and set-level filtering (faceset_filter) live apart; re-exported here
from .extract_cli import (FLAG_NAMES, add_arguments, add_quality_arguments,  # noqa: F401
                          quality_config, stored_quality)
from .faceset_filter import IDENTITY_FACES, apply_filters, identity, refilter, spread  # noqa: F401
from .faceset_filter import rounded as _rounded

log = logging.getLogger(__name__)

PHOTO_DETECT_SIZE = 1024  # photos are detected at up to this size (videos at DetectConfig.detect_size, for speed)
PREFETCH = 8  # frames decoded ahead on a background thread
SAMPLE_SECONDS = 2.0  # without a reference, embed at most one face per this many seconds of video (and ~16 a video)


@dataclass(frozen=True)
class ExtractConfig:
    size: int = align.DEFAULT_SIZE  # side of the aligned crop in pixels
    coverage: float = align.DEFAULT_COVERAGE  # fraction of the crop the template face spans
    detect: finder.DetectConfig = finder.DetectConfig()  # detector, downscale and re-detection interval
    every: int = 1  # read every Nth frame of a video
    quality: QualityConfig = QualityConfig()  # thresholds of the filters
    reference: str | None = None  # photo of the one person to keep (None: everyone); the CLI then sets max_people=0


@dataclass
class _Counts:
    """What one run counts as it goes (the frozen Summary is made from it at the end)."""
    frames: int = 0
    found: int = 0
    frames_kept: int = 0
    frames_no_face: int = 0
    dropped: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class Summary:
    """What `extract` did; `to_json()` is what the CLI's --json and the web app show."""
    frames: int = 0  # frames read
    found: int = 0  # faces found
    kept: int = 0  # faces kept in the whole set after the set-level filters
    frames_kept: int = 0  # frames of this run with at least one face passing the per-face filters
    frames_no_face: int = 0  # frames of this run in which the face finder found no face at all
    dropped: dict = field(default_factory=dict)  # drops by reason: per-face ones of this run, set-level of the whole set
    seconds: float = 0.0  # wall time of the run

    def table(self) -> str:
        """The closing summary as aligned text rows."""
        rows = [("frames read", self.frames), ("frames with no face found", self.frames_no_face),
                ("faces found", self.found),
                ("frames with a kept face", self.frames_kept), ("faces kept (whole set)", self.kept)]
        rows += [(f"dropped: {r}", n) for r, n in sorted(self.dropped.items())]
        rows.append(("frames/s", f"{self.frames / max(self.seconds, 1e-9):.1f}"))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v:>8}" for k, v in rows)

    def to_json(self) -> dict:
        return {**asdict(self), "dropped": dict(sorted(self.dropped.items())), "seconds": round(self.seconds, 3)}


# --- checking inputs --------------------------------------------------------

def check_inputs(inputs: list[str | os.PathLike]) -> list[media.VideoInfo]:
    """Probe every input before anything is written; DoppelError names the first bad one."""
    if not inputs:
        raise DoppelError("no input given")
    infos = []
    for path in inputs:
        info = media.probe(path)
        if not info.is_image and info.frame_count == 0 and info.duration == 0:
            raise DoppelError(f"video has no frames: {path}")
        infos.append(info)
    return infos


def _photo_faces(image: np.ndarray, cfg: finder.DetectConfig) -> list[finder.Face]:
    """Faces of a still photo: the face finder with a larger fast pass (and, when its deep pass is off,
    a retry with pyramid upsampling)."""
    cfg = replace(cfg, detect_size=max(cfg.detect_size, PHOTO_DETECT_SIZE))
    faces = finder.find_faces(image, cfg)
    if not faces and cfg.min_face == 0:
        faces = finder.find_faces(image, replace(cfg, upsample=cfg.upsample + 1))
    return faces


def reference_embedding(path: str | os.PathLike, cfg: finder.DetectConfig) -> np.ndarray:
    """128-D embedding of the largest face in a reference photo."""
    image = media.read_image(path)
    faces = _photo_faces(image, cfg)
    if not faces:
        raise DoppelError(f"no face found in the reference photo: {path}")
    if len(faces) > 1:
        log.warning("reference photo %s shows %d faces; using the largest", path, len(faces))
    return finder.embedding(image, faces[0].landmarks)


def _check_same_person(fs: FaceSet, reference: np.ndarray | None, max_distance: float) -> None:
    stored = fs.meta.get("identity")
    if reference is None or stored is None:
        return
    distance = float(np.linalg.norm(np.asarray(stored) - reference))
    if distance > max_distance:
        raise DoppelError(f"{fs.root} holds a face set of a different person than the reference "
                          f"(embedding distance {distance:.2f} > {max_distance})")


def _remembered_reference(fs: FaceSet, reference: np.ndarray | None) -> np.ndarray | None:
    """The reference of this run, stored in the set; a run without one reuses the set's."""
    if reference is not None:
        fs.meta["reference"] = _rounded(reference)
        return reference
    if fs.meta.get("reference") is not None:
        log.info("%s was made with a reference photo: keeping only that person", fs.root)
        return np.asarray(fs.meta["reference"], np.float32)
    return None


# --- per frame ----------------------------------------------------------------

def score_face(image: np.ndarray, face: finder.Face, crop: np.ndarray, matrix: np.ndarray,
               people: int) -> dict[str, float]:
    """Every per-face quality score of one face; image (H, W, 3) uint8, crop (S, S, 3) uint8."""
    shape = quality.aligned_shape(face.landmarks, matrix, crop.shape[0])
    brightness, contrast = quality.brightness_contrast(crop, shape)
    yaw, pitch = quality.head_pose(shape)
    scores = {"people": people, "size": quality.face_size(face.landmarks),
              "sharpness": quality.sharpness(crop, shape), "brightness": brightness, "contrast": contrast,
              "tint": quality.tint(crop, shape), "yaw": yaw, "pitch": pitch,
              "fit": quality.fit_error(face.landmarks, finder.landmarks5(image, face.box))}
    return {k: round(float(v), 4) for k, v in scores.items()}


class _Run:
    """State of one extract run: the face set, the counts and the per-track identities."""

    def __init__(self, fs: FaceSet, cfg: ExtractConfig, reference: np.ndarray | None):
        self.fs, self.cfg, self.reference = fs, cfg, reference
        self.counts = _Counts()
        self.track_embeddings: list[np.ndarray] = []
        self.next_sample = 0.0
        self.sample_every = SAMPLE_SECONDS

    def video(self, info: media.VideoInfo) -> None:
        """Track faces through one video (or through the photos of a folder, one by one)."""
        tracker = finder.FaceTracker(self.cfg.detect)
        self.track_embeddings, self.next_sample = [], 0.0
        self.sample_every = max(SAMPLE_SECONDS, info.duration / IDENTITY_FACES)
        total = -(-info.frame_count // self.cfg.every) if info.frame_count else None
        frames = media.prefetch(media.iter_frames(info.path, self.cfg.every), PREFETCH)
        try:
            for frame in tqdm(frames, total=total, unit="frame", desc=Path(info.path).name, leave=False,
                              disable=None):
                interrupt.check()
                faces = _photo_faces(frame.image, self.cfg.detect) if info.is_image else tracker(frame.image)
                self.frame(info, frame, faces)
        finally:
            frames.close()  # stops the decoding thread now, also on Ctrl-C

    def frame(self, info: media.VideoInfo, frame: media.Frame, faces: list[finder.Face]) -> None:
        """Align, score and file every face of one frame."""
        self.counts.frames += 1
        self.counts.found += len(faces)
        self.counts.frames_no_face += not faces
        distances, fresh = self._identities(frame.image, faces)
        any_kept = False
        for i, face in enumerate(faces):
            record, crop = self._record(info, frame, face, len(faces), distances[i])
            if fresh[i] is not None:
                record.embedding = fresh[i]
            elif not record.reason and frame.time >= self.next_sample:
                record.embedding = _rounded(finder.embedding(frame.image, face.landmarks))
                self.next_sample = frame.time + self.sample_every
            self.fs.add(record, crop)
            any_kept |= not record.reason
            if record.reason:
                self.counts.dropped[record.reason] += 1
        self.counts.frames_kept += any_kept

    def _record(self, info, frame, face, people, distance) -> tuple[FaceRecord, np.ndarray]:
        matrix = align.align_matrix(face.landmarks, self.fs.size, self.fs.coverage)
        crop = align.crop(frame.image, matrix, self.fs.size)
        scores = score_face(frame.image, face, crop, matrix, people)
        if distance is not None:
            scores["identity"] = round(distance, 4)
        record = FaceRecord(source=str(info.path), frame_index=frame.index, timestamp=round(frame.time, 4),
                            box=_rounded(face.box), landmarks=np.round(face.landmarks, 2).tolist(),
                            matrix=np.round(matrix, 6).tolist(), scores=scores)
        record.reason = quality.drop_reason(scores, self.cfg.quality)
        return record, crop

    def _identities(self, image, faces) -> tuple[list[float | None], list[list[float] | None]]:
        """Distance of each face to the reference; embedded on detection frames, reused while tracked."""
        if self.reference is None:
            return [None] * len(faces), [None] * len(faces)
        fresh: list[list[float] | None] = [None] * len(faces)
        if any(not f.tracked for f in faces) or len(faces) != len(self.track_embeddings):
            self.track_embeddings = [finder.embedding(image, f.landmarks) for f in faces]
            fresh = [_rounded(e) for e in self.track_embeddings]
        dist = [float(np.linalg.norm(e - self.reference)) for e in self.track_embeddings]
        return dist, fresh




# --- the stage ----------------------------------------------------------------

def extract(inputs: list[str | os.PathLike], output: str | os.PathLike,
            cfg: ExtractConfig = ExtractConfig()) -> Summary:
    """Detect, align and filter the faces of `inputs` into the face set `output` (new or extended).

    Raises DoppelError for bad input before anything is written; a run that
    fails leaves no new face set behind and an extended one as it was. Ctrl-C
    saves the faces filed so far (set-level filters not applied) and re-raises.
    """
    start = time.perf_counter()
    infos = check_inputs(inputs)
    reference = reference_embedding(cfg.reference, cfg.detect) if cfg.reference else None
    root = Path(output)
    existed = root.exists()
    fs = FaceSet.create(root, cfg.size, cfg.coverage)
    _check_same_person(fs, reference, cfg.quality.max_identity)
    reference = _remembered_reference(fs, reference)
    before = (len(fs.faces), len(fs.dropped))
    fs.meta["detect"] = cfg.detect.record()  # the face finder of the latest run
    run = _Run(fs, cfg, reference)
    try:
        for info in infos:
            run.video(info)
        if run.counts.found == 0:
            raise DoppelError(f"no face found in {', '.join(Path(i.path).name for i in infos)} "
                              f"({run.counts.frames} frames read; try a smaller --min-face or --detector cnn)")
    except KeyboardInterrupt:
        _interrupted(fs, cfg, before, existed)
        raise
    except BaseException:
        _discard(fs, before, existed)
        raise
    dropped = _finish(fs, cfg, run.counts)
    c = run.counts
    return Summary(c.frames, c.found, len(fs.faces), c.frames_kept, c.frames_no_face, dropped,
                   time.perf_counter() - start)


def _finish(fs: FaceSet, cfg: ExtractConfig, counts: _Counts) -> dict:
    """Set-level filters over the whole set, meta["identity"] and the final save; returns the drops by reason."""
    set_counts = apply_filters(fs, cfg.quality)
    dropped = dict(counts.dropped)
    for reason in quality.SET_REASONS:
        dropped[reason] = set_counts.get(reason, 0)
    if not fs.faces:
        log.warning("no face kept in %s; see `doppel faceset sheet` and loosen thresholds with "
                    "`doppel faceset refilter`", fs.root)
    return dropped


def _interrupted(fs: FaceSet, cfg: ExtractConfig, before: tuple[int, int], existed: bool) -> None:
    if not _added(fs, before):
        _discard(fs, before, existed)
        return
    fs.meta["quality"] = asdict(cfg.quality)
    fs.save()
    log.warning("interrupted: saved %d faces to %s; near-duplicate and --max-faces filters not applied "
                "(run `doppel faceset refilter`)", len(fs.faces), fs.root)


def _added(fs: FaceSet, before: tuple[int, int]) -> list[FaceRecord]:
    """Records this run appended (FaceSet.add appends to faces or dropped)."""
    return fs.faces[before[0]:] + fs.dropped[before[1]:]


def _discard(fs: FaceSet, before: tuple[int, int], existed: bool) -> None:
    """Undo this run's writes: remove a folder it created, or the crops it added to an existing set."""
    if not existed:
        shutil.rmtree(fs.root, ignore_errors=True)
        return
    for record in _added(fs, before):
        (fs.root / record.file).unlink(missing_ok=True)
