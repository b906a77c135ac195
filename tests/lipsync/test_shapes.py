"""Mouth shapes: pose removal, resampling, PCA round trip."""
import numpy as np
import pytest

from doppel.faces import align
from doppel.lipsync import shapes


def _similarity(points, angle, scale, shift):
    c, s = np.cos(angle), np.sin(angle)
    return scale * points @ np.array([[c, -s], [s, c]]).T + shift


def test_head_pose_is_removed():
    """The same face moved, rotated and scaled in the frame gives the same mouth shape."""
    face = align.template() * 200 + 50
    face[62:67, 1] -= 3  # an open mouth: inner lips apart
    moved = _similarity(face, 0.3, 1.7, np.array([120.0, -40.0]))
    a, b = shapes.mouth_shapes(np.stack([face, moved]))
    assert np.allclose(a, b, atol=1e-9)
    expected = align.template()[48:68].copy()
    expected[14:19, 1] -= 3 / 200  # pose removal maps the face back to template units
    assert np.allclose(a, expected, atol=1e-9)


def test_mouth_motion_is_kept():
    face = align.template() * 200
    opened = face.copy()
    opened[56:59, 1] += 10  # lower lip down
    opened[65:68, 1] += 10
    a, b = shapes.mouth_shapes(np.stack([face, opened]))
    assert shapes.mouth_opening(b[None])[0] > shapes.mouth_opening(a[None])[0] + 0.04


def test_resample_to_100hz_is_exact_on_a_linear_signal():
    times = np.arange(25) / 25.0
    values = np.stack([3 * times + 1, -times], axis=1)
    out = shapes.resample(times, values, 96, fps=100)
    t = np.arange(96) / 100
    assert out.shape == (96, 2) and np.allclose(out[:, 0], 3 * t + 1) and np.allclose(out[:, 1], -t)


def test_fill_missing_interpolates():
    v = np.array([[0.0], [np.nan], [np.nan], [3.0], [np.nan]])
    out = shapes.fill_missing(v, ~np.isnan(v[:, 0]))
    assert np.allclose(out[:, 0], [0, 1, 2, 3, 3])


@pytest.mark.parametrize("k", [5, 40])
def test_pca_round_trip(k):
    rng = np.random.default_rng(1)
    basis = rng.normal(size=(5, 40))
    x = rng.normal(size=(300, 5)) @ basis + rng.normal(size=40)  # planted rank 5 around a mean
    pca = shapes.MouthPCA.fit(x, k)
    coeffs = pca.encode(x)
    assert coeffs.shape == (300, k)
    assert np.allclose(pca.decode(coeffs), x, atol=1e-8)
    assert pca.explained(x) == pytest.approx(1.0)
    assert abs(coeffs.std() - 1) < 1e-9  # coefficients are scaled to unit spread


def test_pca_truncation_loses_the_small_directions():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 40)) * np.r_[10.0, 5.0, np.full(38, 0.1)]
    pca = shapes.MouthPCA.fit(x, 2)
    assert 0.98 < pca.explained(x) < 1.0
    assert np.abs(pca.decode(pca.encode(x)) - x).max() < 1.0 < np.abs(x).max()
