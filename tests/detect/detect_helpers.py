"""Helpers for the detector tests (a uniquely named module: tests/ has no packages)."""
import numpy as np

from doppel.detect import detectors, scan


def blank_detectors(seed: int = 0) -> detectors.Detectors:
    """Untrained CNN, zero Fourier model, fusion = CNN logit + tone step, identity calibration."""
    import torch
    torch.manual_seed(seed)
    n = len(scan.FUSION_FEATURES)
    coef = [1.0 if k in ("cnn", "tone_step") else 0.0 for k in scan.FUSION_FEATURES]
    fusion = detectors.Linear(scan.FUSION_FEATURES, [0.0] * n, [1.0] * n, coef, 0.0)
    fourier = detectors.Linear([f"r{k}" for k in range(32)], [0.0] * 32, [1.0] * 32, [0.0] * 32, 0.0)
    return detectors.Detectors(detectors.FaceCNN(), fourier, fusion, detectors.Platt(1.0, 0.0), {"version": "test"})


def shifted(image: np.ndarray, mask: np.ndarray, rgb) -> np.ndarray:
    out = image.astype(np.int32)
    out[mask] += np.array(rgb)
    return np.clip(out, 0, 255).astype(np.uint8)
