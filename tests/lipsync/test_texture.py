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
