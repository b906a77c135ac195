"""Face boxes (dlib HOG or MMOD CNN), 68 landmarks, 128-D embeddings, tracking.

All images are (H, W, 3) uint8 RGB; boxes are (x0, y0, x1, y1) float pixels of the
full frame; landmarks are (68, 2) float64 (x, y) in the iBUG-300W order.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache

import cv2
import dlib
import numpy as np

from ..errors import DoppelError

DETECTORS = ("hog", "cnn")
REGION_MARGIN = 0.5  # landmarks are fitted on the frame region around the box plus this many box sizes


@dataclass(frozen=True)
class DetectConfig:
    detector: str = "hog"  # hog (fast) or cnn (dlib MMOD, slower, better on hard poses)
    detect_size: int = 384  # frames are downscaled so the longer side is at most this for detection
    upsample: int = 0  # dlib pyramid upsampling on the downscaled frame (finds smaller faces)
    redetect_every: int = 8  # run the detector every N frames; landmarks track faces in between
    track_iou: float = 0.5  # a tracked box must overlap its previous box this much, else re-detect
    cut: float = 30.0  # mean change (0-255) of a tracked face's box since the last frame that forces the detector


@dataclass
class Face:
    box: np.ndarray  # (4,) x0, y0, x1, y1 in frame pixels
    landmarks: np.ndarray  # (68, 2) float64 frame pixels
    detector_score: float = 0.0  # dlib's detection confidence (0 for tracked faces)
    tracked: bool = False  # True when found by tracking, not by the detector


def models_dir() -> str:
    """Folder of the model files shipped by the face-recognition-models package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise DoppelError("face-recognition-models is not installed (pip install face-recognition-models)")
    return os.path.join(os.path.dirname(spec.origin), "models")


@lru_cache(maxsize=None)
def _hog():
    return dlib.get_frontal_face_detector()


@lru_cache(maxsize=None)
def _cnn():
    return dlib.cnn_face_detection_model_v1(os.path.join(models_dir(), "mmod_human_face_detector.dat"))


@lru_cache(maxsize=None)
def _predictor68():
    return dlib.shape_predictor(os.path.join(models_dir(), "shape_predictor_68_face_landmarks.dat"))


@lru_cache(maxsize=None)
def _predictor5():
    return dlib.shape_predictor(os.path.join(models_dir(), "shape_predictor_5_face_landmarks.dat"))


@lru_cache(maxsize=None)
def _encoder():
    return dlib.face_recognition_model_v1(os.path.join(models_dir(), "dlib_face_recognition_resnet_model_v1.dat"))


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = getattr(image, "shape", type(image)), getattr(image, "dtype", "")
        raise ValueError(f"expected (H, W, 3) uint8 RGB image, got {got}")


def _rect(box) -> dlib.rectangle:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return dlib.rectangle(x0, y0, x1, y1)


def detect_boxes(image: np.ndarray, cfg: DetectConfig = DetectConfig()) -> list[tuple[np.ndarray, float]]:
    """Face boxes with scores on a downscaled copy, returned in full-frame pixels."""
    _check_image(image)
    if cfg.detector not in DETECTORS:
        raise DoppelError(f"unknown detector {cfg.detector!r}; choose from {', '.join(DETECTORS)}")
    h, w = image.shape[:2]
    scale = min(1.0, cfg.detect_size / max(h, w))
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else image
    out = []
    if cfg.detector == "hog":
        rects, scores, _ = _hog().run(small, cfg.upsample, 0.0)
        for r, s in zip(rects, scores):
            out.append((np.array([r.left(), r.top(), r.right(), r.bottom()], float) / scale, float(s)))
    else:
        for d in _cnn()(small, cfg.upsample):
            r = d.rect
            out.append((np.array([r.left(), r.top(), r.right(), r.bottom()], float) / scale, float(d.confidence)))
    return out


