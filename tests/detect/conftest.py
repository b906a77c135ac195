"""Shared fixtures for the detector tests: real frames with landmarks, untrained detectors."""
import pytest

from doppel import media
from doppel.faces import finder

from detect_helpers import blank_detectors


@pytest.fixture(scope="session")
def clip_frames(data_dir):
    """Six consecutive frames of a real talking clip and the landmarks of its face in each."""
    frames = [f.image for f in media.read_frames(data_dir / "talking" / "retalking_face_1.mp4")[:6]]
    box = finder.find_faces(frames[0])[0].box
    return frames, [finder.landmarks68(f, box) for f in frames]


@pytest.fixture()
def blank():
    """Untrained detectors (planted, seeded): a scan runs, its verdict means nothing."""
    return blank_detectors()
