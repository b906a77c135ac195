"""Colour transfers, sharpening, seamless cloning and compositing on planted arrays."""
import cv2
import numpy as np
import pytest

from doppel.faces import blend


@pytest.fixture
def patches():
    rng = np.random.default_rng(1)
    src = np.clip(rng.normal([0.3, 0.5, 0.2], [0.05, 0.1, 0.08], (48, 48, 3)), 0, 1).astype(np.float32)
    dst = np.clip(rng.normal([0.7, 0.45, 0.4], [0.1, 0.04, 0.06], (48, 48, 3)), 0, 1).astype(np.float32)
    mask = np.zeros((48, 48), np.float32)
    mask[8:40, 8:40] = 1
    # outside the mask the target is wildly different: it must not count
    dst[~mask.astype(bool)] = [0.0, 1.0, 0.0]
    return src, dst, mask


def _lab_stats(img, mask):
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2Lab)[mask > 0]
    return lab.mean(0), lab.std(0)


def test_reinhard_maps_lab_mean_and_std(patches):
    src, dst, mask = patches
    out = blend.match_color("reinhard", src, dst, mask)
    (mo, so), (md, sd), (ms, _) = _lab_stats(out, mask), _lab_stats(dst, mask), _lab_stats(src, mask)
    assert np.abs(mo - md).max() < 1.0 and np.abs(mo - ms).max() > 10
    assert np.allclose(so, sd, rtol=0.1, atol=0.5)


def test_avg_matches_mean_colour_only(patches):
    src, dst, mask = patches
    out = blend.match_color("avg", src, dst, mask)
    sel = mask > 0
    assert np.allclose(out[sel].mean(0), dst[sel].mean(0), atol=0.01)
    assert np.allclose(out[sel].std(0), src[sel].std(0), atol=0.01)  # spread untouched


def test_hist_matches_quantiles(patches):
    src, dst, mask = patches
    out = blend.match_color("hist", src, dst, mask)
    sel = mask > 0
    q = [0.1, 0.5, 0.9]
    for c in range(3):
        assert np.allclose(np.quantile(out[sel][:, c], q), np.quantile(dst[sel][:, c], q), atol=0.02)


def test_none_and_bad_input(patches):
    src, dst, mask = patches
    assert np.array_equal(blend.match_color("none", src, dst, mask), src)
    with pytest.raises(ValueError, match="unknown colour"):
        blend.match_color("sepia", src, dst, mask)
    with pytest.raises(ValueError, match="float32"):
        blend.match_color("avg", (src * 255).astype(np.uint8), dst, mask)


def test_ema_smooths_statistics():
    a, b = np.zeros(3), np.ones(3)
    assert np.array_equal(blend.ema(None, b, 0.3), b)
    assert np.allclose(blend.ema(a, b, 0.3), 0.3)
    assert np.array_equal(blend.ema(a, b, 1.0), b)


def test_sharpen_is_unsharp_mask():
    img = np.zeros((32, 32, 3), np.float32) + 0.2
    img[:, 16:] = 0.6
    out = blend.sharpen(img, 1.0, sigma=1.5)
    ref = np.clip(img + (img - cv2.GaussianBlur(img, (0, 0), 1.5)), 0, 1)
    assert np.allclose(out, ref, atol=1e-6)
    assert out[5, 15, 0] < 0.2 and out[5, 16, 0] > 0.6  # overshoot on both sides of the edge
    assert np.array_equal(blend.sharpen(img, 0.0), img)


def test_composite_exact_outside_mask():
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    face = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    mask = np.zeros((40, 40), np.float32)
    mask[10:20, 10:20] = 1
    mask[25:30, 25:30] = 0.5
    out = blend.composite(frame, face, mask)
    assert np.array_equal(out[mask == 0], frame[mask == 0])
    assert np.array_equal(out[mask == 1], face[mask == 1])
    half = np.rint((frame[27, 27].astype(float) + face[27, 27]) / 2)
    assert np.abs(out[27, 27] - half).max() <= 1


def test_seamless_takes_gradients_from_face_and_level_from_frame():
    frame = np.full((80, 80, 3), 60, np.uint8)
    face = np.full((80, 80, 3), 200, np.uint8)
    face[:, 40:] = 220  # a 20-level step inside the face
    mask = np.zeros((80, 80), np.float32)
    mask[20:60, 20:60] = 1
    out = blend.seamless(face, frame, mask).astype(int)
    assert np.array_equal(out[:15], frame[:15])  # far outside: frame
    inside = out[40, 25:55, 0]
    assert abs(inside.mean() - 60) < 20  # level comes from the frame, not the face's 200
    assert inside[-5:].mean() - inside[:5].mean() > 5  # the face's step survives
