"""The talking clips of ../shared/data/corpus (MEAD, GRID s1, two presenters) give a face in every frame.

tests/faces/test_finder.py covers talking/, video/ and deepfake/; of these 146
corpus clips a sample is tracked frame by frame, to keep the run short: both
presenters, every 2nd MEAD clip (12 of 24, all three speakers) and every 5th
GRID clip (24 of 120). Some GRID clips start decoding before their first intact
picture (bbizzn.mpg: a flat grey frame, then 11 frames of mostly grey with a
faint outline of the face); such damaged frames count as showing no person, and
the finder must not invent a face in them.
"""
import numpy as np
import pytest

from doppel import media
from doppel.faces import finder


DAMAGED = 0.2  # share of mid-grey pixels over which a frame was decoded without its picture (others: < 0.01)


def damaged(image):
    """A frame decoded before the clip's first intact picture: mostly the decoder's mid-grey fill."""
    return float((np.abs(image.astype(np.int16) - 128).max(2) <= 4).mean()) > DAMAGED


def corpus_clips(data_dir):
    talking = data_dir / "corpus" / "talking"
    return sorted(talking.glob("*.mp4")) + sorted((talking / "mead").glob("*.mp4"))[::2] \
        + sorted((data_dir / "corpus" / "grid_s1").glob("*.mpg"))[::5]


@pytest.mark.slow
def test_sampled_corpus_talking_clips_have_a_face_in_every_frame(data_dir):
    clips = corpus_clips(data_dir)
    assert len(clips) == 38, f"expected 2 + 12 + 24 sampled corpus clips, got {len(clips)}"
    assert {c.name[:4] for c in clips if c.parent.name == "mead"} == {"M030", "W009", "W011"}
    missed, ghosts, frames, bad = [], [], 0, 0  # bad: damaged frames
    for clip in clips:
        tracker = finder.FaceTracker()
        for frame in media.iter_frames(clip):
            frames += 1
            found = tracker(frame.image)
            if damaged(frame.image):
                bad += 1
                if found:
                    ghosts.append(f"{clip.name}#{frame.index}")
            elif not found:
                missed.append(f"{clip.name}#{frame.index}")
    assert frames > 3000  # every frame of every sampled clip was read
    assert bad < frames // 50, f"{bad} of {frames} frames damaged: not the talking clips?"
    assert not ghosts, f"a face found in damaged frames: {ghosts[:10]}"
    assert not missed, f"no face in {len(missed)} of {frames - bad} frames with a person: {missed[:10]}"
