"""Face masks: where the new face is drawn.

A mask is float32 (H, W) in [0, 1]. The shape functions draw on a square canvas
of side `size` from 68 landmarks given in that canvas's pixels (usually the
aligned crop, where the face is upright), so they are pure functions of the
points. `make_mask` chains shape -> erode/dilate -> feather -> keep inside the
canvas, with every distance a fraction of the face's size.
"""
from __future__ import annotations

import cv2
import numpy as np

from .landmarks import BROWS, CHIN
from .options import MASKS, MaskConfig  # noqa: F401 (re-exported; MASKS: SHAPES, then "learned")

FOREHEAD = 0.25  # the brows are raised by this share of the chin-to-brow height


def fill_hull(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 {0, 1}: the filled convex hull of (N, 2) pixel points (rounded to whole pixels)."""
    canvas = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(canvas, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    return canvas


def _check(landmarks: np.ndarray, size: int) -> np.ndarray:
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lm.shape}")
    if int(size) < 1:
        raise ValueError(f"canvas size must be >= 1, got {size}")
    return lm


def face_size(landmarks: np.ndarray) -> float:
    """Geometric mean of the landmark box's sides, in pixels: the unit of erode/feather."""
    lm = np.asarray(landmarks, np.float64)
    w, h = lm.max(0) - lm.min(0)
    return float(np.sqrt(max(w, 1.0) * max(h, 1.0)))


def forehead(landmarks: np.ndarray, lift: float = FOREHEAD) -> np.ndarray:
    """The 10 brow points moved up the face (away from the chin), (10, 2)."""
    lm = np.asarray(landmarks, np.float64)
    brows = lm[BROWS]
    up = brows.mean(0) - lm[CHIN]
    return brows + lift * up


def outline(landmarks: np.ndarray) -> np.ndarray:
    """Convex hull (K, 2) of the landmarks and the forehead points."""
    pts = np.concatenate([np.asarray(landmarks, np.float64), forehead(landmarks)])
    return cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)


def _fill(poly: np.ndarray, size: int) -> np.ndarray:
    canvas = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(canvas, np.round(poly * 16).astype(np.int32), 1, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32)


def hull(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Landmark convex hull extended to the forehead, (size, size) float32 {0, 1}."""
    return _fill(outline(_check(landmarks, size)), size)


def rect(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Axis-aligned box around the landmarks and forehead, (size, size) float32 {0, 1}."""
    pts = outline(_check(landmarks, size))
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    return _fill(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), size)


def ellipse(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Ellipse inscribed in `rect`'s box, (size, size) float32 {0, 1}."""
    pts = outline(_check(landmarks, size))
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    canvas = np.zeros((size, size), np.uint8)
    center = (int(round((x0 + x1) * 8)), int(round((y0 + y1) * 8)))
    axes = (int(round((x1 - x0) * 8)), int(round((y1 - y0) * 8)))
    cv2.ellipse(canvas, center, axes, 0, 0, 360, 1, -1, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32)


SHAPES = {"rect": rect, "ellipse": ellipse, "hull": hull}


def erode(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Shrink (pixels > 0) or grow (pixels < 0) a mask by |pixels| with an elliptical kernel."""
    r = int(round(abs(pixels)))
    if r == 0:
        return mask.astype(np.float32)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    op = cv2.erode if pixels > 0 else cv2.dilate
    return op(mask.astype(np.float32), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-blurred edge (sigma in pixels); zero stays zero beyond 3 sigma."""
    if sigma <= 0:
        return mask.astype(np.float32)
    k = 2 * int(np.ceil(3 * sigma)) + 1
    out = cv2.GaussianBlur(mask.astype(np.float32), (k, k), sigma, borderType=cv2.BORDER_CONSTANT)
    return np.clip(out, 0.0, 1.0)


def inside(mask: np.ndarray, margin: float) -> np.ndarray:
    """Zero the mask within `margin` pixels of the canvas edge (the crop has nothing past it)."""
    m = int(np.ceil(margin))
    out = mask.astype(np.float32)  # a copy
    if m > 0:
        out[:m], out[-m:], out[:, :m], out[:, -m:] = 0, 0, 0, 0
    return out


def make_mask(landmarks: np.ndarray, size: int, cfg: MaskConfig = MaskConfig(),
              learned: np.ndarray | None = None) -> np.ndarray:
    """The blend mask (size, size) float32 in [0, 1] for landmarks in canvas pixels.

    `learned` is the model's own mask (any square size, float in [0, 1]); it is
    required when cfg.shape == "learned" (and then cut to the hull) and otherwise ignored.
    """
    lm = _check(landmarks, size)
    if cfg.shape == "learned":
        if learned is None:
            raise ValueError("mask 'learned' needs a model that draws a mask")
        base = cv2.resize(np.asarray(learned, np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
        base = np.clip(base, 0, 1) * hull(lm, size)  # the model decides inside the face, never outside it
    elif cfg.shape in SHAPES:
        base = SHAPES[cfg.shape](lm, size)
    else:
        raise ValueError(f"unknown mask {cfg.shape!r}; choose from {', '.join(MASKS)}")
    unit = face_size(lm)
    sigma = cfg.feather * unit
    # cut at the canvas edge before feathering, so the edge there fades like any other;
    # what leaks past it (< 16% at the very edge) falls on replicated border pixels
    return feather(inside(erode(base, cfg.erode * unit), sigma + 1), sigma)
