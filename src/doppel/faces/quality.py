"""Quality scores of an aligned face and the thresholds that drop it.

Every scorer is a pure function returning one number; `QualityConfig` holds a
threshold per score and `drop_reason` names the first one a face fails, so a
face set can be re-filtered from its stored scores without re-detecting.
Set-level variety (near-duplicates, the N most varied faces) works on aligned
landmark shapes: (68, 2) float64 in crop units, [0, 1] across the crop.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

import cv2
import numpy as np

from . import align
from .landmarks import LEFT_EYE, RIGHT_EYE
from .mask import fill_hull
from .options import QualityConfig  # noqa: F401 (re-exported; defined there, light to import)

MEASURE_SIZE = 64  # sharpness and colour are measured at this crop side, so one threshold fits every --size
FIVE_TO_68 = np.array([45, 42, 36, 39, 33])  # dlib 5-point model's points as indices of the 68-point layout
# A generic head in camera axes (x right, y down, z away from the camera), arbitrary
# units, nose tip at the origin: the widely used values of learnopencv's "Head pose
# estimation using OpenCV and dlib", with the eye and mouth corners set deeper
# (185/150 instead of 135/125) to match adult anthropometry (outer eye corners
# ~37 mm behind the nose tip, 90 mm apart); the shallow original overstated yaw
# by ~1.4x on LFW. Row i belongs to 68-point landmark POSE_POINTS[i].
POSE_POINTS = np.array([30, 8, 36, 45, 48, 54])
POSE_MODEL = np.array([(0, 0, 0), (0, 330, 65), (-225, -170, 185), (225, -170, 185),
                       (-150, 150, 150), (150, 150, 150)], dtype=np.float64)



# reason -> (score name, test that drops the face); checked in this order.
FILTERS: dict[str, tuple[str, Callable[[float, QualityConfig], bool]]] = {
    "multi-person": ("people", lambda s, c: c.max_people > 0 and s > c.max_people),
    "small": ("size", lambda s, c: s < c.min_size),
    "not-reference": ("identity", lambda s, c: s > c.max_identity),
    "badly-fitted": ("fit", lambda s, c: s > c.max_fit),
    "pose": ("yaw", lambda s, c: abs(s) > c.max_yaw),
    "pitch": ("pitch", lambda s, c: abs(s) > c.max_pitch),
    "blur": ("sharpness", lambda s, c: s < c.min_sharpness),
    "dark": ("brightness", lambda s, c: s < c.min_brightness),
    "bright": ("brightness", lambda s, c: s > c.max_brightness),
    "low-contrast": ("contrast", lambda s, c: s < c.min_contrast),
    "tint": ("tint", lambda s, c: s > c.max_tint),
}
SET_REASONS = ("duplicate", "max-faces")  # dropped by set-level variety, not by a face's own scores


def drop_reason(scores: dict[str, float], cfg: QualityConfig) -> str:
    """The first filter whose score fails its threshold, or "" to keep; missing scores pass."""
    for reason, (name, fails) in FILTERS.items():
        if name in scores and fails(scores[name], cfg):
            return reason
    return ""


def _check_crop(crop: np.ndarray) -> None:
    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3 \
            or crop.shape[0] != crop.shape[1]:
        raise ValueError(f"expected a square (S, S, 3) uint8 RGB crop, got {getattr(crop, 'shape', type(crop))}")


def face_mask(shape: np.ndarray, size: int = MEASURE_SIZE) -> np.ndarray:
    """(size, size) bool mask of the convex hull of an aligned shape (68, 2) in crop units."""
    return fill_hull(np.asarray(shape) * size, (size, size)).astype(bool)


def _small(crop: np.ndarray) -> np.ndarray:
    """Crop (S, S, 3) uint8 -> (64, 64, 3) uint8 by area averaging."""
    if crop.shape[0] == MEASURE_SIZE:
        return crop
    return cv2.resize(crop, (MEASURE_SIZE, MEASURE_SIZE), interpolation=cv2.INTER_AREA)


def _grey(crop: np.ndarray) -> np.ndarray:
    """Crop (S, S, 3) uint8 -> grey (64, 64) float32 in [0, 255]."""
    return cv2.cvtColor(_small(crop), cv2.COLOR_RGB2GRAY).astype(np.float32)


def sharpness(crop: np.ndarray, shape: np.ndarray) -> float:
    """Variance of the Laplacian over the face, divided by the grey-level variance there.

    crop: (S, S, 3) uint8 RGB aligned face; shape: (68, 2) aligned landmarks in crop
    units. Measured at 64 px and normalised by contrast, so one threshold fits
    every crop size and lighting. Faces on shared/data score 0.12-1.1; a
    Gaussian blur of sigma 1.5 px (at 64 px) brings them under 0.08.
    """
    _check_crop(crop)
    grey = _grey(crop)
    mask = face_mask(shape)
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=1)
    return float(lap[mask].var() / max(grey[mask].var(), 1.0))


def brightness_contrast(crop: np.ndarray, shape: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the grey level (0-255) over the face hull."""
    _check_crop(crop)
    grey = _grey(crop)[face_mask(shape)]
    return float(grey.mean()), float(grey.std())


def tint(crop: np.ndarray, shape: np.ndarray) -> float:
    """Chroma of the face's mean colour in CIE Lab (sqrt(a^2 + b^2), L in 0-100); 0 is grey."""
    _check_crop(crop)
    mean = _small(crop)[face_mask(shape)].mean(0).astype(np.float32) / 255.0
    _, a, b = cv2.cvtColor(mean.reshape(1, 1, 3), cv2.COLOR_RGB2LAB)[0, 0]
    return float(np.hypot(a, b))


