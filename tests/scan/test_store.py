import json
import sqlite3

from doppel.scan.store import Store


def result(prob=0.8, label="FAKE", version="v1", step=3) -> dict:
    """A detector result shaped like detect.scan's: two analysed frames, the first with two faces."""
    face = lambda i, fused: {"face": i, "box": [1.0, 2.0, 30.0, 40.0], "tracked": bool(i),  # noqa: E731
                             "scores": {"cnn": 0.5, "fourier": -0.2, "fused": fused},
                             "cues": {"blur": 0.1, "tone_step": None}}
    return {"file": "/x/a.mp4", "video": {"width": 64, "height": 48, "fps": 25.0, "frames": 10, "duration": 0.4},
            "frames": [{"index": 0, "time": 0.0, "faces": [face(0, 1.5), face(1, -0.5)]},
                       {"index": 3, "time": 0.12, "faces": []}],
            "config": {"step": step}, "label": None, "models": {"version": version},
            "verdict": {"label": label, "probability": prob, "score": 1.5, "reasons": ["cnn: points to fake"],
                        "rule": "r", "faces_analysed": 2},
            "blinks": {"count": 0}, "decoded_frames": 10, "truncated": False, "elapsed_s": 0.7,
            "watermark": {"found": True, "bits": "0101"}}


def test_result_round_trip_and_queryable_columns(tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        store.record_result("h1", "/x/a.mp4", 123, result(), "tcp://w:1", attempts=1)
        assert store.result("h1") == result()  # the report input comes back whole
    db = sqlite3.connect(tmp_path / "r.sqlite")  # any SQLite client can read it
    row = db.execute("SELECT status, verdict, probability, model_version, step, frames_analysed, faces_analysed, "
                     "width, scan_s, watermark FROM files").fetchone()
    assert row[:9] == ("done", "FAKE", 0.8, "v1", 3, 2, 2, 64, 0.7) and json.loads(row[9])["found"]
    assert db.execute("SELECT frame, faces, score FROM frames ORDER BY frame").fetchall() == [(0, 2, 1.5), (3, 0, None)]
    assert db.execute("SELECT COUNT(*) FROM faces WHERE fused > 0").fetchone() == (1,)


def test_finished_depends_on_model_step_and_errors(tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        store.record_result("done", "/a", 1, result(version="v1", step=3), None, 1)
        store.record_error("bad", "/b", 1, "not a video", None, 1)
        assert store.finished("v1", 3) == {"done", "bad"}
        assert store.finished("v1", 3, retry_errors=True) == {"done"}
        assert store.finished("v2", 3) == {"bad"}  # a new model rescans
        assert store.finished("v1", 5) == {"bad"}
        store.record_result("bad", "/b", 1, result(), None, 2)  # a rescan replaces the error row
        assert store.counts() == {"done": 2}
