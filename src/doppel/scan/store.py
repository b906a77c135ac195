"""The results store: one SQLite file a user can query with any SQLite client.

Tables (docs/scan.md has the columns and example queries):
  files     one row per distinct content (sha256): verdict, probability, reasons,
            label/watermark/C2PA findings, model version, timings, status, error
  frames    one row per analysed frame: its score (the most suspicious face's fused logit)
  faces     one row per analysed face: box, model scores, cues (JSON)
  attempts  one row per try of a file on a worker, with the outcome and the reason
  paths     every path seen, its size/mtime and content hash (so a rerun does not re-hash)
Only the driver process writes (workers return results to it), so there is one writer
and no locking between workers; WAL lets a user query while a scan runs.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

from ..errors import DoppelError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # PRAGMA user_version; 1 (or 0): before the c2pa column
SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
  hash TEXT PRIMARY KEY, path TEXT NOT NULL, size INTEGER, status TEXT NOT NULL,
  verdict TEXT, probability REAL, score REAL, reasons TEXT, label TEXT, watermark TEXT, c2pa TEXT,
  model_version TEXT, step INTEGER, frames_analysed INTEGER, faces_analysed INTEGER,
  decoded_frames INTEGER, truncated INTEGER, width INTEGER, height INTEGER, fps REAL,
  duration_s REAL, scan_s REAL, worker TEXT, attempts INTEGER, error TEXT, finished_at REAL,
  result TEXT);
CREATE TABLE IF NOT EXISTS frames (
  hash TEXT NOT NULL, frame INTEGER NOT NULL, time REAL, faces INTEGER, score REAL,
  PRIMARY KEY (hash, frame));
CREATE TABLE IF NOT EXISTS faces (
  hash TEXT NOT NULL, frame INTEGER NOT NULL, face INTEGER NOT NULL, box TEXT, tracked INTEGER,
  cnn REAL, fourier REAL, fused REAL, cues TEXT, PRIMARY KEY (hash, frame, face));
CREATE TABLE IF NOT EXISTS attempts (
  hash TEXT NOT NULL, path TEXT, attempt INTEGER, worker TEXT, started_at REAL, ended_at REAL,
  outcome TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS paths (
  path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, hash TEXT, seen_at REAL);
CREATE INDEX IF NOT EXISTS files_verdict ON files (verdict);
CREATE INDEX IF NOT EXISTS attempts_hash ON attempts (hash);
CREATE INDEX IF NOT EXISTS paths_hash ON paths (hash);
"""
ADDED_COLUMNS = {"c2pa": "TEXT"}  # files columns added since version 1, for ALTER TABLE on an older store
# Version-1 stores left watermark empty (it read a key the detector does not write) and had no c2pa:
# both are in each done row's `result` JSON, so the upgrade fills them from there.
BACKFILL = """UPDATE files SET label = json_extract(result, '$.provenance.label'),
  watermark = json_extract(result, '$.provenance.watermark'), c2pa = json_extract(result, '$.provenance.c2pa')
  WHERE status = 'done' AND json_valid(result) AND json_type(result, '$.provenance') = 'object'"""


