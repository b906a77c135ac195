import json
import sqlite3

import pytest

from doppel.errors import DoppelError
from doppel.scan import store as store_mod
from doppel.scan.store import Store

LABEL = {"kind": "face-swap", "watermark": {"run_id": "0a0b0c0d"}}
MARK = {"found": True, "z": 9.1, "payload": "00000a0b0c0d", "run_id": "0a0b0c0d", "frames_read": 10}
MANIFEST = {"state": "valid", "signer": "doppel", "actions": [{"action": "c2pa.edited"}]}


def result(prob=0.8, label="FAKE", version="v1", step=3, marked=True) -> dict:
    """A detector result shaped like detect.scan's: two analysed frames, the first with two faces, and
    provenance.check's findings (label, watermark, C2PA) under "provenance" as detect.scan puts them."""
    face = lambda i, fused: {"face": i, "box": [1.0, 2.0, 30.0, 40.0], "tracked": bool(i),  # noqa: E731
                             "scores": {"cnn": 0.5, "fourier": -0.2, "fused": fused},
                             "cues": {"blur": 0.1, "tone_step": None}}
    return {"file": "/x/a.mp4", "video": {"width": 64, "height": 48, "fps": 25.0, "frames": 10, "duration": 0.4},
            "frames": [{"index": 0, "time": 0.0, "faces": [face(0, 1.5), face(1, -0.5)]},
                       {"index": 3, "time": 0.12, "faces": []}],
            "config": {"step": step}, "label": LABEL if marked else None, "models": {"version": version},
            "verdict": {"label": label, "probability": prob, "score": 1.5, "reasons": ["cnn: points to fake"],
                        "rule": "r", "faces_analysed": 2},
            "blinks": {"count": 0}, "decoded_frames": 10, "truncated": False, "elapsed_s": 0.7,
            "provenance": {"label": LABEL if marked else None,
                           "watermark": MARK if marked else {"found": False, "z": 1.2, "run_id": None},
                           "c2pa": MANIFEST if marked else None, "evidence": ["doppel watermark"] if marked else []}}


def test_result_round_trip_and_queryable_columns(tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        store.record_result("h1", "/x/a.mp4", 123, result(), "tcp://w:1", attempts=1)
        assert store.result("h1") == result()  # the report input comes back whole
    db = sqlite3.connect(tmp_path / "r.sqlite")  # any SQLite client can read it
    row = db.execute("SELECT status, verdict, probability, model_version, step, frames_analysed, faces_analysed, "
                     "width, scan_s, label, watermark, c2pa FROM files").fetchone()
    assert row[:9] == ("done", "FAKE", 0.8, "v1", 3, 2, 2, 64, 0.7)
    assert [json.loads(x) for x in row[9:]] == [LABEL, MARK, MANIFEST]  # provenance.check's findings, queryable
    assert db.execute("SELECT json_extract(watermark, '$.run_id') FROM files WHERE json_extract(watermark, '$.found')"
                      ).fetchall() == [("0a0b0c0d",)]
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


def test_unmarked_file_has_no_label_or_manifest_and_a_negative_mark(tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        store.record_result("h", "/x/a.mp4", 1, result(marked=False), None, 1)
        label, mark, manifest = store.db.execute("SELECT label, watermark, c2pa FROM files").fetchone()
    assert label is None and manifest is None and json.loads(mark)["found"] is False


V1_FILES = """CREATE TABLE files (
  hash TEXT PRIMARY KEY, path TEXT NOT NULL, size INTEGER, status TEXT NOT NULL,
  verdict TEXT, probability REAL, score REAL, reasons TEXT, label TEXT, watermark TEXT,
  model_version TEXT, step INTEGER, frames_analysed INTEGER, faces_analysed INTEGER,
  decoded_frames INTEGER, truncated INTEGER, width INTEGER, height INTEGER, fps REAL,
  duration_s REAL, scan_s REAL, worker TEXT, attempts INTEGER, error TEXT, finished_at REAL,
  result TEXT)"""


def test_a_version_1_store_gains_the_c2pa_column_and_its_findings(tmp_path):
    """A store written before the fix: no c2pa column, watermark empty; the findings were in `result`."""
    db = sqlite3.connect(tmp_path / "old.sqlite")
    db.execute(V1_FILES)
    old = {k: x for k, x in result().items() if k != "frames"}
    db.execute("INSERT INTO files (hash, path, status, verdict, label, watermark, result) VALUES (?,?,?,?,?,?,?)",
               ("old", "/x/old.mp4", "done", "FAKE", json.dumps(LABEL), None, json.dumps(old)))
    db.execute("INSERT INTO files (hash, path, status, error) VALUES ('bad', '/x/bad.mp4', 'error', 'not a video')")
    db.commit()
    db.close()
    with Store(tmp_path / "old.sqlite") as store:
        rows = {r["hash"]: r for r in store.rows()}
        assert json.loads(rows["old"]["watermark"]) == MARK and json.loads(rows["old"]["c2pa"]) == MANIFEST
        assert rows["bad"]["c2pa"] is None and rows["bad"]["error"] == "not a video"
        store.record_result("new", "/x/new.mp4", 5, result(), None, 1)  # named columns: c2pa is last here
        new = store.rows("hash='new'")[0]
        assert (new["size"], new["verdict"], json.loads(new["c2pa"])) == (5, "FAKE", MANIFEST)
        assert store.db.execute("PRAGMA user_version").fetchone() == (store_mod.SCHEMA_VERSION,)
    Store(tmp_path / "old.sqlite").close()  # opening an upgraded store again is a no-op


def test_a_store_from_a_newer_doppel_is_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "new.sqlite")
    db.execute(f"PRAGMA user_version = {store_mod.SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(DoppelError, match="newer doppel"):
        Store(tmp_path / "new.sqlite")
