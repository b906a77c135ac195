"""Alignment: Umeyama on planted transforms, crop geometry, crop/uncrop round trip."""
import cv2
import numpy as np
import pytest

from doppel.faces import align


def similarity(scale, degrees, tx, ty):
    a = np.radians(degrees)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


@pytest.mark.parametrize("scale,degrees,tx,ty", [(1.0, 0, 0, 0), (0.3, 17, 40, -5), (2.5, -120, -300, 80)])
def test_umeyama_recovers_a_planted_similarity(scale, degrees, tx, ty):
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 500, (68, 2))
    m = similarity(scale, degrees, tx, ty)
    dst = align.transform_points(src, m)
    got = align.umeyama(src, dst)[:2]
    np.testing.assert_allclose(got, m, atol=1e-9)
    assert align.matrix_scale(got) == pytest.approx(scale)
    assert align.matrix_angle(got) == pytest.approx(degrees)
    noisy = align.umeyama(src, dst + rng.normal(0, 0.5, dst.shape))[:2]
    assert align.matrix_angle(noisy) == pytest.approx(degrees, abs=0.5)


def test_umeyama_never_returns_a_reflection():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 1, (20, 2))
    mirrored = src * [-1, 1]
    assert np.linalg.det(align.umeyama(src, mirrored)[:2, :2]) > 0


def test_umeyama_rejects_mismatched_points():
    with pytest.raises(ValueError, match="point sets"):
        align.umeyama(np.zeros((5, 2)), np.zeros((6, 2)))


def test_template_maps_onto_itself():
    tpl = align.template()
    assert tpl.shape == (68, 2) and tpl.min() >= 0 and tpl.max() <= 1
    pts = align.template_points(128, 0.8)
    m = align.align_matrix(pts, 128, 0.8)
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-9)


@pytest.mark.parametrize("scale", [0.1, 0.2, 0.45, 0.8, 1.5])
def test_crop_puts_a_frame_point_where_the_matrix_says(scale):
    """A bright dot at a known frame position lands at M @ p in the crop (centroid within 0.2 px)."""
    p = np.array([700.3, 810.7])
    ys, xs = np.mgrid[:1600, :1600]
    blob = 255 * np.exp(-((xs - p[0]) ** 2 + (ys - p[1]) ** 2) / (2 * (3 / scale) ** 2))
    image = np.repeat(blob.round().astype(np.uint8)[..., None], 3, 2)
    m = similarity(scale, 17, 0, 0)
    m[:, 2] = 32 - m[:, :2] @ p
    c = align.crop(image, m, 64)[..., 0].astype(float)
    ys, xs = np.mgrid[:64, :64]
    w = c / c.sum()
    assert (w * xs).sum() == pytest.approx(32, abs=0.2) and (w * ys).sum() == pytest.approx(32, abs=0.2)


def test_uncrop_inverts_crop_inside_the_face():
    rng = np.random.default_rng(2)
    image = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), (0, 0), 3)
    m = similarity(1.2, 10, -100, -50)
    face = align.crop(image, m, 128)
    back = align.uncrop(face, m, image.shape)
    inside = align.uncrop(np.full((128, 128), 255, np.uint8), m, image.shape)
    inside = cv2.erode(inside, np.ones((5, 5), np.uint8)) > 0
    assert np.abs(back[inside].astype(int) - image[inside]).mean() < 3