class Store:
    """The SQLite results database at `path` (created with its tables when missing)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses at most the last commit
        try:
            self.db.executescript(SCHEMA)
            self._upgrade()
        except (sqlite3.Error, DoppelError):
            self.db.close()
            raise

    def _upgrade(self) -> None:
        """Bring a store written by an older doppel to SCHEMA_VERSION (a no-op on a new one)."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise DoppelError(f"{self.path} was written by a newer doppel (store schema {version}, "
                              f"this one knows {SCHEMA_VERSION}); upgrade doppel to add to it")
        if version == SCHEMA_VERSION:
            return
        have = {r[1] for r in self.db.execute("PRAGMA table_info(files)")}
        with self.db:
            for name, kind in ADDED_COLUMNS.items():
                if name not in have:
                    self.db.execute(f"ALTER TABLE files ADD COLUMN {name} {kind}")
            n = self.db.execute(BACKFILL).rowcount
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if n:
            log.info("%s: store upgraded to schema %d (provenance columns filled for %d files)", self.path,
                     SCHEMA_VERSION, n)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- paths: the hash cache ------------------------------------------------------------
    def cached_hash(self, path: str, size: int, mtime_ns: int) -> str | None:
        row = self.db.execute("SELECT hash FROM paths WHERE path=? AND size=? AND mtime_ns=?",
                              (path, size, mtime_ns)).fetchone()
        return row[0] if row else None

    def remember_paths(self, rows: list[tuple[str, int, int, str]]) -> None:
        """(path, size, mtime_ns, hash) rows, in one transaction."""
        now = time.time()
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO paths VALUES (?,?,?,?,?)",
                                [(*r, now) for r in rows])

    # -- what is left to do ---------------------------------------------------------------
    def finished(self, model_version: str, step: int, retry_errors: bool = False) -> set[str]:
        """Hashes that need no scan: done with this model and step (and errors, unless retried)."""
        rows = self.db.execute("SELECT hash, status, model_version, step FROM files").fetchall()
        return {h for h, s, v, st in rows
                if (s == "done" and v == model_version and st == step) or (s == "error" and not retry_errors)}

    # -- results ---------------------------------------------------------------------------
    def record_attempt(self, digest: str, path: str, attempt: int, worker: str | None, started: float | None,
                       outcome: str, reason: str | None = None) -> None:
        with self.db:
            self.db.execute("INSERT INTO attempts VALUES (?,?,?,?,?,?,?,?)",
                            (digest, path, attempt, worker, started, time.time(), outcome, reason))

    def record_result(self, digest: str, path: str, size: int, data: dict, worker: str | None,
                      attempts: int) -> None:
        """A finished scan: its files row, its frames and faces, in one transaction."""
        v, info = data["verdict"], data.get("video", {})
        frames = data.get("frames", [])
        prov = data.get("provenance") or {"label": data.get("label")}  # label, watermark, c2pa (provenance.check)
        rest = {k: x for k, x in data.items() if k != "frames"}
        row = {"hash": digest, "path": path, "size": size, "status": "done", "verdict": v["label"],
               "probability": v.get("probability"), "score": v.get("score"),
               "reasons": json.dumps(v.get("reasons", [])), "label": _js(prov.get("label")),
               "watermark": _js(prov.get("watermark")), "c2pa": _js(prov.get("c2pa")),
               "model_version": data.get("models", {}).get("version"), "step": data.get("config", {}).get("step"),
               "frames_analysed": len(frames), "faces_analysed": v.get("faces_analysed"),
               "decoded_frames": data.get("decoded_frames"), "truncated": int(bool(data.get("truncated"))),
               "width": info.get("width"), "height": info.get("height"), "fps": info.get("fps"),
               "duration_s": info.get("duration"), "scan_s": data.get("elapsed_s"), "worker": worker,
               "attempts": attempts, "error": None, "finished_at": time.time(), "result": json.dumps(rest)}
        with self.db:
            self._clear(digest)
            # named columns: an upgraded store has its added columns last
            self.db.execute(f"INSERT INTO files ({','.join(row)}) VALUES ({','.join('?' * len(row))})",
                            tuple(row.values()))
            self.db.executemany("INSERT INTO frames VALUES (?,?,?,?,?)", [
                (digest, fr["index"], fr["time"], len(fr["faces"]),
                 max((f["scores"]["fused"] for f in fr["faces"] if f["scores"]["fused"] is not None), default=None))
                for fr in frames])
            self.db.executemany("INSERT INTO faces VALUES (?,?,?,?,?,?,?,?,?)", [
                (digest, fr["index"], f["face"], json.dumps(f["box"]), int(bool(f.get("tracked"))),
                 f["scores"]["cnn"], f["scores"]["fourier"], f["scores"]["fused"], json.dumps(f["cues"]))
                for fr in frames for f in fr["faces"]])

    def record_error(self, digest: str, path: str, size: int, reason: str, worker: str | None,
                     attempts: int) -> None:
        """A file given up on: a files row with status 'error' and the reason."""
        with self.db:
            self._clear(digest)
            self.db.execute("INSERT INTO files (hash, path, size, status, worker, attempts, error, finished_at) "
                            "VALUES (?,?,?,?,?,?,?,?)",
                            (digest, path, size, "error", worker, attempts, reason, time.time()))

    def _clear(self, digest: str) -> None:
        for table in ("files", "frames", "faces"):
            self.db.execute(f"DELETE FROM {table} WHERE hash=?", (digest,))

    # -- reading back ------------------------------------------------------------------------
    def rows(self, where: str = "1", args: tuple = ()) -> list[dict]:
        """files rows as dicts (JSON columns left as text)."""
        cur = self.db.execute(f"SELECT * FROM files WHERE {where} ORDER BY path", args)
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def result(self, digest: str) -> dict | None:
        """The detector's result of a done file, rebuilt with its frames and faces (report input)."""
        row = self.db.execute("SELECT result, path FROM files WHERE hash=? AND status='done'", (digest,)).fetchone()
        if not row:
            return None
        data = json.loads(row[0])
        faces: dict[int, list] = {}
        for fr, i, box, tracked, cnn, fourier, fused, cue in self.db.execute(
                "SELECT frame, face, box, tracked, cnn, fourier, fused, cues FROM faces WHERE hash=? "
                "ORDER BY frame, face", (digest,)):
            faces.setdefault(fr, []).append({"face": i, "box": json.loads(box), "tracked": bool(tracked),
                                             "scores": {"cnn": cnn, "fourier": fourier, "fused": fused},
                                             "cues": json.loads(cue)})
        data["frames"] = [{"index": fr, "time": t, "faces": faces.get(fr, [])} for fr, t in self.db.execute(
            "SELECT frame, time FROM frames WHERE hash=? ORDER BY frame", (digest,))]
        return data

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM files GROUP BY status").fetchall())


def _js(x) -> str | None:
    return None if x is None else json.dumps(x)
