"""The face finder cascade on planted scenes: small, dark and turned faces; bad frames; shared flags."""
import argparse

import cv2
import numpy as np
import pytest

from doppel import media
from doppel.errors import DoppelError
from doppel.faces import finder

WIDTHS = (30, 56)  # planted 68-point box widths, px: both invisible to the old 384 px finder in 720p


def _plant(canvas, photo, width, at):
    """Paste the face of `photo` so its 68-point box is `width` px wide at `at`; returns that box."""
    lm = finder.find_faces(photo, finder.DetectConfig(min_face=0))[0].landmarks
    x0, y0, x1, y1 = finder.landmarks_box(lm)
    s = width / (x1 - x0)
    m = 0.4 * (x1 - x0)
    crop = photo[int(y0 - m):int(y1 + m), int(x0 - m):int(x1 + m)]
    crop = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    ox, oy = at[0] - round(m * s), at[1] - round(m * s)
    canvas[oy:oy + crop.shape[0], ox:ox + crop.shape[1]] = crop
    return np.array([at[0], at[1], at[0] + width, at[1] + (y1 - y0) * s])


@pytest.fixture(scope="module")
def scene(data_dir):
    """A 1280x720 frame (a real background, scaled up) with two small real faces, and their boxes."""
    frame = next(media.iter_frames(data_dir / "video" / "source_s32.mp4")).image
    canvas = np.ascontiguousarray(cv2.resize(frame[:240, :320], (1280, 720), interpolation=cv2.INTER_CUBIC))
    photos = [media.read_image(data_dir / "images" / n) for n in ("obama.jpg", "biden.jpg")]
    boxes = [_plant(canvas, p, w, at) for p, w, at in zip(photos, WIDTHS, [(300, 300), (900, 400)])]
    return canvas, boxes


def _found(faces, boxes):
    """For each planted box: does a found face's landmark box overlap it (IoU >= 0.3)?"""
    return [any(finder.iou(b, finder.landmarks_box(f.landmarks)) >= 0.3 for f in faces) for b in boxes]


def test_small_faces_found_by_default_missed_by_the_old_finder(scene):
    image, boxes = scene
    assert _found(finder.find_faces(image), boxes) == [True, True]
    assert _found(finder.find_faces(image, finder.OLD_FINDER), boxes) == [False, False]


def test_dark_scene_is_found(scene):
    image, boxes = scene
    dark = cv2.LUT(image, np.round(255 * (np.arange(256) / 255) ** 2.5).astype(np.uint8))
    assert dark.mean() < 40
    assert _found(finder.find_faces(dark), boxes) == [True, True]


@pytest.mark.parametrize("k", [1, 3])
def test_sideways_faces_are_found_and_landmarks_map_back(scene, k):
    image, boxes = scene
    upright = finder.find_faces(image)
    turned = np.ascontiguousarray(np.rot90(image, k))
    faces = finder.find_faces(turned)
    assert len(faces) == len(upright) and all(f.turn == (-k) % 4 for f in faces)
    assert not finder.find_faces(turned, finder.DetectConfig(turns=False))
    for f in faces:  # back in upright coordinates, the landmarks sit on the upright fit
        back = finder.turn_points(f.landmarks, -k, turned.shape)
        err = min(np.abs(back - u.landmarks).mean() for u in upright)
        assert err < 1.5


def test_tracker_follows_a_sideways_face(data_dir):
    frames = media.read_frames(data_dir / "talking" / "retalking_face_5.mp4", step=2)[:4]
    tracker = finder.FaceTracker()
    out = [tracker(np.ascontiguousarray(np.rot90(f.image, 1))) for f in frames]
    assert all(len(faces) == 1 and faces[0].turn == 3 for faces in out)
    assert out[-1][0].tracked
    ref = finder.find_faces(frames[-1].image)[0]
    back = finder.turn_points(out[-1][0].landmarks, -1, frames[-1].image.shape[:2][::-1])
    assert np.abs(back - ref.landmarks).mean() < 3.0


