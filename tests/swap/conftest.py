"""Tiny real face sets for the swap tests, made with the tracker and aligner (not the extract stage)."""
from __future__ import annotations

from pathlib import Path

import pytest

from doppel import media
from doppel.faces import align, finder
from doppel.faceset import FaceRecord, FaceSet

CLIPS = ("talking/retalking_face_1.mp4", "talking/retalking_face_2.mp4")


def make_faceset(video: Path, out: Path, frames: int = 24, size: int = 64, step: int = 2) -> FaceSet:
    """Largest face of the first `frames` sampled frames of `video`, aligned into a new face set."""
    fs = FaceSet.create(out, size, align.DEFAULT_COVERAGE)
    tracker = finder.FaceTracker()
    for frame in media.iter_frames(video, step):
        faces = tracker(frame.image)
        if faces:
            f = faces[0]
            if "identity" not in fs.meta:  # what extract stores (a mean of several), here from one face
                fs.meta["identity"] = finder.embedding(frame.image, f.landmarks).round(5).tolist()
            m = align.align_matrix(f.landmarks, size)
            rec = FaceRecord(str(video), frame.index, frame.time, [float(v) for v in f.box],
                             f.landmarks.tolist(), m.tolist())
            fs.add(rec, align.crop(frame.image, m, size))
        if len(fs) >= frames:
            break
    fs.save()
    return fs


@pytest.fixture(scope="session")
def facesets(data_dir, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("facesets")
    paths = []
    for name, clip in zip("ab", CLIPS):
        fs = make_faceset(data_dir / clip, root / name)
        assert len(fs) >= 20, f"too few faces found in {clip}"
        paths.append(fs.root)
    return paths[0], paths[1]


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core box, OpenMP barriers with 2 threads stall a step several-fold."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
