import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doppel import cli
from doppel.detect import scan as detect_scan
from doppel.scan import cli as scan_cli

import scan_helpers as h

ROOT = Path(__file__).resolve().parents[2]


def test_step_default_is_detects():
    assert scan_cli.STEP == detect_scan.ScanConfig.step  # kept apart so `doppel --help` imports no torch here


def test_clear_errors(tmp_path, capsys):
    assert cli.main(["scan", str(tmp_path)]) == 2
    assert "--store" in capsys.readouterr().err
    assert cli.main(["scan", str(tmp_path), "--store", str(tmp_path / "r.sqlite")]) == 2
    assert "no video or image files" in capsys.readouterr().err
    assert cli.main(["scan", "report", str(tmp_path / "none.sqlite"), "-o", str(tmp_path / "rep")]) == 2
    assert "no results store" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_keeps_what_finished_and_a_rerun_resumes(tmp_path, data_dir):
    folder = h.plant(tmp_path / "in", data_dir, {f"{k}.mpg": k for k in range(6)})
    db = tmp_path / "r.sqlite"
    cmd = [sys.executable, "-m", "doppel.cli", "-q", "scan", str(folder), "--store", str(db), "--step", "3",
           "--local-workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = 0
    for _ in range(600):
        time.sleep(0.2)
        if db.exists():
            try:
                done = sqlite3.connect(db).execute("SELECT COUNT(*) FROM files").fetchone()[0]
            except sqlite3.OperationalError:  # the tables are not there yet
                continue
            if done:
                break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "run the same command to resume" in err
    kept = sqlite3.connect(db).execute("SELECT COUNT(*) FROM files WHERE status='done'").fetchone()[0]
    assert 1 <= kept < 6
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and f"{kept} already in" in again.stderr and f"{6 - kept} to scan" in again.stderr
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM files WHERE status='done'").fetchone()[0] == 6


def test_worker_refuses_dasks_malloc_trim_setting(monkeypatch):
    from doppel.errors import DoppelError
    from doppel.scan import worker
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # dlib's HOG detector segfaults with it set
    with pytest.raises(DoppelError, match="docs/scan.md"):
        worker.DetectorPlugin().setup(None)