def test_turn_points_match_numpy_rot90():
    img = np.zeros((5, 8), np.uint8)
    img[1, 6] = 1  # (x, y) = (6, 1)
    for k in range(4):
        turned = np.rot90(img, k)
        y, x = np.argwhere(turned)[0]
        assert finder.turn_points([[6, 1]], k, img.shape)[0].tolist() == [x, y]
        assert finder.turn_points([[x, y]], -k, turned.shape)[0].tolist() == [6, 1]
    lm = np.random.default_rng(0).uniform(0, 100, (68, 2))
    box = finder.box_from_landmarks(lm)
    turned = finder.box_from_landmarks(finder.turn_points(lm, 1, (100, 100)), 3)
    assert np.allclose(finder.turn_box(turned, -1, (100, 100)), box)


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 7, 3), (16, 16000, 3), (16000, 16, 3)])
def test_odd_frame_sizes_give_no_face(shape):
    image = np.full(shape, 128, np.uint8)
    assert finder.find_faces(image) == []
    assert finder.FaceTracker()(image) == []


@pytest.mark.parametrize("image", [np.zeros((40, 40), np.uint8), np.zeros((40, 40, 4), np.uint8),
                                   np.zeros((40, 40, 3), np.uint16)])
def test_grey_rgba_and_16_bit_arrays_are_a_clear_error(image):
    with pytest.raises(ValueError, match=str(image.shape)):
        finder.find_faces(image)


def _parser(module):
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p


def test_every_command_has_the_same_face_finder_flags():
    from doppel import extract
    from doppel.detect import cli as detect_cli
    from doppel.lipsync import cli as lipsync_cli
    from doppel.swap import convert
    reference = _parser(extract)._option_string_actions
    flags = ["--detector", "--detect-size", "--min-face", "--no-turns", "--dark", "--redetect-every", "--deep-every"]
    for module in (convert, lipsync_cli, detect_cli):
        actions = _parser(module)._option_string_actions
        for flag in flags:
            assert flag in actions, f"{module.__name__} lacks {flag}"
            assert actions[flag].default == reference[flag].default and actions[flag].help == reference[flag].help
    args = _parser(extract).parse_args(["x", "-o", "y", "--min-face", "40", "--no-turns", "--detect-size", "512"])
    assert finder.detect_config(args) == finder.DetectConfig(min_face=40, turns=False, detect_size=512)


@pytest.mark.parametrize("flags", [["--min-face", "5"], ["--detect-size", "0"], ["--redetect-every", "0"],
                                   ["--dark", "300"], ["--deep-every", "-1"]])
def test_bad_face_finder_flags_are_one_line_errors(flags):
    from doppel import extract
    with pytest.raises(DoppelError, match="^--"):
        finder.detect_config(_parser(extract).parse_args(["x", "-o", "y", *flags]))


@pytest.mark.slow
def test_every_sample_video_has_a_face_in_every_frame(data_dir):
    """Every video in ../shared/data shows a person's face throughout: the tracker must find one each frame."""
    clips = sorted((data_dir / "talking").glob("*.mp4")) + sorted((data_dir / "video").glob("*.mp4")) \
        + sorted((data_dir / "deepfake").glob("*.mp4"))
    for clip in clips:
        tracker = finder.FaceTracker()
        missed = [f.index for f in media.iter_frames(clip) if not tracker(f.image)]
        assert not missed, f"{clip.name}: no face in {len(missed)} frames, first {missed[:5]}"


def test_extra_fields_win_over_flags_of_the_same_name():
    """swap passes its --cut as an extra field; the namespace holds `cut` too."""
    cfg = finder.detect_config(argparse.Namespace(cut=5.0, min_face=30), cut=7.0)
    assert (cfg.cut, cfg.min_face, cfg.detect_size) == (7.0, 30, finder.DetectConfig().detect_size)
