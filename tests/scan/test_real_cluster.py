"""`dask scheduler` and `dask worker` processes on localhost, started as docs/scan.md starts a real cluster.

Differences from the docs, for a test: the project comes from PYTHONPATH, not an install; the
scheduler takes a free port and writes its address to a scheduler file. ~6 s: a default test.
"""
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from doppel import cli
from doppel.scan import worker

import scan_helpers as h

ROOT = Path(__file__).resolve().parents[2]


def test_scan_on_dask_scheduler_and_worker_processes(tmp_path, data_dir, capsys):
    folder = h.plant(tmp_path / "in", data_dir, {"a.mpg": 0, "b.mpg": 1, "c.mpg": 2})
    conf = tmp_path / "dask"
    conf.mkdir()
    (conf / "doppel.yaml").write_text(worker.DASK_YAML)
    env = {**os.environ, "DASK_CONFIG": str(conf), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    dask = str(Path(sys.executable).parent / "dask")
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([dask, "scheduler", "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
                              env=env, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(120):
            if sched_file.exists():
                break
            time.sleep(0.5)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen([dask, "worker", address, "--nworkers", "2", "--nthreads", "1",
                                       "--memory-limit", "2GiB", "--no-dashboard"], env=env, stderr=subprocess.DEVNULL))
        assert cli.main(["-q", "scan", str(folder), "--store", str(tmp_path / "r.sqlite"), "--cluster", address,
                         "--step", str(h.STEP)]) == 0
    finally:
        for p in procs[::-1]:
            p.terminate()
            p.wait(timeout=60)
    rows = sqlite3.connect(tmp_path / "r.sqlite").execute("SELECT status, worker, verdict FROM files").fetchall()
    assert len(rows) == 3 and all(s == "done" and v for s, _, v in rows)
    assert all(w.startswith("tcp://") for _, w, _ in rows)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["done"] == 3
