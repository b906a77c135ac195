"""Face boxes (a cascade of dlib HOG / MMOD CNN and OpenCV Haar), 68 landmarks, embeddings, tracking.

All images are (H, W, 3) uint8 RGB; boxes are (x0, y0, x1, y1) float pixels of the
full frame; landmarks are (68, 2) float64 (x, y) in the iBUG-300W order.

The face finder (`find_faces`, run on keyframes) is a cascade, cheapest first:
1. fast pass: the detector on the frame shrunk to `detect_size` (finds faces
   wider than ~80 px at that size: ~160 px in 720p);
2. deep pass (on a video: on keyframes where the fast pass found nothing, and
   on every `deep_every`-th keyframe for new small faces beside big ones): OpenCV's
   Haar cascade at (nearly) full resolution proposes faces down to `min_face` px,
   and each proposal is checked by the detector on an enlarged crop (Haar alone
   fires on textures; the check removes those);
3. turned frames, only when nothing was found upright: the same on the frame
   turned a quarter either way (a camera on its side); landmarks map back.
Dark frames are brightened (a gamma curve) before detection and landmark fitting.
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
from .options import DETECTORS, DetectConfig, add_detect_arguments, detect_config  # noqa: F401 (re-exported)

REGION_MARGIN = 0.5  # landmarks are fitted on the frame region around the box plus this many box sizes
HOG_WINDOW = 80  # dlib's detectors find faces down to about this box width (px at detection scale)
HAAR_WINDOW = 24  # smallest box OpenCV's frontal-face Haar cascade finds (its training window)
HAAR_BOX = 1.25  # a Haar box is about this many times the width of the 68-point box
CHECK_WIDTH = 100  # a deep-pass proposal is scaled so its box is this wide before the detector checks it
CHECK_MARGIN = 0.5  # ... on a crop of the proposal plus this many box widths each side
BRIGHT_TARGET = 0.45  # a dark frame's gamma curve maps its mean grey (0-1) to this


OLD_FINDER = DetectConfig(detect_size=384, min_face=0, turns=False, dark=0.0)  # the finder before the cascade


@dataclass
class Face:
    box: np.ndarray  # (4,) x0, y0, x1, y1 in frame pixels
    landmarks: np.ndarray  # (68, 2) float64 frame pixels
    detector_score: float = 0.0  # dlib's detection confidence (0 for tracked faces)
    tracked: bool = False  # True when found by tracking, not by the detector
    turn: int = 0  # quarter turns counter-clockwise (np.rot90) that make the face upright


MIN_SIDE = 20  # frames narrower than this (either side) hold no findable face: "no face", not an error


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
def _haar():
    path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise DoppelError(f"OpenCV's face cascade is missing ({path}); install opencv-python-headless 4.x")
    return cascade


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


# --- quarter turns and light --------------------------------------------------

def turn_points(points: np.ndarray, k: int, shape: tuple) -> np.ndarray:
    """(N, 2) points of an image of `shape` (H, W, ...) in the coordinates of np.rot90(image, k)."""
    h, w = shape[:2]
    x, y = np.asarray(points, float).T
    k %= 4
    out = {0: (x, y), 1: (y, w - 1 - x), 2: (w - 1 - x, h - 1 - y), 3: (h - 1 - y, x)}[k]
    return np.stack(out, 1)


def turn_box(box, k: int, shape: tuple) -> np.ndarray:
    """An (x0, y0, x1, y1) box of an image of `shape` in the coordinates of np.rot90(image, k)."""
    corners = turn_points(np.asarray(box, float).reshape(2, 2), k, shape)
    return np.array([*corners.min(0), *corners.max(0)])


def _turned_shape(shape: tuple, k: int) -> tuple:
    return (shape[1], shape[0]) if k % 2 else tuple(shape[:2])


def lit(image: np.ndarray, dark: float) -> np.ndarray:
    """`image` itself, or brightened by a gamma curve when its mean grey (0-255) is under `dark`.

    dlib's HOG normalises contrast per cell but a dark uint8 frame has few grey
    levels left in the face; the gamma curve spreads them before the detector and
    the landmark model look.
    """
    if dark <= 0:
        return image
    mean = float(image[::8, ::8].mean())
    if mean >= dark:
        return image
    gamma = np.log(BRIGHT_TARGET) / np.log(max(mean, 1.0) / 255)
    lut = np.round(255 * (np.arange(256) / 255) ** gamma).astype(np.uint8)
    return cv2.LUT(image, lut)


# --- the cascade ----------------------------------------------------------------

def _detector(image: np.ndarray, detector: str, upsample: int = 0) -> list[tuple[np.ndarray, float]]:
    """dlib's detector on `image` (grey or RGB) at its own scale: [(box, score)]."""
    if detector == "hog":
        rects, scores, _ = _hog().run(image, upsample, 0.0)
        return [(np.array([r.left(), r.top(), r.right(), r.bottom()], float), float(s))
                for r, s in zip(rects, scores)]
    return [(np.array([d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()], float), float(d.confidence))
            for d in _cnn()(image, upsample)]


