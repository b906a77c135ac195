"""SSIM against a scipy reference, and the loss terms."""
import numpy as np
import torch
from scipy import ndimage

from doppel.swap import losses


def ssim_reference(x, y, sigma=1.5):
    """Wang et al. SSIM with scipy.ndimage.gaussian_filter (mirror edges, radius 5 = an 11-tap window)."""
    f = lambda a: ndimage.gaussian_filter(a, sigma, mode="mirror", truncate=5 / sigma)
    mx, my = f(x), f(y)
    vx, vy, cov = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    c1, c2 = losses.SSIM_C1, losses.SSIM_C2
    return (((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))).mean()


def test_ssim_matches_scipy_reference():
    rng = np.random.default_rng(0)
    x = ndimage.gaussian_filter(rng.random((40, 48)), 2)
    y = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)
    t = lambda a: torch.tensor(a, dtype=torch.float32)[None, None]
    got = losses.ssim(t(x), t(y))
    assert abs(got.item() - ssim_reference(x, y)) < 1e-4
    same = losses.ssim(t(x), t(x))
    assert abs(same.item() - 1) < 1e-5
    assert got.item() < 0.95


def _batch(target, parts):
    return {"target": target, "parts": parts, "mask": parts}


def test_eye_mouth_weight_focuses_the_loss():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 32, 32)
    parts = torch.zeros(2, 1, 32, 32)
    parts[..., 8:14, 8:14] = 1
    pred_eye_err = target.clone()
    pred_eye_err[..., 8:14, 8:14] += 0.2
    pred_bg_err = target.clone()
    pred_bg_err[..., 20:26, 20:26] += 0.2
    w = losses.gaussian_window()
    plain = losses.LossConfig(eye_mouth=0.0, dssim=0.0)
    weighted = losses.LossConfig(eye_mouth=4.0, dssim=0.0)
    b = _batch(target, parts)
    a0, b0 = (losses.reconstruction_loss(p, b, plain, w).item() for p in (pred_eye_err, pred_bg_err))
    a1, b1 = (losses.reconstruction_loss(p, b, weighted, w).item() for p in (pred_eye_err, pred_bg_err))
    assert abs(a0 - b0) < 1e-6
    assert a1 > 2 * b1


def test_mask_loss_only_with_a_mask():
    target = torch.rand(1, 3, 16, 16)
    parts = torch.zeros(1, 1, 16, 16)
    cfg, w = losses.LossConfig(), losses.gaussian_window()
    base = losses.reconstruction_loss(target, _batch(target, parts), cfg, w)
    with_mask = losses.reconstruction_loss(target, _batch(target, parts), cfg, w, torch.ones(1, 1, 16, 16))
    assert base.item() < 1e-4 and abs(with_mask.item() - 1.0) < 1e-4
    mse = losses.reconstruction_loss(target * 0 + 0.5, _batch(target, parts), losses.LossConfig("mse", 0.0), w)
    assert abs(mse.item() - ((target - 0.5) ** 2).mean().item()) < 1e-6
