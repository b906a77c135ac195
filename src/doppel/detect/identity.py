"""The identity check of `doppel detect VIDEO --reference PHOTOS_OR_VIDEO`.

The article's "feed the target video into a classifier for identification": how far
each face of the video is from the person it claims to be. The reference is one or
more photos or videos of that person; their faces' dlib 128-D descriptors are
averaged. In the scanned video, about one analysed frame a second is embedded
(dlib's descriptor costs ~0.1 s a face) and each face's distance to the reference
is recorded; dlib's same-person threshold is 0.6. A face swap of someone else onto
the claimed person's video shows as distances above it.

The distance is reported beside the verdict and never changes the calibrated
probability: it says "not the claimed person", which is a different question from
"manipulated" (a real video of someone else is far too).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import media
from ..errors import DoppelError
from ..faces import finder

if TYPE_CHECKING:
    from .result import FrameResult

log = logging.getLogger(__name__)

SAME_PERSON = 0.6  # dlib's threshold: descriptors of one person are usually closer than this
VIDEO_FACES = 12  # faces embedded per reference video, spread over its length
EVERY_S = 1.0  # seconds of video between embedded frames of the scanned video


def reference_embedding(paths: list[str | Path], cfg: finder.DetectConfig = finder.DetectConfig()) -> dict:
    """{"mean": (128,) float32, "faces": n, "files": [names]} of the largest face in each reference photo
    and in frames spread over each reference video; DoppelError when no reference face is found."""
    embs, names = [], []
    for p in paths:
        found = _file_embeddings(Path(p), cfg)
        if not found:
            raise DoppelError(f"no face found in the reference {p}")
        embs += found
        names.append(Path(p).name)
    if not embs:
        raise DoppelError("--reference: give at least one photo or video of the person")
    return {"mean": np.mean(embs, axis=0).astype(np.float32), "faces": len(embs), "files": names}


def _file_embeddings(path: Path, cfg: finder.DetectConfig) -> list[np.ndarray]:
    if not path.is_file():
        raise DoppelError(f"reference not found: {path}")
    info = media.probe(path)  # MediaError (a DoppelError) for anything that is not media
    n = info.frame_count or 1
    every = max(1, n // VIDEO_FACES)
    out = []
    for fr in media.iter_frames(path, every):
        faces = finder.find_faces(fr.image, cfg)
        if faces:
            out.append(finder.embedding(fr.image, faces[0].landmarks))  # largest first
        if len(out) >= VIDEO_FACES:
            break
    return out


def distances(image: np.ndarray, faces: list[dict], landmarks: list[np.ndarray], reference: np.ndarray) -> None:
    """Adds "identity": distance to the reference to each face dict of one frame (in place)."""
    for face, lm in zip(faces, landmarks):
        face["identity"] = round(float(np.linalg.norm(finder.embedding(image, lm) - reference)), 4)


def summarise(frames: Sequence[FrameResult], ref: dict) -> dict:
    """Per embedded frame the face nearest to the reference (the claimed person, when present), and the
    median and share of those above SAME_PERSON."""
    series = [(fr.time, min(f.identity for f in fr.faces if f.identity is not None))
              for fr in frames if any(f.identity is not None for f in fr.faces)]
    d = np.array([v for _, v in series])
    out = {"reference": ref["files"], "reference_faces": ref["faces"], "threshold": SAME_PERSON,
           "series": [[t, v] for t, v in series], "median": None, "share_over": None}
    if d.size:
        out.update(median=round(float(np.median(d)), 4), share_over=round(float(np.mean(d > SAME_PERSON)), 4))
    return out


def sentence(ident: dict) -> str:
    """One plain-language line for the report and the reasons."""
    if ident["median"] is None:
        return "identity: no face of the video could be compared with the reference"
    same = ident["median"] <= SAME_PERSON
    return (f"identity: the face is {ident['median']:.2f} from the reference "
            f"({'same person' if same else 'NOT the same person'} by dlib's {SAME_PERSON} threshold; "
            f"{100 * ident['share_over']:.0f}% of {len(ident['series'])} checked frames above it)")
