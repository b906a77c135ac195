"""Reconstruction losses: pixel (L1 or MSE) plus DSSIM, optionally weighted on eyes and mouth.

Images are float32 (N, C, H, W) in [0, 1]; weight maps and masks (N, 1, H, W).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import PIXEL_LOSSES  # noqa: F401 (re-exported: PIXEL's names, light for the CLI)

SSIM_C1 = 0.01 ** 2  # Wang et al. 2004 constants for a dynamic range of 1
SSIM_C2 = 0.03 ** 2

PIXEL: dict[str, callable] = {  # keys: config.PIXEL_LOSSES
    "l1": lambda x, y: (x - y).abs(),
    "mse": lambda x, y: (x - y) ** 2,
}


@dataclass(frozen=True)
class LossConfig:
    pixel: str = "l1"  # pixel loss: a key of PIXEL
    dssim: float = 1.0  # weight of the DSSIM term beside the pixel term
    eye_mouth: float = 0.0  # extra weight on eye and mouth pixels (0: none; 2: three times the rest)
    mask: float = 1.0  # weight of the mask loss when the model draws a mask
    window: int = 11  # SSIM Gaussian window side
    sigma: float = 1.5  # SSIM Gaussian window s.d.


def gaussian_window(size: int = 11, sigma: float = 1.5, channels: int = 3) -> torch.Tensor:
    """Normalised 2-D Gaussian as a depthwise conv kernel (channels, 1, size, size)."""
    t = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM (N, C, H, W) with a Gaussian window and reflect padding."""
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two equal (N, C, H, W) tensors, got {tuple(x.shape)} and {tuple(y.shape)}")
    c, pad = x.shape[1], window.shape[-1] // 2
    w = window.to(x)

    def blur(t):
        return F.conv2d(F.pad(t, (pad,) * 4, mode="reflect"), w, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    return ((2 * mx * my + SSIM_C1) * (2 * cov + SSIM_C2)) / ((mx ** 2 + my ** 2 + SSIM_C1) * (vx + vy + SSIM_C2))


def ssim(x: torch.Tensor, y: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of each image pair, shape (N,)."""
    return ssim_map(x, y, gaussian_window(size, sigma, x.shape[1])).mean((1, 2, 3))


def weight_map(parts: torch.Tensor, extra: float) -> torch.Tensor:
    """1 everywhere plus `extra` on the eye/mouth map, scaled to mean 1 per image."""
    w = 1.0 + extra * parts
    return w / w.mean((1, 2, 3), keepdim=True)


def reconstruction_loss(pred: torch.Tensor, batch: dict[str, torch.Tensor], cfg: LossConfig,
                        window: torch.Tensor, pred_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scalar loss of one person's reconstruction against its augmented batch (make_batch's keys)."""
    target = batch["target"]
    w = weight_map(batch["parts"], cfg.eye_mouth) if cfg.eye_mouth else torch.ones_like(target[:, :1])
    loss = (PIXEL[cfg.pixel](pred, target) * w).mean()
    if cfg.dssim:
        loss = loss + cfg.dssim * ((1 - ssim_map(pred, target, window)) / 2 * w).mean()
    if pred_mask is not None and cfg.mask:
        loss = loss + cfg.mask * (pred_mask - batch["mask"]).abs().mean()
    return loss
