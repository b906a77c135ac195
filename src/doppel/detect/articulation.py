"""The articulation check of `doppel detect`: does the mouth open and close as much as speech needs?

Lip-sync models under-articulate: a mouth regressed from audio swings less than a
speaking person's (doppel's own lip model does, and the careful viewer's "the lips
barely move for all that talking" is the same tell). Per analysed frame, the most
prominent face's inner-lip opening (the `mouth_open` cue: the mean gap of the three
facing inner-lip point pairs over the distance between the eye centres) is taken
where the audio has speech: the RMS of the 80 ms around the frame above
max(SPEECH_FLOOR, SPEECH_SHARE x the 95th percentile of the file's 40 ms frames).
The articulation is the spread of the opening over those frames (90th minus 10th
percentile); it needs MIN_SPEECH_FRAMES of them. A file without an audio track, or
with too little speech, is "not measured".

Like the identity check, it is reported beside the verdict and never changes the
calibrated probability: a real person who mumbles, or a voice that is not the
person's on screen (a narrator, an interviewer), reads as low too. docs/detect.md
has the figures it was set on (LOW, REAL_RANGE) and those of the test.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import media

if TYPE_CHECKING:
    from .result import FrameResult

log = logging.getLogger(__name__)

RATE = 16000  # Hz the audio is read at
FRAME_S = 0.04  # seconds of audio per RMS frame; a video frame's window is twice that, centred on it
SPEECH_FLOOR = 0.005  # RMS (full scale 1) below which nothing counts as speech (about -46 dBFS)
SPEECH_SHARE = 0.25  # ... and below this share of the file's loud end (95th percentile of its frames)
MIN_SPEECH_FRAMES = 15  # analysed frames with speech needed (at step 3 and 30 fps: 1.5 s of speech)
# Set on the selection clips (`python benchmarks/articulation.py --set selection`, docs/detect.md): by the
# scan, the spread over speech frames of 7 real speakers (retalking_face_1-5, the HDTF clip, driving_d20)
# was 0.087-0.190, of doppel's 18 lip-syncs of the sample clips 0.020-0.118 (AUC 0.92); below LOW is below
# every real speaker measured there (8 of the 18 lip-syncs).
LOW = 0.08
REAL_RANGE = (0.087, 0.190)


def speech_frames(audio: np.ndarray, times: np.ndarray, rate: int = RATE) -> np.ndarray:
    """(N,) bool: is there speech in the audio around each time (seconds)?"""
    audio = np.asarray(audio, np.float32)  # as read (an hour at 16 kHz: 230 MB; no float64 copy of it)
    n = int(FRAME_S * rate)
    if len(audio) < n:
        return np.zeros(len(times), bool)
    loud = np.percentile(np.sqrt(np.square(audio[: len(audio) // n * n].reshape(-1, n)).mean(1, dtype=np.float64)), 95)
    threshold = max(SPEECH_FLOOR, SPEECH_SHARE * loud)
    out = np.zeros(len(times), bool)
    for i, t in enumerate(times):
        seg = audio[max(0, int(round((t - FRAME_S) * rate))): max(0, int(round((t + FRAME_S) * rate)))]
        out[i] = len(seg) > 0 and np.sqrt(np.square(seg).mean(dtype=np.float64)) > threshold
    return out


def summarise(frames: Sequence[FrameResult], audio: np.ndarray | None, rate: int = RATE) -> dict:
    """The check's JSON: the articulation (None when not measured, `note` says why), whether it is low,
    the speech frames used and the per-frame series [time, opening, speech] of the most prominent face."""
    rows = [(fr.time, fr.faces[0].cues.get("mouth_open")) for fr in frames if fr.faces]
    rows = [(t, v) for t, v in rows if v is not None and np.isfinite(v)]
    out = {"articulation": None, "low": False, "threshold": LOW, "real_range": list(REAL_RANGE), "speech_frames": 0,
           "series": []}
    if audio is None:
        return {**out, "note": "no audio track: not measured"}
    if not rows:
        return {**out, "note": "no face: not measured"}
    times, opening = np.array(rows).T
    speech = speech_frames(audio, times, rate)
    out.update(speech_frames=int(speech.sum()),
               series=[[round(float(t), 3), round(float(v), 4), bool(s)] for t, v, s in zip(times, opening, speech)])
    if speech.sum() < MIN_SPEECH_FRAMES:
        return {**out, "note": f"speech in {int(speech.sum())} analysed frames with a face, fewer than "
                               f"{MIN_SPEECH_FRAMES}: not measured"}
    spread = float(np.percentile(opening[speech], 90) - np.percentile(opening[speech], 10))
    return {**out, "articulation": round(spread, 4), "low": spread < LOW,
            "note": f"spread (90th - 10th percentile) of the inner-lip opening over {int(speech.sum())} analysed "
                    "frames with speech"}


def measure(path: str | Path, frames: Sequence[FrameResult]) -> dict:
    """summarise() with the file's own audio (none when it has no readable audio track)."""
    try:
        audio = media.read_audio(path, RATE)
    except media.MediaError as e:
        log.debug("articulation: %s", e)
        audio = None
    return summarise(frames, audio)


def sentence(s: dict) -> str:
    """One line for the reasons and the summary."""
    lo, hi = s["real_range"]
    if s["articulation"] is None:
        return f"articulation: {s['note']}"
    if s["low"]:
        return (f"articulation: the mouth opens and closes less during speech ({s['articulation']:.3f}) than in any "
                f"real speaker measured ({lo:.3f}-{hi:.3f}): a lip-sync tell, or a voice that is not this person's")
    return (f"articulation: {s['articulation']:.3f}, within or above the range of the real speakers measured "
            f"({lo:.3f}-{hi:.3f}; doppel's lip-syncs of the same clips 0.02-0.12, so not proof either way)")
