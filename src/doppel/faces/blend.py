"""Colour and tone matching, seamless cloning, sharpening and alpha compositing.

Images here are float32 (H, W, 3) RGB in [0, 1] unless a function says uint8;
masks are float32 (H, W) in [0, 1] and weight every statistic. A colour
transfer is split in two halves, `stats(image, mask) -> array` and
`apply(image, src_stats, dst_stats)`, so a video can smooth the statistics over
time (an exponential moving average) before applying them: the tone then does
not pump from frame to frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

EPS = 1e-6
BINS = 256  # histogram bins per channel for `hist`


def _check(image: np.ndarray, mask: np.ndarray | None = None) -> None:
    if image.dtype != np.float32 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) float32 RGB in [0, 1], got {image.shape} {image.dtype}")
    if mask is not None and mask.shape != image.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {image.shape[:2]}")


def _weights(mask: np.ndarray) -> np.ndarray:
    w = np.asarray(mask, np.float64).reshape(-1)
    return w / w.sum() if w.sum() > EPS else np.full_like(w, 1.0 / w.size)


def _mean_std(pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Weighted per-channel mean and std, (2, C)."""
    x = pixels.reshape(-1, pixels.shape[-1]).astype(np.float64)
    w = _weights(mask)[:, None]
    mean = (x * w).sum(0)
    std = np.sqrt(((x - mean) ** 2 * w).sum(0))
    return np.stack([mean, std])


def to_lab(image: np.ndarray) -> np.ndarray:
    """RGB float [0, 1] -> CIE Lab float32 (L in [0, 100], a/b about [-127, 127]) via OpenCV."""
    return cv2.cvtColor(np.clip(image, 0, 1).astype(np.float32), cv2.COLOR_RGB2Lab)


def from_lab(lab: np.ndarray) -> np.ndarray:
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB), 0, 1)


# --- colour transfers: stats + apply --------------------------------------

def none_stats(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.zeros(1)


def none_apply(image: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    return image


def avg_stats(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Weighted mean RGB, (3,)."""
    return _mean_std(image, mask)[0]


def avg_apply(image: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Shift the mean colour from `src` to `dst`."""
    return np.clip(image + (dst - src).astype(np.float32), 0, 1)


def reinhard_stats(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Weighted Lab mean and std, (2, 3)."""
    return _mean_std(to_lab(image), mask)


def reinhard_apply(image: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Reinhard et al. 2001 colour transfer: per Lab channel, (x - mean_s) / std_s * std_d + mean_d."""
    lab = to_lab(image).astype(np.float64)
    out = (lab - src[0]) / np.maximum(src[1], EPS) * dst[1] + dst[0]
    return from_lab(out)


def hist_stats(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Weighted per-channel histograms, (3, BINS), each summing to 1."""
    w = _weights(mask)
    idx = np.clip((image.reshape(-1, 3) * BINS).astype(np.int64), 0, BINS - 1)
    return np.stack([np.bincount(idx[:, c], w, BINS) for c in range(3)])


def hist_apply(image: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Histogram matching per channel: x -> dst_cdf^-1(src_cdf(x))."""
    centers = (np.arange(BINS) + 0.5) / BINS
    out = np.empty_like(image)
    for c in range(3):
        cs, cd = np.cumsum(src[c]), np.cumsum(dst[c])
        lut = np.interp(cs, cd, centers)
        out[..., c] = np.interp(image[..., c], centers, lut)
    return out.astype(np.float32)


@dataclass(frozen=True)
class ColorTransfer:
    stats: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (image, mask) -> statistics array
    apply: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (image, src stats, dst stats) -> image


COLOR: dict[str, ColorTransfer] = {  # keys: faces.options.COLORS
    "none": ColorTransfer(none_stats, none_apply),
    "avg": ColorTransfer(avg_stats, avg_apply),
    "reinhard": ColorTransfer(reinhard_stats, reinhard_apply),
    "hist": ColorTransfer(hist_stats, hist_apply),
}


def match_color(name: str, source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`source` recoloured so its statistics inside `mask` match `target`'s (same shapes)."""
    _check(source, mask)
    _check(target, mask)
    if name not in COLOR:
        raise ValueError(f"unknown colour transfer {name!r}; choose from {', '.join(COLOR)}")
    t = COLOR[name]
    return t.apply(source, t.stats(source, mask), t.stats(target, mask))


def ema(previous: np.ndarray | None, current: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average: weight is the share of the new value (1 = no smoothing)."""
    return current if previous is None else weight * current + (1 - weight) * previous


# --- the rest of the blend --------------------------------------------------

def sharpen(image: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    """Unsharp mask: image + amount * (image - blur(image, sigma)), clipped to [0, 1]."""
    _check(image)
    if amount <= 0:
        return image
    blur = cv2.GaussianBlur(image, (0, 0), sigma)
    return np.clip(image + amount * (image - blur), 0, 1).astype(np.float32)


def seamless(face: np.ndarray, frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson blending (cv2.seamlessClone, NORMAL_CLONE) of `face` into `frame` where mask > 0.5.

    face and frame are uint8 (H, W, 3) of the same shape; returns uint8. Pixels
    where the mask is 0 keep the frame's values after the caller's alpha blend.
    """
    binary = (mask > 0.5).astype(np.uint8) * 255
    binary[[0, -1], :] = 0
    binary[:, [0, -1]] = 0
    ys, xs = np.nonzero(binary)
    if ys.size < 9:
        return face
    # seamlessClone centres the mask's bounding box at `center`
    center = (int(xs.min() + (xs.max() - xs.min() + 1) // 2), int(ys.min() + (ys.max() - ys.min() + 1) // 2))
    return cv2.seamlessClone(face, frame, binary, center, cv2.NORMAL_CLONE)


def composite(frame: np.ndarray, face: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Alpha blend: frame * (1 - mask) + face * mask, uint8 (H, W, 3) in and out.

    Where the mask is 0 the frame's pixels come out unchanged, bit for bit.
    """
    if frame.shape != face.shape or frame.shape[:2] != mask.shape:
        raise ValueError(f"frame {frame.shape}, face {face.shape}, mask {mask.shape} differ")
    m = mask[..., None].astype(np.float32)
    out = frame.astype(np.float32) + m * (face.astype(np.float32) - frame.astype(np.float32))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
