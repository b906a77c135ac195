"""The articulation check: speech found in the audio, the mouth's swing measured on real faces, reported
beside the verdict without moving it."""
import dataclasses
import json

import numpy as np
import pytest

from doppel import media
from doppel.detect import articulation, report, scan
from doppel.detect.result import FaceResult, FaceScores, FrameResult

from detect_helpers import blank_detectors

RATE = articulation.RATE


def _frames(openings, fps=10.0):
    """FrameResults with one face each whose mouth_open cue follows `openings` (planted)."""
    out = []
    for i, v in enumerate(openings):
        face = FaceResult(0, (0.0, 0.0, 10.0, 10.0), False, FaceScores(0.0, 0.0, 0.0), {"mouth_open": float(v)})
        out.append(FrameResult(i, round(i / fps, 3), (face,)))
    return tuple(out)


def test_speech_is_found_where_the_audio_is_loud():
    t = np.arange(0, 4 * RATE) / RATE
    audio = 0.001 * np.random.default_rng(0).standard_normal(len(t))  # room noise, under the floor
    audio[RATE: 3 * RATE] += 0.2 * np.sin(2 * np.pi * 220 * t[RATE: 3 * RATE])  # 1-3 s: a voice
    got = articulation.speech_frames(audio, np.array([0.5, 1.5, 2.5, 3.5]))
    assert got.tolist() == [False, True, True, False]
    assert not articulation.speech_frames(audio[:RATE], np.array([0.2, 0.5])).any()  # noise alone: no speech


def test_a_mouth_that_barely_moves_in_speech_is_low_and_a_swinging_one_is_not():
    audio = np.zeros(4 * RATE)
    audio[: 3 * RATE] = 0.1 * np.sin(np.arange(3 * RATE) * 2 * np.pi * 200 / RATE)  # speech for 3 s of 4 (frames at 0-3.0 s)
    rng = np.random.default_rng(1)
    talking = _frames(0.1 + 0.12 * np.abs(np.sin(np.arange(40) * 1.3)))
    mumbling = _frames(0.1 + 0.01 * rng.random(40))
    a, b = articulation.summarise(talking, audio), articulation.summarise(mumbling, audio)
    assert a["speech_frames"] == b["speech_frames"] == 31 and len(a["series"]) == 40
    assert a["articulation"] > 0.1 and not a["low"]
    assert b["articulation"] < 0.01 and b["low"] and "lip-sync tell" in articulation.sentence(b)
    # the swing counts only where there is speech: the same mouth still in speech, wide open in silence
    quiet = _frames([0.1] * 31 + [0.3, 0.0] * 4 + [0.3])
    assert articulation.summarise(quiet, audio)["articulation"] == pytest.approx(0.0)
    assert articulation.summarise(talking, None)["articulation"] is None  # no audio track
    short = articulation.summarise(talking[:10], audio)  # too little speech
    assert short["articulation"] is None and "fewer than" in short["note"] and not short["low"]


@pytest.fixture(scope="module")
def speaking(data_dir):
    """A real speaker with her own voice, scanned (the opening needs no trained model)."""
    return scan.scan(data_dir / "talking" / "retalking_face_2.mp4", blank_detectors(), progress=False)


def test_a_real_speaker_articulates_and_a_still_mouth_under_her_voice_does_not(speaking, data_dir):
    a = speaking.articulation
    assert a["speech_frames"] >= articulation.MIN_SPEECH_FRAMES and a["articulation"] > articulation.LOW
    assert a["articulation"] >= articulation.REAL_RANGE[0]
    # a real clip whose mouth hardly moves (source_s20), under the speaker's voice: a dub reads as low
    still = scan.scan(data_dir / "video" / "source_s20.mp4", blank_detectors(), progress=False)
    assert still.articulation["speech_frames"] == 0  # its own audio is silent: not measured
    dub = articulation.summarise(still.frames, media.read_audio(data_dir / "talking" / "retalking_face_2.mp4", RATE))
    assert dub["speech_frames"] >= articulation.MIN_SPEECH_FRAMES and dub["low"]


def test_the_check_is_in_the_reports_but_never_moves_p(speaking, data_dir, tmp_path, monkeypatch):
    clip = data_dir / "talking" / "retalking_face_2.mp4"
    det = blank_detectors()
    planted = {**speaking.articulation, "articulation": 0.02, "low": True}
    monkeypatch.setattr(articulation, "measure", lambda path, frames: dict(planted))
    flagged = scan.scan(clip, det, progress=False)
    assert flagged.verdict.probability == speaking.verdict.probability  # the same scan, only the check differs
    assert flagged.verdict.reasons[-1].startswith("articulation: the mouth opens and closes less")
    assert not any(r.startswith("articulation") for r in speaking.verdict.reasons)  # not low: no reason
    back = json.loads(json.dumps(speaking.to_json()))
    assert back["articulation"]["articulation"] == speaking.articulation["articulation"]
    assert scan.ScanResult.from_json(back).articulation == speaking.articulation
    page = report.write_html(flagged, tmp_path / "r.html").read_text()
    assert "Mouth during speech" in page and "lip-sync tell" in page and 'alt="articulation"' in page
    assert "Articulation: the mouth opens and closes less" in report.summary(flagged)
    assert "Main reasons: articulation" not in report.summary(flagged)  # said once, in its own sentence
    short = dataclasses.replace(speaking, articulation={**speaking.articulation, "articulation": None,
                                                        "note": "speech in 9 analysed frames, too few"})
    page = report.write_html(short, tmp_path / "s.html").read_text()
    section = page.split("<h2>Mouth during speech</h2>")[1].split("</p>")[0]
    assert section.count("speech in 9 analysed frames, too few") == 1 and "10th-90th" not in page
