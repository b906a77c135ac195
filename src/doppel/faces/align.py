"""Similarity alignment of 68 landmarks to a canonical template; crop and uncrop.

A 2x3 matrix M maps frame pixels to crop pixels: crop = M @ [x, y, 1]. The crop
of side `size` puts the template's 68-point bounding box in the middle
`coverage` fraction of the crop.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import cv2
import numpy as np

from .landmarks import INNER_FACE
from .options import DEFAULT_COVERAGE, DEFAULT_SIZE, SIZES  # noqa: F401 (re-exported)

FIT_POINTS = INNER_FACE  # brows, eyes, nose, mouth: the jawline moves with speech, so it is left out
TEMPLATE_FILE = "landmark_template.json"


@lru_cache(maxsize=None)
def template() -> np.ndarray:
    """Mean 68-point face shape (68, 2) in [0, 1], made by scripts/make_template.py."""
    text = resources.files("doppel").joinpath("data", TEMPLATE_FILE).read_text()
    pts = np.array(json.loads(text)["points"], dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"template must be (68, 2), got {pts.shape}")
    return pts


def umeyama(src: np.ndarray, dst: np.ndarray, scale: bool = True) -> np.ndarray:
    """Least-squares similarity transform (3x3) taking points `src` (N, 2) onto `dst` (N, 2).

    Umeyama, "Least-squares estimation of transformation parameters between two
    point patterns", PAMI 1991; reflections are excluded.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2:
        raise ValueError(f"expected two (N, 2) point sets, got {src.shape} and {dst.shape}")
    n = src.shape[0]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / n
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    c = (sig * np.diag(e)).sum() / (s ** 2).sum(1).mean() if scale else 1.0
    t = np.eye(3)
    t[:2, :2] = c * r
    t[:2, 2] = mu_d - c * r @ mu_s
    return t


def template_points(size: int = DEFAULT_SIZE, coverage: float = DEFAULT_COVERAGE) -> np.ndarray:
    """The template in crop pixels for a crop of side `size`."""
    return (template() - 0.5) * coverage * size + 0.5 * size


def align_matrix(landmarks: np.ndarray, size: int = DEFAULT_SIZE, coverage: float = DEFAULT_COVERAGE) -> np.ndarray:
    """2x3 matrix taking frame pixels to the aligned crop, fitted on FIT_POINTS."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lm.shape}")
    return umeyama(lm[FIT_POINTS], template_points(size, coverage)[FIT_POINTS])[:2]


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 matrix to (N, 2) points."""
    pts = np.asarray(points, np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def invert(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def frame_box(matrix: np.ndarray, box: tuple[float, float, float, float], shape: tuple[int, ...],
              margin: int = 0) -> tuple[int, int, int, int]:
    """Frame pixels (x0, y0, x1, y1) under the crop-pixel box `box` of the frame->crop `matrix`,
    grown by `margin` and clipped to the frame (empty when x1 <= x0 or y1 <= y0)."""
    bx0, by0, bx1, by1 = box
    corners = np.array([[bx0, by0], [bx1, by0], [bx0, by1], [bx1, by1]], np.float64)
    pts = transform_points(corners, invert(matrix))
    x0, y0 = np.floor(pts.min(0)).astype(int) - margin
    x1, y1 = np.ceil(pts.max(0)).astype(int) + margin
    h, w = shape[:2]
    return max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h)


def shift(matrix: np.ndarray, x0: int, y0: int, scale: float = 1.0) -> np.ndarray:
    """The frame->crop matrix for a frame region starting at (x0, y0), crop scaled by `scale`."""
    m = np.asarray(matrix, np.float64).copy()
    m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    return m * scale


def crop(image: np.ndarray, matrix: np.ndarray, size: int, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Warp `image` (H, W, C) into the (size, size, C) aligned crop.

    warpAffine has no area filter (INTER_AREA acts as bilinear there), so a big
    shrink would alias; the face's region is first shrunk to the crop's scale
    with cv2.resize(INTER_AREA), and the warp only rotates and shifts.
    """
    m = np.asarray(matrix, np.float64)
    if matrix_scale(m) < 0.5:
        x0, y0, x1, y1 = frame_box(m, (0, 0, size, size), image.shape, margin=8)
        if x1 > x0 and y1 > y0:
            image = image[y0:y1, x0:x1]
            m = shift(m, x0, y0)
            k = matrix_scale(m)
            image = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
            m[:, :2] /= k
            m[:, 2] += m[:, :2] @ np.full(2, 0.5 - 0.5 * k)  # cv2.resize maps pixel centres: x' = k(x + 0.5) - 0.5
    interp = cv2.INTER_LINEAR if matrix_scale(m) < 1 else cv2.INTER_CUBIC
    return cv2.warpAffine(image, m, (size, size), flags=interp, borderMode=border)


def uncrop(face: np.ndarray, matrix: np.ndarray, frame_shape: tuple[int, ...]) -> np.ndarray:
    """Warp an aligned crop (or mask) back into frame pixels, shape frame_shape[:2] (+channels)."""
    h, w = frame_shape[:2]
    return cv2.warpAffine(face, np.asarray(matrix, np.float64), (w, h),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)


def matrix_scale(matrix: np.ndarray) -> float:
    """Isotropic scale of a similarity matrix (crop pixels per frame pixel)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(matrix)[:, :2]))))


def matrix_angle(matrix: np.ndarray) -> float:
    """Rotation (degrees) of a similarity matrix; the face's roll is minus this."""
    m = np.asarray(matrix)
    return float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