def fit_error(landmarks68: np.ndarray, landmarks5: np.ndarray) -> float:
    """Mean distance between the 68-point fit and dlib's 5-point fit, over inter-ocular distance.

    Both (N, 2) in the same pixels. Occluded or badly fitted faces make the two
    independent models disagree; good fits score under 0.08 on shared/data.
    """
    lm68, lm5 = np.asarray(landmarks68, np.float64), np.asarray(landmarks5, np.float64)
    if lm68.shape != (68, 2) or lm5.shape != (5, 2):
        raise ValueError(f"expected (68, 2) and (5, 2) landmarks, got {lm68.shape} and {lm5.shape}")
    iod = np.linalg.norm(lm68[RIGHT_EYE].mean(0) - lm68[LEFT_EYE].mean(0))
    return float(np.linalg.norm(lm68[FIVE_TO_68] - lm5, axis=1).mean() / max(iod, 1e-6))


def face_size(landmarks68: np.ndarray) -> float:
    """Width of the 68-point box in frame pixels."""
    lm = np.asarray(landmarks68, np.float64)
    return float(lm[:, 0].max() - lm[:, 0].min())


def _raw_pose(shape: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) degrees of POSE_MODEL fitted to an aligned shape by cv2.solvePnP."""
    pts = np.ascontiguousarray(np.asarray(shape, np.float64)[POSE_POINTS] * 1000.0)
    cam = np.array([[20000.0, 0, 500], [0, 20000.0, 500], [0, 0, 1]])  # long lens: near-orthographic
    ok, rvec, tvec = cv2.solvePnP(POSE_MODEL, pts, cam, None, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return np.full(3, np.nan)
    rot, _ = cv2.Rodrigues(rvec)
    return np.array(cv2.RQDecomp3x3(rot)[0])


@lru_cache(maxsize=1)
def _template_pose() -> np.ndarray:
    return _raw_pose(align.template())


def head_pose(shape: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees of an aligned shape (68, 2), relative to the mean (frontal) template."""
    shape = np.asarray(shape, np.float64)
    if shape.shape != (68, 2):
        raise ValueError(f"expected a (68, 2) aligned shape, got {shape.shape}")
    pitch, yaw, _ = _raw_pose(shape) - _template_pose()
    return float(yaw), float(pitch)


def aligned_shape(landmarks68: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """68 frame landmarks mapped into the crop by `matrix`, in crop units (68, 2)."""
    return align.transform_points(landmarks68, matrix) / float(size)


def shape_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS point distance between aligned shapes a (..., 68, 2) and b (..., 68, 2), in crop units."""
    return np.sqrt(((np.asarray(a) - np.asarray(b)) ** 2).sum(-1).mean(-1))


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)) between rows, by one matrix product."""
    return np.maximum((a ** 2).sum(1)[:, None] - 2 * a @ b.T + (b ** 2).sum(1)[None, :], 0)


def near_duplicates(shapes: np.ndarray, min_distance: float, block: int = 512) -> np.ndarray:
    """Bool (N,) True for faces within `min_distance` of an earlier kept face; shapes (N, 68, 2).

    Greedy in order: a face is kept unless a face kept before it is that close.
    Faces are compared a block at a time with matrix products (exact; ~1 s for
    10,000 faces), since tree searches degrade in 136 dimensions.
    """
    n = len(shapes)
    dup = np.zeros(n, bool)
    if n < 2 or min_distance <= 0:
        return dup
    flat = np.asarray(shapes, np.float64).reshape(n, -1)
    flat = flat - flat.mean(0)  # small norms keep the expanded distance formula exact enough
    r2 = min_distance ** 2 * 68  # RMS over 68 points -> squared Euclidean over 136 numbers
    kept, n_kept = np.empty_like(flat), 0
    for start in range(0, n, block):
        x = flat[start:start + block]
        near = (_sq_dists(x, kept[:n_kept]) <= r2).any(1) if n_kept else np.zeros(len(x), bool)
        inner = _sq_dists(x, x) <= r2
        for i in range(len(x)):
            if near[i]:
                dup[start + i] = True
            else:
                near[i + 1:] |= inner[i, i + 1:]
        fresh = x[~dup[start:start + len(x)]]
        kept[n_kept:n_kept + len(fresh)] = fresh
        n_kept += len(fresh)
    return dup


def most_varied(shapes: np.ndarray, count: int) -> np.ndarray:
    """Indices of `count` faces spread over pose and expression (farthest-point sampling).

    Starts from the face nearest the mean shape, then repeatedly takes the face
    farthest from every face already chosen. shapes: (N, 68, 2) crop units.
    """
    flat = np.asarray(shapes, np.float64).reshape(len(shapes), -1)
    n = len(flat)
    if count >= n:
        return np.arange(n)
    norms = (flat ** 2).sum(1)

    def sq_dist(i: int) -> np.ndarray:  # squared distances to face i, one matrix-vector product
        return np.maximum(norms - 2 * flat @ flat[i] + norms[i], 0)
    first = int(np.argmin(((flat - flat.mean(0)) ** 2).sum(1)))
    chosen = [first]
    nearest = sq_dist(first)
    for _ in range(count - 1):
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, sq_dist(nxt))
    return np.sort(np.array(chosen))
