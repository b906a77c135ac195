"""Texture and compositing: weighted median, mask, pyramid blend, playback order."""
import numpy as np
import pytest

from doppel.lipsync import composite, texture


def test_weighted_median_of_identical_candidates_is_the_candidate():
    img = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    out = texture.weighted_median(np.stack([img] * 5), np.array([0.1, 3.0, 1.0, 0.5, 2.0]))
    assert out.dtype == np.uint8 and np.array_equal(out, img)


def test_weighted_median_follows_the_weights():
    rng = np.random.default_rng(1)
    cands = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    heavy = texture.weighted_median(cands, np.array([0.2, 5.0, 0.2]))
    assert np.array_equal(heavy, cands[1])  # one candidate holds over half the weight
    equal = texture.weighted_median(cands, np.ones(3))
    lum = cands.mean(3)
    middle = np.argsort(lum, axis=0)[1]  # the ordinary median by luminance, per pixel
    assert np.array_equal(equal, np.take_along_axis(cands, middle[None, :, :, None], 0)[0])


def test_weighted_median_rejects_mismatched_weights():
    with pytest.raises(ValueError):
        texture.weighted_median(np.zeros((3, 4, 4, 3), np.uint8), np.ones(2))


def test_shape_weights_fall_with_distance():
    w = texture.shape_weights(np.array([0.0, 0.01, 0.02, 0.05]))
    assert (np.diff(w) < 0).all() and w[0] == pytest.approx(1, abs=1e-5)


def test_align_candidate_moves_points_onto_target():
    crop = np.zeros((64, 64, 3), np.uint8)
    crop[30:34, 20:24] = 255  # a bright square at (21.5, 31.5)
    src = np.array([[20.0, 30], [40, 30], [30, 40]])
    out = texture.align_candidate(crop, src, src + [5, 3])
    ys, xs = np.nonzero(out[..., 0] > 128)
    assert abs(xs.mean() - 26.5) < 0.6 and abs(ys.mean() - 34.5) < 0.6


def test_lower_face_mask_is_feathered_and_below_the_nose():
    m = composite.lower_face_mask(128, 0.08)
    assert m.shape == (128, 128) and 0 <= m.min() and m.max() <= 1
    rows = np.nonzero(m.max(1) > 0.5)[0]
    assert rows.min() > 10 and m[:5].max() < 0.01  # nothing at the top edge (the nose stays)
    assert 0.05 < ((m > 0.01) & (m < 0.99)).mean()  # a soft edge, not a hard cut-out


def test_laplacian_blend_limits():
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 255, (48, 64, 3)).astype(np.float32)
    b = rng.uniform(0, 255, (48, 64, 3)).astype(np.float32)
    assert np.allclose(composite.laplacian_blend(a, b, np.zeros((48, 64)), 4), a, atol=1e-3)
    assert np.allclose(composite.laplacian_blend(a, b, np.ones((48, 64)), 4), b, atol=1e-3)


def _images(seed=4, shape=(96, 128, 3)):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 255, shape).astype(np.float32) for _ in range(2))


def test_laplacian_blend_of_equal_images_is_the_image_for_any_mask():
    a, _ = _images()
    m = np.random.default_rng(5).uniform(0, 1, a.shape[:2]).astype(np.float32)  # a partial, rough mask
    assert np.allclose(composite.laplacian_blend(a, a.copy(), m, 4), a, atol=1e-2)  # the pyramid rebuilds exactly


def test_laplacian_blend_with_a_smooth_mask_is_the_alpha_blend():
    """Reference: numpy alpha compositing a*(1-m) + b*m. A mask far smoother than the coarsest level
    looks the same at every level, so the pyramid sum telescopes to that alpha blend."""
    a, b = _images()
    x = np.linspace(-1, 1, a.shape[1], dtype=np.float32)
    m = np.broadcast_to(0.5 + 0.5 * np.sin(0.5 * np.pi * x), a.shape[:2]).astype(np.float32)  # 0.5 at centre
    ref = a * (1 - m[..., None]) + b * m[..., None]
    out = composite.laplacian_blend(a, b, m, 4)
    inner = (slice(8, -8), slice(8, -8))  # pyramid borders reflect
    assert np.abs(out - ref)[inner].mean() < 1.5 and np.abs(out - ref)[inner].max() < 12
    assert np.abs(out - a)[inner].mean() > 30  # not trivially a or b
    assert np.abs(out - b)[inner].mean() > 30


def test_laplacian_blend_spreads_coarse_detail_and_keeps_fine_detail_sharp():
    """A hard half/half mask: a flat dark image (a) beside a flat bright one carrying fine texture (b).
    The seam of the flat levels widens with the pyramid depth; b's texture stays unblurred inside."""
    h, w = 64, 128
    a = np.full((h, w, 3), 40, np.float32)
    texture = np.where((np.indices((h, w)).sum(0) % 2)[..., None], 30, -30).astype(np.float32)  # checkerboard
    b = np.full((h, w, 3), 200, np.float32) + texture
    m = np.zeros((h, w), np.float32)
    m[:, w // 2:] = 1
    widths = {}
    for levels in (0, 4):
        out = composite.laplacian_blend(a, b, m, levels)
        mean_row = out[h // 2, :, 0].reshape(-1, 2).mean(1)  # checkerboard averaged out, one value per 2 px
        widths[levels] = int(((mean_row > 56) & (mean_row < 184)).sum() * 2)  # 10-90% of the 40 -> 200 step
        assert np.all(np.diff(mean_row[8:-8]) > -2)  # a monotone seam, no ringing
        assert np.allclose(out[:, :8], 40, atol=1) and np.abs(out[:, -16:] - b[:, -16:]).max() < 2
    assert widths[0] <= 2 and widths[4] >= 8, widths  # a hard cut vs a wide, soft transition


def test_pingpong_playback_bounces():
    idx = composite.playback(12, 4)
    assert idx.tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1]


def test_retime_slows_playback_in_silence():
    speech = np.r_[np.ones(20, bool), np.zeros(40, bool), np.ones(20, bool)]
    idx = composite.playback(80, 1000, speech)
    steps = np.diff(idx)
    assert steps[25:55].sum() < 0.4 * 30 and steps[:15].sum() >= 14


def test_speech_frames_finds_the_pause():
    rate, fps = 16000, 25
    x = np.random.default_rng(3).normal(0, 0.1, rate * 3).astype(np.float32)
    x[rate:2 * rate] *= 1e-3
    talk = composite.speech_frames(x, rate, fps, 75)
    assert talk[:25].all() and not talk[26:49].any() and talk[51:].all()
