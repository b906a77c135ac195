"""Each cue on planted cases: a manipulated version must score higher than the real frame."""
import cv2
import numpy as np
import pytest

from doppel.detect import cues

from detect_helpers import shifted


def _hull(img, lm):
    return cues.hull_mask(lm, img.shape[:2]) > 0


def test_blurred_paste_raises_blur_and_hf_deficit(clip_frames):
    frames, lms = clip_frames
    img, lm = frames[1], lms[1]
    mask = _hull(img, lm)
    pasted = img.copy()
    pasted[mask] = cv2.GaussianBlur(img, (0, 0), 2.5)[mask]
    real, fake = cues.face_cues(img, lm), cues.face_cues(pasted, lm)
    assert fake["blur"] > real["blur"] + 0.5
    assert fake["hf_deficit"] > real["hf_deficit"] + 0.3


def test_colour_shifted_paste_raises_tone_step(clip_frames):
    frames, lms = clip_frames
    img, lm = frames[1], lms[1]
    fake = shifted(img, _hull(img, lm), (25, -5, -20))
    real_step, fake_step = cues.face_cues(img, lm)["tone_step"], cues.face_cues(fake, lm)["tone_step"]
    assert fake_step > real_step + 5  # Delta E units


def test_alternating_face_flickers_more_than_real_clip(clip_frames):
    frames, lms = clip_frames
    real = [cues.face_cues(frames[i], lms[i], frames[i - 1], lms[i - 1])["flicker"] for i in range(1, 6)]
    # every other frame shows a second version of the face (tinted, softer), as a per-frame swap might
    alt = [f.copy() for f in frames]
    for i in range(0, 6, 2):
        m = _hull(alt[i], lms[i])
        alt[i][m] = shifted(cv2.GaussianBlur(frames[i], (0, 0), 1.5), m, (12, 0, -8))[m]
    fake = [cues.face_cues(alt[i], lms[i], alt[i - 1], lms[i - 1])["flicker"] for i in range(1, 6)]
    assert np.mean(fake) > np.mean(real) + 0.3


def test_local_flicker_raises_occlusion_flicker(clip_frames):
    frames, lms = clip_frames
    real = cues.face_cues(frames[2], lms[2], frames[1], lms[1])["occlusion_flicker"]
    patched = frames[2].copy()
    side = int(0.12 * cues.face_scale(lms[2]))  # a blotch on one cheek, changing each frame
    x0, y0 = ((lms[2][2] + lms[2][30]) / 2).astype(int) - side // 2
    patched[y0:y0 + side, x0:x0 + side] = 255 - patched[y0:y0 + side, x0:x0 + side]
    fake = cues.face_cues(patched, lms[2], frames[1], lms[1])["occlusion_flicker"]
    assert fake > real + 0.3


def test_jitter_and_pose_grow_with_planted_landmark_errors(clip_frames):
    _, lms = clip_frames
    rng = np.random.default_rng(0)
    noisy = lms[1] + rng.normal(0, 3, lms[1].shape)
    assert cues.landmark_jitter(lms[0], noisy) > 2 * cues.landmark_jitter(lms[0], lms[1])
    moved = lms[1].copy()
    moved[cues.CENTRAL] += [8, 4]  # the inner face sits off the head
    assert cues.pose_mismatch(moved) > cues.pose_mismatch(lms[1]) + 1


def test_double_edge_on_synthetic_contours():
    img = np.full((160, 160, 3), 90, np.uint8)
    lm = cues.align.template_points(160, cues.WINDOW_COVERAGE)
    win = cues.Window(img, lm, np.eye(2, 3))
    single = img.copy()
    cv2.fillConvexPoly(single, cv2.convexHull(np.round(lm).astype(np.int32)), (200, 160, 140))
    double = single.copy()
    hull = cv2.convexHull(np.round(lm).astype(np.int32))
    c = lm.mean(0)
    outer = np.round((hull[:, 0] - c) * 1.08 + c).astype(np.int32)
    cv2.polylines(double, [outer], True, (230, 190, 170), 2)
    s1 = cues.double_edge(cues.Window(single, lm, win.matrix))
    s2 = cues.double_edge(cues.Window(double, lm, win.matrix))
    assert s2 > s1 + 0.2


def test_eye_aspect_ratio_and_blinks(clip_frames):
    _, lms = clip_frames
    open_ear = cues.eye_aspect_ratio(lms[0])
    closed = lms[0].copy()
    for eye in (slice(36, 42), slice(42, 48)):
        e = closed[eye]
        e[:, 1] = e[:, 1].mean()
    assert cues.eye_aspect_ratio(closed) < 0.05 < 0.15 < open_ear
    assert cues.count_blinks(np.array([0.3, 0.3, 0.1, 0.3, np.nan, 0.12, 0.3])) == 2


def test_region_masks_are_disjoint_bands(clip_frames):
    frames, lms = clip_frames
    win = cues.face_window(frames[0], lms[0])
    m = cues.region_masks(win.landmarks, win.image.shape[:2])
    assert not (m["inner"] & m["outer"]).any() and not (m["face"] & m["ring"]).any()
    assert m["face"].sum() > 0 and m["ring"].sum() > 0


def test_hf_share_of_noise_exceeds_smooth():
    rng = np.random.default_rng(1)
    noise = rng.random((32, 32))
    assert cues.hf_share(noise) > 5 * cues.hf_share(cv2.GaussianBlur(noise, (0, 0), 2))


def test_cues_reject_bad_landmarks(clip_frames):
    frames, _ = clip_frames
    with pytest.raises(ValueError):
        cues.face_cues(frames[0], np.zeros((5, 2)))


def test_blurred_lips_raise_mouth_blur_and_a_blurred_face_does_not(clip_frames):
    """The lip-sync tell: only the mouth re-drawn softer. Blurring the whole face (a cheap swap) softens
    the mouth and its surroundings alike, so mouth_blur must not rise the same way."""
    frames, lms = clip_frames
    img, lm = frames[1], lms[1]
    lips = cues.hull_mask(lm[48:60], img.shape[:2]) > 0
    soft_mouth, soft_face = img.copy(), img.copy()
    soft_mouth[lips] = cv2.GaussianBlur(img, (0, 0), 2.0)[lips]
    face = _hull(img, lm)
    soft_face[face] = cv2.GaussianBlur(img, (0, 0), 2.0)[face]
    real, mouth, whole = (cues.face_cues(x, lm)["mouth_blur"] for x in (img, soft_mouth, soft_face))
    assert mouth > real + 0.4  # measured: -0.77 real, -0.13 soft lips, -0.72 soft face (driving clip, frame 1)
    assert whole < mouth - 0.4


def test_every_cue_computed_is_named_once_and_the_fusion_takes_the_named_ones(clip_frames):
    """cues.CUES names every cue face_cues computes (the report's words); the fusion's features are the
    two models, cues.FUSED and the optional mouth CNN, so a cue added or renamed in one place cannot go missing
    in another."""
    from doppel.detect import scan
    frames, lms = clip_frames
    computed = cues.face_cues(frames[1], lms[1], frames[0], lms[0])
    assert set(computed) == set(cues.CUES)
    assert scan.FUSION_FEATURES == ["cnn", "fourier", *[c for c in cues.CUES if c not in cues.NOT_FUSED], "mouth_cnn"]
    assert all(np.isfinite(computed[c]) for c in cues.FUSED)  # with a previous frame every fused cue has a value
