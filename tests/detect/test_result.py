"""The typed scan result: its JSON is the report layout of before the types, it is frozen, it reads back."""
import dataclasses
import json

import pytest

from doppel.detect import cues, identity, scan
from doppel.detect.result import ScanResult, Verdict
from doppel.errors import DoppelError
from doppel.scan.store import Store

from detect_helpers import blank_detectors

FAST = scan.ScanConfig(step=8)
# the report JSON's keys, in order, as `doppel detect` wrote them while the result was a plain dict
TOP = ["file", "video", "frames", "config", "label", "models", "provenance", "verdict", "articulation", "blinks",
       "decoded_frames",
       "frames_without_face", "truncated", "elapsed_s"]
FRAME = ["index", "time", "faces"]
FACE = ["face", "box", "tracked", "scores", "cues"]
SCORES = ["cnn", "fourier", "fused"]
VERDICT = ["label", "probability", "score", "reasons", "rule", "faces_analysed", "model_probability", "model_label",
           "components", "fusion_cap"]


@pytest.fixture(scope="module")
def clip_scan(data_dir):
    return scan.scan(data_dir / "talking" / "retalking_face_1.mp4", blank_detectors(), FAST, progress=False)


def test_to_json_keeps_the_report_layout(clip_scan):
    j = clip_scan.to_json()
    assert list(j) == TOP and list(j["video"]) == ["width", "height", "fps", "frames", "duration"]
    assert list(j["frames"][0]) == FRAME and len(j["frames"]) == len(clip_scan.frames) > 1
    face = j["frames"][0]["faces"][0]
    assert list(face) == FACE and list(face["scores"]) == SCORES and set(face["cues"]) == set(cues.CUES)
    assert list(j["verdict"]) == VERDICT
    assert [list(c) for c in j["verdict"]["components"]] == [["name", "weight", "contribution"]] * len(
        clip_scan.verdict.components)
    assert j["verdict"]["components"][-1]["name"] == "constant"
    # the values are the typed fields'
    first = clip_scan.frames[0].faces[0]
    assert face["scores"]["fused"] == first.scores.fused and face["box"] == list(first.box)
    assert j["verdict"]["reasons"] == list(clip_scan.verdict.reasons) and j["frames_without_face"] == 0
    # plain JSON types only (a tuple would come back from JSON as a list and differ)
    assert json.loads(json.dumps(j, allow_nan=False)) == j


def test_the_result_is_frozen_and_its_json_a_copy(clip_scan):
    with pytest.raises(dataclasses.FrozenInstanceError):
        clip_scan.elapsed_s = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        clip_scan.verdict.label = "REAL"
    with pytest.raises(dataclasses.FrozenInstanceError):
        clip_scan.frames[0].faces[0].scores.fused = 9.0
    before = clip_scan.to_json()
    j = clip_scan.to_json()
    j["video"]["width"] = -1
    j["frames"][0]["faces"][0]["cues"]["blur"] = 99.0
    j["verdict"]["reasons"].append("edited")
    assert clip_scan.to_json() == before


def test_identity_is_in_the_json_only_with_a_reference(data_dir):
    ref = identity.reference_embedding([data_dir / "images" / "obama.jpg"])
    res = scan.scan(data_dir / "images" / "biden.jpg", blank_detectors(), FAST, False, ref)
    j = res.to_json()
    # a photo: the identity check, and no articulation check (no audio track to hear speech in)
    assert list(j) == [*TOP[:8], "identity", *TOP[9:]] and j["identity"] == res.identity
    assert list(j["frames"][0]["faces"][0]) == [*FACE, "identity"]
    assert j["frames"][0]["faces"][0]["identity"] == res.frames[0].faces[0].identity > 0.6
    assert ScanResult.from_json(j) == res


def test_verdict_json_leaves_out_what_is_unset():
    no_face = Verdict(scan.NO_FACE, None, None, (), "rule", 0)
    assert list(no_face.to_json()) == VERDICT[:6]
    forced = dataclasses.replace(no_face, label="FAKE", probability=1.0, reasons=("doppel watermark",),
                                 forced_by="doppel watermark")
    assert list(forced.to_json()) == [*VERDICT[:6], "forced_by"] and forced.to_json()["reasons"] == ["doppel watermark"]
    assert Verdict.from_json(forced.to_json()) == forced


def test_from_json_round_trip_and_bad_input(clip_scan):
    back = ScanResult.from_json(clip_scan.to_json())
    assert back == clip_scan and back.crops == () and clip_scan.crops  # crops are not part of the JSON
    assert json.dumps(back.to_json()) == json.dumps(clip_scan.to_json())  # the same keys in the same order
    broken = clip_scan.to_json()
    del broken["verdict"]
    with pytest.raises(DoppelError, match="not a doppel detect result"):
        ScanResult.from_json(broken)


def test_a_result_kept_in_the_cluster_store_gives_the_same_report_json(clip_scan, tmp_path):
    """`doppel scan report` rebuilds results from the store: the JSON it writes is `doppel detect`'s."""
    with Store(tmp_path / "r.sqlite") as store:
        store.record_result("h", clip_scan.file, 1, clip_scan.to_json(), None, 1)
        back = ScanResult.from_json(store.result("h"))
    assert json.dumps(back.to_json()) == json.dumps(clip_scan.to_json())
