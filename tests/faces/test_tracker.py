"""FaceTracker: a cut to a blank frame runs the detector instead of keeping a ghost face."""
import numpy as np

from doppel import media
from doppel.faces import finder


def test_blank_frame_after_a_face_gives_no_face(data_dir):
    frames = media.read_frames(data_dir / "talking" / "retalking_face_5.mp4", step=10)[:3]
    tracker = finder.FaceTracker()
    assert all(len(tracker(f.image)) == 1 for f in frames)  # detected, then tracked
    assert tracker.since_detect > 1
    assert tracker(np.zeros_like(frames[-1].image)) == []
    assert len(tracker(frames[-1].image)) == 1


def test_frames_of_another_size_count_as_changed():
    face = finder.Face(np.array([0.0, 0, 10, 10]), np.zeros((68, 2)))
    a = np.zeros((20, 20, 3), np.uint8)
    assert not finder.region_changed(a, a.copy(), [face], 30)
    assert finder.region_changed(a, np.zeros((30, 20, 3), np.uint8), [face], 30)
    assert finder.region_changed(np.full_like(a, 200), a, [face], 30)