def _region(image: np.ndarray, box) -> tuple[np.ndarray, np.ndarray]:
    """The part of `image` around `box` (REGION_MARGIN box sizes of margin) and its (x, y) offset.

    dlib copies the whole array it is given on every call (~1 ms at 720p); the
    shape predictors only read pixels near the box, so fitting on this region
    gives the same landmarks.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = np.asarray(box, float)
    bw, bh = x1 - x0, y1 - y0
    mx, my = REGION_MARGIN * bw, REGION_MARGIN * bh
    ox, oy = int(max(0, np.floor(x0 - mx))), int(max(0, np.floor(y0 - my)))
    ex, ey = int(min(w, np.ceil(x1 + mx))), int(min(h, np.ceil(y1 + my)))
    if ex <= ox or ey <= oy:  # box outside the frame: let dlib see the whole frame
        return image, np.zeros(2)
    return np.ascontiguousarray(image[oy:ey, ox:ex]), np.array([ox, oy], float)


def _fit(predictor, image: np.ndarray, box) -> np.ndarray:
    sub, off = _region(image, box)
    shape = predictor(sub, _rect(np.asarray(box, float) - np.tile(off, 2)))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64) + off


def landmarks68(image: np.ndarray, box) -> np.ndarray:
    """68 landmarks (68, 2) float64 fitted inside `box` at full resolution."""
    return _fit(_predictor68(), image, box)


def landmarks5(image: np.ndarray, box) -> np.ndarray:
    """dlib's 5-point model (eye corners and nose base), (5, 2): a second, independent fit."""
    return _fit(_predictor5(), image, box)


def embedding(image: np.ndarray, landmarks: np.ndarray, jitter: int = 0) -> np.ndarray:
    """dlib's 128-D face descriptor (same person: Euclidean distance below ~0.6)."""
    _check_image(image)
    pts = [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks]
    box = landmarks_box(landmarks)
    shape = dlib.full_object_detection(_rect(box), pts)
    # PyAV pads rows of some widths (e.g. 844 px), and dlib only takes contiguous arrays
    image = np.ascontiguousarray(image)
    return np.array(_encoder().compute_face_descriptor(image, shape, jitter), dtype=np.float32)


def landmarks_box(landmarks: np.ndarray) -> np.ndarray:
    """Tight (x0, y0, x1, y1) box around landmarks."""
    return np.array([*landmarks.min(0), *landmarks.max(0)], dtype=float)


def box_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """A detector-like square box around landmarks, for re-fitting the next frame."""
    # Measured on HOG boxes of the clips in shared/data: the box is ~6% wider and
    # ~4% taller than the landmarks and sits ~10% of their height higher.
    x0, y0, x1, y1 = landmarks_box(landmarks)
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.10 * h
    return np.array([cx - 0.53 * w, cy - 0.52 * h, cx + 0.53 * w, cy + 0.52 * h])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def find_faces(image: np.ndarray, cfg: DetectConfig = DetectConfig()) -> list[Face]:
    """Detect every face and fit 68 landmarks to each, largest first."""
    faces = [Face(box, landmarks68(image, box), score) for box, score in detect_boxes(image, cfg)]
    return sorted(faces, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def region_changed(image: np.ndarray, previous: np.ndarray | None, faces: list[Face], limit: float) -> bool:
    """True when a face's box changed by more than `limit` (mean abs, 0-255) since `previous`.

    Frames of another size (a folder of photos) count as changed.
    """
    if previous is None:
        return False
    if previous.shape != image.shape:
        return True
    for face in faces:
        x0, y0 = np.clip(face.box[:2], 0, None).astype(int)
        x1, y1 = face.box[2:].astype(int)
        a, b = image[y0:y1:4, x0:x1:4], previous[y0:y1:4, x0:x1:4]
        if a.size and np.abs(a.astype(np.int16) - b).mean() > limit:
            return True
    return False


class FaceTracker:
    """Faces of a video frame by frame: detector every few frames, landmark tracking between.

    Between detections each face's box is taken from its previous landmarks and
    the 68-point model is re-fitted there (about 1 ms a face instead of a full
    detection). A track whose new box drifts from its last one is dropped and the
    detector runs on the next frame. The re-fit returns a face-like shape even on a
    cut or a blank frame, so a big change of a face's region since the last frame
    (`cfg.cut`) also runs the detector.
    """

    def __init__(self, cfg: DetectConfig = DetectConfig()):
        self.cfg = cfg
        self.faces: list[Face] = []
        self.since_detect = 0
        self.previous: np.ndarray | None = None

    def __call__(self, image: np.ndarray) -> list[Face]:
        _check_image(image)
        changed = region_changed(image, self.previous, self.faces, self.cfg.cut)
        self.previous = image
        if not self.faces or self.since_detect >= self.cfg.redetect_every or changed:
            return self._detect(image)
        tracked = []
        for face in self.faces:
            box = box_from_landmarks(face.landmarks)
            lm = landmarks68(image, box)
            if iou(box_from_landmarks(lm), box) < self.cfg.track_iou:
                return self._detect(image)
            tracked.append(Face(box, lm, 0.0, True))
        self.faces = tracked
        self.since_detect += 1
        return tracked

    def _detect(self, image: np.ndarray) -> list[Face]:
        self.faces = find_faces(image, self.cfg)
        self.since_detect = 1
        return self.faces
