"""Landmarks land on the face: a planted rotation is recovered, and eyes agree with a second model."""
import cv2
import numpy as np
import pytest

from doppel import media
from doppel.faces import align, finder


@pytest.mark.parametrize("photo", ["obama.jpg", "people_0.png"])
@pytest.mark.parametrize("angle", [-25.0, 12.0])
def test_planted_rotation_is_recovered_within_2_degrees(data_dir, photo, angle):
    image = media.read_image(data_dir / "images" / photo)
    face = finder.find_faces(image)[0]
    h, w = image.shape[:2]
    centre = tuple(face.landmarks.mean(0))
    rot = cv2.getRotationMatrix2D(centre, angle, 1.0)  # positive angle: counter-clockwise on screen
    turned = cv2.warpAffine(image, rot, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    faces = finder.find_faces(turned, finder.DetectConfig(upsample=1))
    assert faces, "the rotated face was not found"
    before = align.matrix_angle(align.align_matrix(face.landmarks))
    after = align.matrix_angle(align.align_matrix(faces[0].landmarks))
    # the crop undoes the face's rotation, so its matrix turns by the planted angle
    assert after - before == pytest.approx(angle, abs=2.0)


def test_eye_centres_match_the_five_point_models_eye_corners(data_dir):
    """On frames of every talking clip, 68-point eye centres sit between the 5-point eye corners."""
    for clip in sorted((data_dir / "talking").glob("*.mp4")):
        for frame in media.iter_frames(clip, step=40):
            faces = finder.find_faces(frame.image, deep="if-none")  # big faces: the fast pass is enough
            assert faces, f"no face in {clip.name} frame {frame.index}"
            lm = faces[0].landmarks
            five = finder.landmarks5(frame.image, faces[0].box)
            iod = np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))
            for eye68, corners in ((lm[42:48], five[0:2]), (lm[36:42], five[2:4])):
                err = np.linalg.norm(eye68.mean(0) - corners.mean(0)) / iod
                assert err < 0.1, f"{clip.name} frame {frame.index}: eye centre off by {err:.2f} x IOD"
