"""Workers that die mid-file, a file that kills its worker every time, a file that hangs (slow: restarts)."""
import sqlite3

import pytest

from doppel.scan import cluster, sources
from doppel.scan.store import Store

import scan_helpers as h


@pytest.mark.slow
def test_killed_worker_hang_and_native_crash_leave_correct_rows(tmp_path, data_dir):
    folder = h.plant(tmp_path / "in", data_dir, {"a.mpg": 0, "die.mpg": 3, "hang.mpg": 4, "segv.mpg": 5})
    settings = cluster.ScanSettings(step=h.STEP, timeout=20)
    with cluster.connect(None, local_workers=2) as client, Store(tmp_path / "r.sqlite") as store:
        found, _ = sources.resolve(sources.expand([str(folder)]), store, progress=False)
        counts = cluster.Driver(client, store, settings, analyser=h.analyse, progress=False).run(found)
    assert counts["done"] == 2 and counts["error"] == 2
    db = sqlite3.connect(tmp_path / "r.sqlite")
    rows = {p.split("/")[-1]: (s, a, e) for p, s, a, e in db.execute("SELECT path, status, attempts, error FROM files")}
    outcomes = {name: [o for (o,) in db.execute("SELECT outcome FROM attempts WHERE path LIKE ? ORDER BY ended_at",
                                                (f"%/{name}",))] for name in rows}
    assert rows["a.mpg"][0] == "done"
    assert rows["die.mpg"][:2] == ("done", 2) and outcomes["die.mpg"] == ["worker lost", "done"]
    assert rows["hang.mpg"][0] == "error" and "timed out after 20 s" in rows["hang.mpg"][2]
    assert outcomes["hang.mpg"] == ["timeout", "timeout"]  # tried twice, each worker restarted
    assert rows["segv.mpg"][0] == "error" and "KilledWorker" in rows["segv.mpg"][2]
    assert outcomes["segv.mpg"][-1] == "worker lost"  # killed at once: its start event may not get out
    verdict = db.execute("SELECT verdict FROM files WHERE path LIKE '%/die.mpg'").fetchone()[0]
    assert verdict in ("REAL", "FAKE", "UNCERTAIN")
