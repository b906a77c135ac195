"""Mouth texture for a predicted mouth shape, drawn from the target video's own frames.

Every frame of the target is warped into a canonical lower-face crop (pose
taken out on the eyes and nose). For a predicted shape, the `candidates`
frames whose mouths are nearest are aligned on their mouth points and combined
by a per-pixel weighted median (weights fall with shape distance), which keeps
sharp edges where a mean would ghost. Teeth (bright pixels inside the inner
lip) and then the whole crop are sharpened. The autoencoder variant instead
learns a small decoder from mouth shape to crop on the target's frames.
Crops are (S, S, 3) uint8 RGB; shapes are (40,) vectors in template units.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from torch import nn
from tqdm import tqdm

from ..faces import align
from . import shapes as S
from .footage import Footage

log = logging.getLogger(__name__)

CROP_CENTRE = np.array([0.52, 0.76])  # template point at the middle of the crop: mouth, a little below
CROP_SPAN = 0.9  # template units across the crop side: nose base to below the chin, jaw to jaw


@dataclass(frozen=True)
class TextureConfig:
    size: int = 128  # side of the canonical lower-face crop, pixels
    candidates: int = 8  # n nearest target frames combined per output frame
    teeth: float = 1.2  # unsharp-mask strength on bright pixels inside the inner lip
    sharpen: float = 0.5  # unsharp-mask strength over the whole crop
    pose_smooth: float = 1.0  # std (frames) of the temporal smoothing of crop matrices
    ae_steps: int = 400  # training steps of the autoencoder texture (~70 ms each on an idle 2-core CPU)
    ae_size: int = 64  # side of the autoencoder's output (upscaled to `size`)
    seed: int = 0  # seed of the autoencoder's training


def template_to_crop(size: int) -> np.ndarray:
    """3x3 matrix from template units to canonical crop pixels."""
    k = size / CROP_SPAN
    return np.array([[k, 0, size / 2 - k * CROP_CENTRE[0]], [0, k, size / 2 - k * CROP_CENTRE[1]], [0, 0, 1]])


def crop_matrices(landmarks: np.ndarray, size: int, smooth: float = 0.0) -> np.ndarray:
    """(N, 2, 3) frame -> crop matrices of landmarks (N, 68, 2), optionally smoothed over time."""
    t = template_to_crop(size)
    mats = np.stack([(t @ S.pose_matrix(lm))[:2] for lm in landmarks])
    return gaussian_filter1d(mats, smooth, axis=0, mode="nearest") if smooth > 0 and len(mats) > 1 else mats


def shape_to_crop(vector: np.ndarray, size: int) -> np.ndarray:
    """(40,) shape in template units -> (20, 2) crop pixels."""
    m = template_to_crop(size)
    return vector.reshape(-1, 2) @ m[:2, :2].T + m[:2, 2]


@dataclass
class Target:
    crops: np.ndarray  # (N, S, S, 3) uint8 canonical lower-face crops of every frame
    shapes: np.ndarray  # (N, 40) mouth shapes in template units
    matrices: np.ndarray  # (N, 2, 3) frame -> crop, smoothed over time
    found: np.ndarray  # (N,) bool: the frame has a tracked face
    mean: np.ndarray  # (40,) the target speaker's mean mouth shape


def prepare(foot: Footage, cfg: TextureConfig = TextureConfig()) -> Target:
    """Canonical crops and mouth shapes of every frame of a target video (frames kept)."""
    if foot.frames is None:
        raise ValueError("footage was loaded without frames")
    mats = crop_matrices(foot.landmarks, cfg.size, cfg.pose_smooth)
    crops = np.stack([align.crop(f, m, cfg.size) for f, m in zip(foot.frames, mats)])
    vec = S.flat(S.mouth_shapes(foot.landmarks))
    return Target(crops, vec, mats, foot.found, vec[foot.found].mean(0))


def weighted_median(cands: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-pixel weighted median of candidates (n, H, W, C) uint8/float with weights (n,) >= 0.

    Pixels are ordered by luminance (channel mean) and whole colours are picked,
    so the result never mixes channels of different candidates. Same dtype out.
    """
    if cands.ndim != 4 or len(weights) != len(cands):
        raise ValueError(f"expected (n, H, W, C) candidates and n weights, got {cands.shape}, {np.shape(weights)}")
    w = np.asarray(weights, np.float64)
    order = np.argsort(cands.mean(axis=3), axis=0, kind="stable")  # (n, H, W)
    cum = np.cumsum(w[order], axis=0)
    pick = (cum < 0.5 * w.sum()).sum(axis=0)  # first index whose cumulative weight reaches half
    idx = np.take_along_axis(order, pick[None], axis=0)[0]  # (H, W) candidate per pixel
    return np.take_along_axis(cands, idx[None, :, :, None], axis=0)[0]


def shape_weights(dists: np.ndarray) -> np.ndarray:
    """Gaussian weights (n,) of shape distances (n,), width set by the spread of the nearest ones."""
    sigma = max(float(np.median(dists)), 1e-6)
    return np.exp(-0.5 * (dists / sigma) ** 2) + 1e-6


