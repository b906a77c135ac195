"""The 68-point landmark map: the regions partition 0..67 as documented and sit where a face has them."""
import numpy as np
import pytest

from doppel.faces import align
from doppel.faces import landmarks as L


def test_regions_partition_the_68_points_in_order():
    joined = np.concatenate(list(L.REGIONS.values()))
    assert joined.tolist() == list(range(L.N_POINTS))


@pytest.mark.parametrize("whole, parts", [
    ("BROWS", ("RIGHT_BROW", "LEFT_BROW")),
    ("NOSE", ("NOSE_BRIDGE", "NOSE_BASE")),
    ("EYES", ("RIGHT_EYE", "LEFT_EYE")),
    ("MOUTH", ("OUTER_LIP", "INNER_LIP")),
    ("CENTRAL", ("NOSE", "EYES")),
    ("INNER_FACE", ("BROWS", "NOSE", "EYES", "MOUTH")),
])
def test_regions_split_into_their_documented_parts(whole, parts):
    assert np.concatenate([getattr(L, p) for p in parts]).tolist() == getattr(L, whole).tolist()


def test_documented_ranges():
    # the iBUG 300-W numbering, written out independently of the module
    assert (L.JAW[0], L.JAW[-1], L.CHIN) == (0, 16, 8)
    assert (L.RIGHT_EYE[0], L.LEFT_EYE[-1], L.OUTER_LIP[0], L.INNER_LIP[-1]) == (36, 47, 48, 67)
    assert L.LOWER_JAW.tolist() == list(range(3, 14)) and L.NOSE_BASE.tolist() == list(range(31, 36))
    assert (L.MOUTH[L.OUTER_LIP_IN_MOUTH] == L.OUTER_LIP).all()
    assert (L.MOUTH[L.INNER_LIP_IN_MOUTH] == L.INNER_LIP).all()


def test_regions_are_read_only():
    with pytest.raises(ValueError):
        L.MOUTH[0] = 0


def test_template_face_has_its_regions_in_place():
    tpl = align.template()  # the shipped mean face, x right, y down
    assert tpl[L.MOUTH, 1].min() > tpl[L.NOSE, 1].max()  # mouth below the nose
    assert tpl[L.NOSE, 1].min() > tpl[L.BROWS, 1].max()  # nose below the brows
    assert tpl[L.EYES, 1].min() > tpl[L.BROWS, 1].max()  # eyes below the brows
    assert tpl[L.EYES, 1].max() < tpl[L.NOSE_BASE, 1].min()  # eyes above the nostrils
    assert tpl[L.CHIN, 1] == tpl[:, 1].max()  # the chin is the lowest point
    # person's right eye is on the image's left
    assert tpl[L.RIGHT_EYE, 0].mean() < tpl[L.LEFT_EYE, 0].mean()
    assert tpl[L.RIGHT_BROW, 0].mean() < tpl[L.LEFT_BROW, 0].mean()
    # inner lip lies inside the outer lip's box
    lo, hi = tpl[L.OUTER_LIP].min(0), tpl[L.OUTER_LIP].max(0)
    assert ((tpl[L.INNER_LIP] > lo) & (tpl[L.INNER_LIP] < hi)).all()
