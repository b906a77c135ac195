"""Masks on planted landmarks: the template face placed in a 64 px canvas."""
import cv2
import numpy as np
import pytest

from doppel.faces import align
from doppel.faces import mask as masks

SIZE = 128


@pytest.fixture
def lm():
    return align.template_points(SIZE, 0.6)


def test_hull_covers_landmarks_and_forehead(lm):
    m = masks.hull(lm, SIZE)
    assert m.dtype == np.float32 and m.shape == (SIZE, SIZE) and set(np.unique(m)) <= {0.0, 1.0}
    inner = np.round(lm[27:]).astype(int)  # nose, eyes, mouth: well inside
    assert m[inner[:, 1], inner[:, 0]].all()
    jaw = np.round(lm[:17]).astype(int)  # on the hull's edge: within a pixel
    assert cv2.dilate(m, np.ones((3, 3)))[jaw[:, 1], jaw[:, 0]].all()
    brow_top = lm[17:27, 1].min()
    rows = np.nonzero(m.any(1))[0]
    assert rows.min() < brow_top - 0.1 * (lm[8, 1] - brow_top)  # raised above the brows
    assert rows.max() <= lm[:, 1].max() + 1


def test_rect_contains_hull_and_ellipse_is_inscribed(lm):
    r, h, e = masks.rect(lm, SIZE), masks.hull(lm, SIZE), masks.ellipse(lm, SIZE)
    assert (h <= r).all() and (e <= r + 1e-6).all()
    assert e.sum() == pytest.approx(np.pi / 4 * r.sum(), rel=0.05)


def test_erode_and_dilate_change_area(lm):
    base = masks.hull(lm, SIZE)
    assert masks.erode(base, 4).sum() < base.sum() < masks.erode(base, -4).sum()
    assert np.array_equal(masks.erode(base, 0), base)


def test_feather_is_a_blur_that_stays_local():
    m = np.zeros((64, 64), np.float32)
    m[20:44, 20:44] = 1
    f = masks.feather(m, 2.0)
    assert 0 < f[20, 32] < 1 and f[32, 32] == pytest.approx(1, abs=1e-3)
    assert f[:20 - 7].max() == 0 and f.min() >= 0  # nothing beyond 3 sigma
    ref = cv2.GaussianBlur(m, (13, 13), 2.0, borderType=cv2.BORDER_CONSTANT)
    assert np.allclose(f, ref, atol=1e-6)


def test_make_mask_scales_with_face_and_fades_at_canvas_edge(lm):
    cfg = masks.MaskConfig("hull", erode=0.0, feather=0.05)
    m = masks.make_mask(lm, SIZE, cfg)
    assert m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1
    assert max(m[0].max(), m[-1].max(), m[:, 0].max(), m[:, -1].max()) < 0.2  # faded out at the crop edge
    big = masks.make_mask(align.template_points(SIZE, 1.2), SIZE, cfg)  # a face larger than the canvas
    assert big[SIZE // 2, SIZE // 2] == pytest.approx(1, abs=1e-3) and big[0].max() < 0.2
    # the same face at twice the scale: the same mask at twice the scale
    m2 = masks.make_mask(lm * 2, SIZE * 2, cfg)
    assert m2.sum() / 4 == pytest.approx(m.sum(), rel=0.03)


def test_learned_mask_is_used_and_required(lm):
    learned = np.zeros((32, 32), np.float32)
    learned[8:24, 8:24] = 1
    m = masks.make_mask(lm, SIZE, masks.MaskConfig("learned", 0.0, 0.0), learned)
    assert m[SIZE // 2, SIZE // 2] == 1 and m[10, 10] == 0
    with pytest.raises(ValueError, match="learned"):
        masks.make_mask(lm, SIZE, masks.MaskConfig("learned"))
    with pytest.raises(ValueError, match="unknown mask"):
        masks.make_mask(lm, SIZE, masks.MaskConfig("star"))
    with pytest.raises(ValueError, match="68, 2"):
        masks.hull(lm[:10], SIZE)


def test_learned_mask_never_reaches_past_the_hull(lm):
    """An all-ones learned mask gives exactly the hull mask: the model decides inside the face only."""
    cfg = masks.MaskConfig("learned", 0.0, 0.05)
    m = masks.make_mask(lm, SIZE, cfg, np.ones((16, 16), np.float32))
    np.testing.assert_array_equal(m, masks.make_mask(lm, SIZE, masks.MaskConfig("hull", 0.0, 0.05)))
    half = masks.make_mask(lm, SIZE, masks.MaskConfig("learned", 0.0, 0.0), np.full((16, 16), 0.5, np.float32))
    assert set(np.unique(half)) == {0.0, 0.5}
