"""Workers that die mid-file, a file that kills its worker every time, a file that hangs.

The default test plants one file whose worker dies mid-file and one that hangs (a short
timeout, no retry); the slow one adds a file that kills every worker it meets and the retry.
"""
import sqlite3

import pytest

from doppel.scan import cluster, sources
from doppel.scan.store import Store

import scan_helpers as h


def scan(folder, db, settings):
    with cluster.connect(None, local_workers=2) as client, Store(db) as store:
        found, _ = sources.resolve(sources.expand([str(folder)]), store, progress=False)
        counts = cluster.Driver(client, store, settings, analyser=h.analyse, progress=False).run(found)
    con = sqlite3.connect(db)
    rows = {p.split("/")[-1]: (s, a, e) for p, s, a, e in con.execute("SELECT path, status, attempts, error FROM files")}
    outcomes = {name: [o for (o,) in con.execute("SELECT outcome FROM attempts WHERE path LIKE ? ORDER BY ended_at",
                                                 (f"%/{name}",))] for name in rows}
    return counts, rows, outcomes, con


def test_a_worker_killed_mid_file_and_a_hanging_file_do_not_stop_the_scan(tmp_path, data_dir):
    folder = h.plant(tmp_path / "in", data_dir, {"die.mpg": 3, "hang.mpg": 4})
    settings = cluster.ScanSettings(step=h.STEP, timeout=10, retries=0)
    counts, rows, outcomes, db = scan(folder, tmp_path / "r.sqlite", settings)
    assert counts == {"done": 1, "error": 1}
    assert rows["die.mpg"][:2] == ("done", 2) and outcomes["die.mpg"] == ["worker lost", "done"]
    assert db.execute("SELECT verdict FROM files WHERE path LIKE '%/die.mpg'").fetchone()[0] in ("REAL", "FAKE",
                                                                                               "UNCERTAIN")
    assert rows["hang.mpg"][0] == "error" and "timed out after 10 s" in rows["hang.mpg"][2]
    assert outcomes["hang.mpg"] == ["timeout"]  # retries=0: given up after one try; its worker was restarted


@pytest.mark.slow  # ~50 s: two timeouts of 20 s and a worker killed twice
def test_killed_worker_hang_and_native_crash_leave_correct_rows(tmp_path, data_dir):
    folder = h.plant(tmp_path / "in", data_dir, {"a.mpg": 0, "die.mpg": 3, "hang.mpg": 4, "segv.mpg": 5})
    counts, rows, outcomes, db = scan(folder, tmp_path / "r.sqlite", cluster.ScanSettings(step=h.STEP, timeout=20))
    assert counts["done"] == 2 and counts["error"] == 2
    assert rows["a.mpg"][0] == "done"
    assert rows["die.mpg"][:2] == ("done", 2) and outcomes["die.mpg"] == ["worker lost", "done"]
    assert rows["hang.mpg"][0] == "error" and "timed out after 20 s" in rows["hang.mpg"][2]
    assert outcomes["hang.mpg"] == ["timeout", "timeout"]  # tried twice, each worker restarted
    assert rows["segv.mpg"][0] == "error" and "KilledWorker" in rows["segv.mpg"][2]
    assert outcomes["segv.mpg"][-1] == "worker lost"  # killed at once: its start event may not get out
    verdict = db.execute("SELECT verdict FROM files WHERE path LIKE '%/die.mpg'").fetchone()[0]
    assert verdict in ("REAL", "FAKE", "UNCERTAIN")