def _fast_scale(shape: tuple, cfg: DetectConfig) -> float:
    return min(1.0, cfg.detect_size / max(shape[:2]))


def fast_boxes(grey: np.ndarray, cfg: DetectConfig) -> list[tuple[np.ndarray, float]]:
    """Fast pass: the detector on a copy shrunk to `cfg.detect_size`; boxes in frame pixels."""
    h, w = grey.shape[:2]
    scale = _fast_scale(grey.shape, cfg)
    small = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else grey
    return [(box / scale, s) for box, s in _detector(small, cfg.detector, cfg.upsample)]


def deep_boxes(grey: np.ndarray, cfg: DetectConfig, known: list[np.ndarray]) -> list[tuple[np.ndarray, float]]:
    """Deep pass: Haar proposals down to `cfg.min_face`, each confirmed by the detector on an enlarged crop.

    Proposals centred inside a `known` box are skipped. Boxes in frame pixels.
    """
    h, w = grey.shape[:2]
    scale = min(1.0, HAAR_WINDOW / (HAAR_BOX * cfg.min_face))
    small = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else grey
    if min(small.shape[:2]) < HAAR_WINDOW:
        return []
    proposals = _haar().detectMultiScale(small, 1.15, 3, minSize=(HAAR_WINDOW, HAAR_WINDOW))
    out: list[tuple[np.ndarray, float]] = []
    for x, y, bw, bh in proposals:
        box = np.array([x, y, x + bw, y + bh], float) / scale
        if _inside(box, known + [b for b, _ in out]):
            continue
        hit = _confirm(grey, box, cfg.detector)
        if hit is not None and not any(iou(hit[0], b) > 0.3 for b, _ in out):
            out.append(hit)
    return out


def _inside(box: np.ndarray, others: list[np.ndarray]) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return any(o[0] <= cx <= o[2] and o[1] <= cy <= o[3] for o in others)


def _confirm(grey: np.ndarray, box: np.ndarray, detector: str) -> tuple[np.ndarray, float] | None:
    """The detector's best box around a proposal (crop scaled so the proposal is CHECK_WIDTH px), or None."""
    bw = box[2] - box[0]
    m = CHECK_MARGIN * bw
    x0, y0 = int(max(0, box[0] - m)), int(max(0, box[1] - m))
    x1, y1 = int(min(grey.shape[1], box[2] + m)), int(min(grey.shape[0], box[3] + m))
    s = CHECK_WIDTH / bw
    crop = cv2.resize(grey[y0:y1, x0:x1], (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))),
                      interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
    hits = [(b / s + [x0, y0, x0, y0], sc) for b, sc in _detector(crop, detector)]
    hits = [h for h in hits if _inside(h[0], [box])]
    return max(hits, key=lambda h: h[1]) if hits else None


def detect_boxes(image: np.ndarray, cfg: DetectConfig = DetectConfig(),
                 deep: str = "always") -> list[tuple[np.ndarray, float]]:
    """Face boxes with scores of an upright (H, W, 3) uint8 frame: the fast pass, then the deep pass
    ("always", "never", or "if-none": when the fast pass found nothing). Boxes in frame pixels."""
    _check_image(image)
    if cfg.detector not in DETECTORS:
        raise DoppelError(f"unknown detector {cfg.detector!r}; choose from {', '.join(DETECTORS)}")
    if min(image.shape[:2]) < MIN_SIDE:
        return []
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    found = fast_boxes(grey, cfg)
    if cfg.min_face > 0 and (deep == "always" or (deep == "if-none" and not found)):
        found += deep_boxes(grey, cfg, [b for b, _ in found])
    return found


# --- landmarks -------------------------------------------------------------------

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


def _fit(predictor, image: np.ndarray, box, turn: int = 0) -> np.ndarray:
    """Landmarks of the face in `box`, fitted on the region turned `turn` quarters (upright)."""
    sub, off = _region(image, box)
    local = np.asarray(box, float) - np.tile(off, 2)
    if turn % 4:
        sub, local = np.ascontiguousarray(np.rot90(sub, turn)), turn_box(local, turn, sub.shape)
    shape = predictor(sub, _rect(local))
    pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    if turn % 4:
        pts = turn_points(pts, -turn, sub.shape)
    return pts + off


def landmarks68(image: np.ndarray, box, turn: int = 0) -> np.ndarray:
    """68 landmarks (68, 2) float64 fitted inside `box` at full resolution (`turn`: see Face.turn)."""
    return _fit(_predictor68(), image, box, turn)


def landmarks5(image: np.ndarray, box, turn: int = 0) -> np.ndarray:
    """dlib's 5-point model (eye corners and nose base), (5, 2): a second, independent fit."""
    return _fit(_predictor5(), image, box, turn)


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