def align_candidate(crop: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Warp a crop (S, S, 3) by the least-squares affine taking mouth points src (20, 2) onto dst."""
    a = np.c_[src, np.ones(len(src))]
    m, *_ = np.linalg.lstsq(a, dst, rcond=None)
    size = crop.shape[1], crop.shape[0]
    return cv2.warpAffine(crop, m.T, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def unsharp(image: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    """Unsharp mask of (H, W, 3) float32 0-255: image + amount * (image - blur)."""
    return image + amount * (image - cv2.GaussianBlur(image, (0, 0), sigma))


def enhance(tex: np.ndarray, shape_px: np.ndarray, cfg: TextureConfig) -> np.ndarray:
    """Teeth enhancement then overall sharpening of a crop (S, S, 3) uint8; shape_px (20, 2) crop pixels."""
    img = tex.astype(np.float32)
    inner = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(shape_px[12:]).astype(np.int32)], 1)
    lum = img.mean(2)
    if inner.sum() > 4:
        bright = (inner > 0) & (lum > np.percentile(lum[inner > 0], 50))
        soft = cv2.GaussianBlur(bright.astype(np.float32), (0, 0), 1.0)[..., None]
        img = img + soft * (unsharp(img, cfg.teeth) - img)
    img = unsharp(img, cfg.sharpen)
    return np.clip(img, 0, 255).astype(np.uint8)


class MedianTexture:
    """Candidate-frame weighted-median texture (the paper's method)."""

    def __init__(self, target: Target, cfg: TextureConfig = TextureConfig()):
        self.t, self.cfg = target, cfg
        self.pool = np.flatnonzero(target.found)

    def __call__(self, shape: np.ndarray) -> np.ndarray:
        """Crop (S, S, 3) uint8 whose mouth has `shape` (40,) in template units."""
        d = np.linalg.norm(self.t.shapes[self.pool] - shape, axis=1)
        near = np.argsort(d)[: self.cfg.candidates]
        dst = shape_to_crop(shape, self.cfg.size)
        cands = np.stack([align_candidate(self.t.crops[self.pool[j]], shape_to_crop(self.t.shapes[self.pool[j]],
                                          self.cfg.size), dst) for j in near])
        return enhance(weighted_median(cands, shape_weights(d[near])), dst, self.cfg)


class MouthDecoder(nn.Module):
    """Mouth shape (B, 40) normalised -> crop (B, 3, s, s) in [0, 1]; s = 4 * 2**ups, channels halve per step."""

    def __init__(self, size: int = 64, width: int = 128):
        super().__init__()
        ups = int(np.log2(size // 4))
        self.fc = nn.Sequential(nn.Linear(2 * S.N_POINTS, 256), nn.ReLU(), nn.Linear(256, width * 16), nn.ReLU())
        layers: list[nn.Module] = []
        c = width
        for _ in range(ups):
            layers += [nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(c, max(c // 2, 8), 3, padding=1),
                       nn.ReLU()]
            c = max(c // 2, 8)
        self.conv = nn.Sequential(*layers, nn.Conv2d(c, 3, 3, padding=1), nn.Sigmoid())
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.fc(x).view(len(x), self.width, 4, 4))


class AutoencoderTexture:
    """A decoder trained on the target's (shape, crop) pairs draws the crop from the shape alone."""

    def __init__(self, target: Target, cfg: TextureConfig = TextureConfig()):
        self.t, self.cfg = target, cfg
        pool = np.flatnonzero(target.found)
        self.scale = float((target.shapes[pool] - target.mean).std() + 1e-9)
        self.net = self._train(target.shapes[pool], target.crops[pool])

    def _input(self, vecs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((np.atleast_2d(vecs) - self.t.mean) / self.scale).float()

    def _train(self, vecs: np.ndarray, crops: np.ndarray) -> MouthDecoder:
        torch.manual_seed(self.cfg.seed)
        s = self.cfg.ae_size
        small = np.stack([cv2.resize(c, (s, s), interpolation=cv2.INTER_AREA) for c in crops])
        y = torch.from_numpy(small).permute(0, 3, 1, 2).float() / 255
        x = self._input(vecs)
        net = MouthDecoder(s)
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        rng = np.random.default_rng(self.cfg.seed)
        for _ in tqdm(range(self.cfg.ae_steps), desc="texture decoder", unit="step", leave=False):
            b = rng.integers(len(x), size=min(16, len(x)))
            loss = (net(x[b]) - y[b]).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        log.info("texture decoder: L1 %.4f after %d steps", loss.item(), self.cfg.ae_steps)
        return net.eval()

    @torch.no_grad()
    def __call__(self, shape: np.ndarray) -> np.ndarray:
        """Crop (S, S, 3) uint8 drawn for `shape` (40,) in template units."""
        img = (self.net(self._input(shape))[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        img = cv2.resize(img, (self.cfg.size, self.cfg.size), interpolation=cv2.INTER_CUBIC)
        return enhance(img, shape_to_crop(shape, self.cfg.size), self.cfg)


TEXTURES = {"median": MedianTexture, "autoencoder": AutoencoderTexture}
