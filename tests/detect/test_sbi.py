"""Training fakes: blends stay near the face, masks are soft and in range, seeds reproduce."""
import numpy as np

from doppel.detect import cues, dataset, sbi


def test_deformed_mask_is_soft_and_near_the_hull(clip_frames):
    frames, lms = clip_frames
    shape = frames[0].shape[:2]
    m = sbi.deformed_mask(lms[0], shape, np.random.default_rng(0))
    assert m.dtype == np.float32 and m.min() >= 0 and m.max() <= 1 and m.max() >= 0.5
    far = ~(cues.morph(cues.hull_mask(lms[0], shape), int(0.3 * cues.face_scale(lms[0])), True) > 0)
    assert m[far].max() < 0.01


def test_self_blend_changes_only_the_face_and_is_reproducible(clip_frames):
    frames, lms = clip_frames
    a = sbi.self_blend(frames[0], lms[0], np.random.default_rng(3))
    b = sbi.self_blend(frames[0], lms[0], np.random.default_rng(3))
    assert np.array_equal(a, b)
    diff = np.abs(a.astype(int) - frames[0]).sum(2) > 0
    hull = cues.hull_mask(lms[0], diff.shape) > 0
    assert diff[hull].mean() > 0.5 and diff[~hull].mean() < diff[hull].mean() / 3


def test_xray_blend_puts_the_donor_face_in(clip_frames, data_dir, monkeypatch):
    monkeypatch.setattr(sbi, "PART_SHARE", 0.0)  # a whole-face mask (a part shape changes only the mouth)
    frames, lms = clip_frames
    donor = dataset.faces_from_images([data_dir / "images" / "obama.jpg"], lambda p: p.stem)[0]
    fake = sbi.xray_blend(frames[0], lms[0], donor.image, donor.landmarks, np.random.default_rng(1))
    hull = cues.hull_mask(lms[0], fake.shape[:2]) > 0
    assert np.abs(fake.astype(int) - frames[0])[hull].mean() > 10