def box_from_landmarks(landmarks: np.ndarray, turn: int = 0) -> np.ndarray:
    """A detector-like square box around landmarks, for re-fitting the next frame (`turn`: see Face.turn)."""
    if turn % 4:  # build the box where the face is upright (a turn about the origin), then turn it back
        up = box_from_landmarks(turn_points(landmarks, turn, (0, 0)))
        return turn_box(up, -turn, (0, 0))
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


# --- whole frames ------------------------------------------------------------------

def _largest_first(faces: list[Face]) -> list[Face]:
    return sorted(faces, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def _faces_turned(image: np.ndarray, cfg: DetectConfig, k: int, deep: str) -> list[Face]:
    """Faces found on the frame turned `k` quarters, in the frame's own coordinates."""
    view = np.ascontiguousarray(np.rot90(image, k)) if k else image
    boxes = detect_boxes(view, cfg, deep)
    back = -k % 4
    return [Face(turn_box(box, back, view.shape), turn_points(landmarks68(view, box), back, view.shape), score,
                 False, k) for box, score in boxes]


def find_faces(image: np.ndarray, cfg: DetectConfig = DetectConfig(), first_turn: int = 0,
               deep: str = "always") -> list[Face]:
    """Every face of a frame with 68 landmarks, largest first: the cascade (module docstring).

    `deep` says when the deep pass runs (see detect_boxes; "never" also skips the
    turned frames). Turned frames are tried only when nothing is found upright,
    `first_turn` (the turn that found faces last time) first. A frame too small
    to hold a face gives [].
    """
    _check_image(image)
    if cfg.detector not in DETECTORS:
        raise DoppelError(f"unknown detector {cfg.detector!r}; choose from {', '.join(DETECTORS)}")
    if min(image.shape[:2]) < MIN_SIDE:
        return []
    work = lit(image, cfg.dark)
    turns = [first_turn % 4] + [k for k in (0, 1, 3) if k != first_turn % 4] if cfg.turns else [0]
    tried = set()
    for k in turns[:1] if deep == "never" else turns:
        faces = _faces_turned(work, cfg, k, deep)
        tried.add(k)
        if faces and k in (1, 3) and k != first_turn % 4 and 4 - k not in tried:
            # a sideways frame not seen before: the other quarter turn too, keeping the one with more faces
            # (one face found upside down at the wrong turn would otherwise hide every face upright at the other)
            other = _faces_turned(work, cfg, 4 - k, deep)
            faces = other if len(other) > len(faces) else faces
        if faces:
            return _largest_first(faces)
    return []


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
    """Faces of a video frame by frame: the face finder every few frames, landmark tracking between.

    Between detections each face's box is taken from its previous landmarks and
    the 68-point model is re-fitted there (about 1 ms a face instead of a full
    detection). A track whose new box drifts from its last one is dropped and the
    finder runs on the next frame. The re-fit returns a face-like shape even on a
    cut or a blank frame, so a big change of a face's region since the last frame
    (`cfg.cut`) also runs the finder. A keyframe runs the fast pass and the deep
    pass only when that found nothing, but every `deep_every`-th keyframe runs both.
    While no face is seen, the frames between keyframes get the fast pass alone.
    """

    def __init__(self, cfg: DetectConfig = DetectConfig()):
        self.cfg = cfg
        self.faces: list[Face] = []
        self.since_detect = cfg.redetect_every  # the first frame gets the whole cascade
        self.previous: np.ndarray | None = None
        self.turn = 0  # the quarter turn that found faces last
        self.keyframes = 0  # runs of the whole finder so far

    def __call__(self, image: np.ndarray) -> list[Face]:
        _check_image(image)
        changed = region_changed(image, self.previous, self.faces, self.cfg.cut)
        self.previous = image
        due = self.since_detect >= self.cfg.redetect_every
        if min(image.shape[:2]) < MIN_SIDE:
            self.faces, self.since_detect = [], 0
            return []
        if due or changed:
            return self._detect(image)
        if not self.faces:
            return self._detect(image, between=True)
        work = lit(image, self.cfg.dark)
        tracked = []
        for face in self.faces:
            box = box_from_landmarks(face.landmarks, face.turn)
            lm = landmarks68(work, box, face.turn)
            if iou(box_from_landmarks(lm, face.turn), box) < self.cfg.track_iou:
                return self._detect(image)
            tracked.append(Face(box, lm, 0.0, True, face.turn))
        self.faces = tracked
        self.since_detect += 1
        return tracked

    def _detect(self, image: np.ndarray, between: bool = False) -> list[Face]:
        """The finder on a keyframe (or, `between` keyframes while no face is seen, its fast pass alone)."""
        if between:
            deep = "never"
        else:
            every = self.cfg.deep_every
            deep = "always" if every > 0 and self.keyframes % every == 0 else "if-none"
            self.keyframes += 1
        self.faces = find_faces(image, self.cfg, self.turn, deep)
        if self.faces:
            self.turn = self.faces[0].turn
        self.since_detect = self.since_detect + 1 if between and not self.faces else 1
        return self.faces


# --- command-line options, shared by extract, swap, lipsync and detect ------------------
