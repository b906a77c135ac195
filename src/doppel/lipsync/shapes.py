"""Mouth shapes: the 20 lip landmarks (48-67) with head pose removed, at 100 Hz, and their PCA.

Shapes live in template units: a similarity transform fitted on the stable
points (eyes and nose) maps each face onto doppel's mean-face template, whose
68-point box spans [0, 1]; the mouth is about 0.36 wide there. A shape array is
(N, 20, 2) float64, or flattened (N, 40) as [x0, y0, x1, y1, ...].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..faces import align
from ..faces.landmarks import CENTRAL, MOUTH

STABLE = CENTRAL  # nose bridge and base, both eyes: move little with speech
CORNERS = (0, 6)  # mouth corners 48 and 54, as indices into MOUTH
INNER_GAP = (14, 18)  # inner lip top 62 and bottom 66, as indices into MOUTH
N_POINTS = len(MOUTH)


def pose_matrix(landmarks: np.ndarray) -> np.ndarray:
    """3x3 similarity taking frame pixels to template units, fitted on STABLE points of (68, 2)."""
    return align.umeyama(landmarks[STABLE], align.template()[STABLE])


def mouth_shapes(landmarks: np.ndarray) -> np.ndarray:
    """Pose-free mouth shapes (N, 20, 2) in template units from landmarks (N, 68, 2) in pixels."""
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"expected (N, 68, 2) landmarks, got {lm.shape}")
    out = np.empty((len(lm), N_POINTS, 2))
    for i, pts in enumerate(lm):
        m = pose_matrix(pts)
        out[i] = pts[MOUTH] @ m[:2, :2].T + m[:2, 2]
    return out


def flat(shapes: np.ndarray) -> np.ndarray:
    """(N, 20, 2) -> (N, 40)."""
    return np.asarray(shapes).reshape(len(shapes), -1)


def unflat(vectors: np.ndarray) -> np.ndarray:
    """(N, 40) -> (N, 20, 2)."""
    return np.asarray(vectors).reshape(len(vectors), N_POINTS, 2)


def mouth_width(shapes: np.ndarray) -> np.ndarray:
    """Corner-to-corner width (N,) of shapes (N, 20, 2)."""
    a, b = CORNERS
    return np.linalg.norm(shapes[:, a] - shapes[:, b], axis=1)


def mouth_opening(shapes: np.ndarray) -> np.ndarray:
    """Inner-lip gap (N,) of shapes (N, 20, 2), in the shapes' units."""
    a, b = INNER_GAP
    return np.linalg.norm(shapes[:, a] - shapes[:, b], axis=1)


def fill_missing(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Linearly interpolate rows of (N, D) where `found` (N,) bool is False; ends are held."""
    found = np.asarray(found, bool)
    if found.all():
        return values
    if not found.any():
        raise ValueError("no valid rows to interpolate from")
    idx = np.arange(len(values))
    out = values.astype(np.float64).copy()
    for d in range(values.shape[1]):
        out[~found, d] = np.interp(idx[~found], idx[found], values[found, d])
    return out


def resample(times: np.ndarray, values: np.ndarray, count: int, fps: float = 100.0) -> np.ndarray:
    """Linear interpolation of (N, D) samples at `times` (N,) seconds onto t = k / fps, k < count."""
    t = np.arange(count) / fps
    return np.stack([np.interp(t, times, values[:, d]) for d in range(values.shape[1])], axis=1)


@dataclass(frozen=True)
class MouthPCA:
    mean: np.ndarray  # (40,) mean of the fitted shape vectors
    components: np.ndarray  # (K, 40) orthonormal principal directions, largest variance first
    scale: float  # std of the coefficients overall, so model targets are about unit size

    @classmethod
    def fit(cls, vectors: np.ndarray, k: int) -> "MouthPCA":
        """Fit on (N, 40) shape vectors keeping k components."""
        x = np.asarray(vectors, np.float64)
        mean = x.mean(0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        comps = vt[:k]
        coeffs = (x - mean) @ comps.T
        return cls(mean, comps, float(coeffs.std() + 1e-12))

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """(N, 40) -> scaled coefficients (N, K)."""
        return (np.asarray(vectors, np.float64) - self.mean) @ self.components.T / self.scale

    def decode(self, coeffs: np.ndarray) -> np.ndarray:
        """Scaled coefficients (N, K) -> (N, 40)."""
        return np.asarray(coeffs, np.float64) * self.scale @ self.components + self.mean

    def explained(self, vectors: np.ndarray) -> float:
        """Fraction of the variance of (N, 40) vectors that the components keep."""
        x = np.asarray(vectors, np.float64) - self.mean
        r = x - (x @ self.components.T) @ self.components
        return float(1 - (r ** 2).sum() / max((x ** 2).sum(), 1e-20))
