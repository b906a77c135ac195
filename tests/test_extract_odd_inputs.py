"""Phone video is read upright (display matrix); odd image files give a face or a clean "no face"."""
import dataclasses
import json

import av
import cv2
import numpy as np
import pytest

from doppel import extract as ex
from doppel import media
from doppel.errors import DoppelError
from doppel.faces import finder
from doppel.faceset import FaceSet


@pytest.fixture(scope="module")
def clip_frames(data_dir):
    return [f.image for f in media.read_frames(data_dir / "talking" / "retalking_face_5.mp4", step=5)[:6]]


@pytest.mark.parametrize("rotation", [-90, 90])
def test_a_rotated_phone_clip_is_read_upright(tmp_path, clip_frames, rotation):
    """Frames stored lying down with a display rotation (as phones write them) come back upright."""
    path = tmp_path / "phone.mp4"
    stored = [np.ascontiguousarray(np.rot90(f, -rotation // 90)) for f in clip_frames]  # undone by the display matrix
    h, w = stored[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        s.set_display_rotation(rotation)
        for img in stored:
            for packet in s.encode(av.VideoFrame.from_ndarray(img[:s.height, :s.width], format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    info = media.probe(path)
    assert info.rotation == rotation % 360 and (info.height, info.width) == (s.width, s.height)
    frames = media.read_frames(path)
    assert len(frames) == len(clip_frames)
    first = frames[0].image
    want = clip_frames[0][:first.shape[0], :first.shape[1]]
    assert first.shape[:2] == want.shape[:2]
    assert np.abs(first.astype(int) - want).mean() < 6  # H.264 loss only
    faces = finder.find_faces(first)
    assert faces and faces[0].turn == 0


@pytest.fixture(scope="module")
def photo(data_dir):
    return cv2.imread(str(data_dir / "images" / "obama.jpg"))  # BGR, as cv2 writes it


@pytest.mark.parametrize("kind", ["grey", "rgba", "16bit"])
def test_grey_rgba_and_16_bit_photos_give_their_face(tmp_path, photo, kind):
    small = cv2.resize(photo, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    image = {"grey": cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), "rgba": cv2.cvtColor(small, cv2.COLOR_BGR2BGRA),
             "16bit": small.astype(np.uint16) * 257}[kind]
    path = tmp_path / f"{kind}.png"
    assert cv2.imwrite(str(path), image)
    summary = ex.extract([path], tmp_path / "fs")
    assert summary.found == 1 and summary.frames_no_face == 0
    doc = json.loads(json.dumps(summary.to_json()))  # the stage's result, as the web app shows it
    assert (doc["found"], doc["kept"], doc["frames"]) == (1, 1, 1) and set(doc["dropped"]) >= {"duplicate"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.kept = 0
    assert FaceSet.open(tmp_path / "fs").meta["detect"] == finder.DetectConfig().record()


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (16, 16000)])
def test_odd_sized_images_are_a_clean_no_face(tmp_path, shape):
    path = tmp_path / "odd.png"
    assert cv2.imwrite(str(path), np.full((*shape, 3), 120, np.uint8))
    with pytest.raises(DoppelError, match="no face found in odd.png"):
        ex.extract([path], tmp_path / "fs")
    assert not (tmp_path / "fs").exists()


def test_summary_counts_frames_without_a_face(tmp_path, photo):
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), cv2.resize(photo, None, fx=0.5, fy=0.5))
    cv2.imwrite(str(folder / "b.png"), np.full((300, 400, 3), 90, np.uint8))
    summary = ex.extract([folder], tmp_path / "fs")
    assert (summary.frames, summary.frames_no_face) == (2, 1)
    assert "frames with no face found" in summary.table()
