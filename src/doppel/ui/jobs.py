"""The job queue: long stage runs happen in a worker process, one at a time, state on disk.

Each job is a folder WORKDIR/jobs/<id>/ holding job.json (kind, parameters,
state, written only by the server), log.txt (the worker's stdout and stderr,
tqdm bars included), result.json (written once by the worker when it ends)
and out/ (what the stage wrote). A page reload, or a restarted server, finds
everything there again. Stopping sends SIGINT, which the stages treat as
Ctrl-C (training saves a checkpoint first); a worker that dies without a
result.json is shown as failed with the end of its log.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, STOPPED = "queued", "running", "done", "failed", "stopped"
FINISHED = {DONE, FAILED, STOPPED}
ID_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
STOP_GRACE_S = 60.0  # after SIGINT, how long a worker may take to save and exit before SIGKILL
POLL_S = 0.5  # how often the queue looks at the running worker
TAIL_BYTES = 4096  # end of the log read for the progress line and for errors


def write_json(path: Path, data: dict) -> None:
    """Atomic JSON write (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def log_tail(path: Path, size: int = TAIL_BYTES) -> str:
    """The last `size` bytes of a log, as text."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def progress_line(tail: str) -> str:
    """The newest progress line of a log: tqdm redraws with CR, so the last CR/LF-separated piece."""
    pieces = [p.strip() for p in re.split(r"[\r\n]", tail) if p.strip()]
    return pieces[-1] if pieces else ""


def _alive(pid: int | None, job_id: str, settle_s: float = 2.0) -> bool:
    """Whether `pid` is still this job's worker (not a recycled pid).

    A process that has only just been started reads an empty /proc/PID/cmdline for a moment (seen in
    about half of the reads right after Popen returned), so an empty one is read again until `settle_s`.
    """
    if not pid:
        return False
    end = time.monotonic() + settle_s
    while True:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        if cmdline or time.monotonic() > end:
            return job_id.encode() in cmdline
        time.sleep(0.02)


class JobQueue:
    """Jobs under `root`/jobs, run one at a time by a background thread."""

    def __init__(self, root: Path, worker: list[str] | None = None):
        self.dir = Path(root) / "jobs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cwd = Path(root)
        self.worker = worker or [sys.executable, "-m", "doppel.ui.worker"]  # + job folder
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.closing = False
        self.thread = threading.Thread(target=self._loop, name="doppel-ui-jobs", daemon=True)

    # ---- reading
    def folder(self, job_id: str) -> Path:
        if not ID_RE.match(job_id or ""):
            raise KeyError(job_id)
        return self.dir / job_id

    def get(self, job_id: str) -> dict:
        """A job's record with its live progress line; KeyError when there is no such job."""
        job = read_json(self.folder(job_id) / "job.json")
        if job is None:
            raise KeyError(job_id)
        job["progress"] = progress_line(log_tail(self.folder(job_id) / "log.txt")) if job["state"] == RUNNING else ""
        return job

    def all(self) -> list[dict]:
        """Every job, newest first."""
        jobs = (read_json(p / "job.json") for p in sorted(self.dir.iterdir(), reverse=True) if ID_RE.match(p.name))
        return [j for j in jobs if j]

    # ---- changing
    def new_folder(self) -> tuple[str, Path]:
        """A fresh job id and its (created) folder, for the uploads before submit."""
        job_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        folder = self.dir / job_id
        (folder / "out").mkdir(parents=True)
        return job_id, folder

    def submit(self, job_id: str, kind: str, title: str, params: dict) -> dict:
        job = {"id": job_id, "kind": kind, "title": title, "params": params, "state": QUEUED,
               "created": time.time(), "started": None, "finished": None, "pid": None,
               "stop_requested": False, "error": None, "result": None}
        write_json(self.folder(job_id) / "job.json", job)
        self.wake.set()
        return job

    def _update(self, job_id: str, **changes) -> dict:
        with self.lock:
            path = self.folder(job_id) / "job.json"
            job = read_json(path) or {}
            job.update(changes)
            write_json(path, job)
            return job

    def stop(self, job_id: str) -> dict:
        """Cancel a queued job, or ask a running one to stop (SIGINT: it saves and exits)."""
        job = self.get(job_id)
        if job["state"] == QUEUED:
            return self._update(job_id, state=STOPPED, finished=time.time(), error="cancelled before it started")
        if job["state"] == RUNNING and _alive(job["pid"], job_id):
            os.kill(job["pid"], signal.SIGINT)
            return self._update(job_id, stop_requested=True)
        return job

    # ---- running
    def start(self) -> None:
        self._recover()
        self.thread.start()

    def close(self) -> None:
        """Stop the running job cleanly (as Ctrl-C would) and end the queue thread."""
        self.closing = True
        self.wake.set()
        for job in self.all():
            if job["state"] == RUNNING:
                self.stop(job["id"])
        if self.thread.is_alive():
            self.thread.join(STOP_GRACE_S + 5)

    def _recover(self) -> None:
        """After a restart: a worker still alive is waited for again; a dead one's job is finished."""
        for job in self.all():
            if job["state"] == RUNNING and not _alive(job["pid"], job["id"]):
                self._finish(job["id"], None)

    def _next(self) -> dict | None:
        jobs = self.all()
        running = [j for j in jobs if j["state"] == RUNNING]
        if running:  # adopted from an earlier server
            return running[0]
        queued = [j for j in jobs if j["state"] == QUEUED]
        return min(queued, key=lambda j: j["created"]) if queued else None

    def _loop(self) -> None:
        while not self.closing:
            job = self._next()
            if job is None:
                self.wake.wait(2.0)
                self.wake.clear()
                continue
            try:
                self._run(job)
            except Exception:  # noqa: BLE001 - the queue must outlive one broken job
                log.exception("job %s could not be run", job["id"])
                self._update(job["id"], state=FAILED, finished=time.time(), error="the server could not run this job")

    def _run(self, job: dict) -> None:
        job_id, folder = job["id"], self.folder(job["id"])
        if job["state"] == QUEUED:
            proc = self._launch(job_id, folder)
            self._update(job_id, state=RUNNING, started=time.time(), pid=proc.pid)
            code, killed = self._wait(proc, job_id)
        else:  # still running from before a restart: not our child, so poll its pid
            while _alive(job["pid"], job_id):
                time.sleep(POLL_S)
            code, killed = None, False
        self._finish(job_id, code, killed)

    def _launch(self, job_id: str, folder: Path) -> subprocess.Popen:
        import doppel
        env = dict(os.environ)
        src = str(Path(doppel.__file__).resolve().parents[1])  # the worker imports this same doppel
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        env.setdefault("TQDM_MININTERVAL", "1")  # a progress line a second is plenty in a log
        with open(folder / "log.txt", "ab") as logf:
            return subprocess.Popen(self.worker + [str(folder)], stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=self.cwd, env=env)

    def _wait(self, proc: subprocess.Popen, job_id: str) -> tuple[int, bool]:
        """The worker's exit code, and whether it had to be killed after a stop request."""
        asked, killed = None, False
        while proc.poll() is None:
            time.sleep(POLL_S)
            job = read_json(self.folder(job_id) / "job.json") or {}
            if job.get("stop_requested") and asked is None:
                asked = time.monotonic()
            if asked is not None and time.monotonic() - asked > STOP_GRACE_S:
                if not killed:
                    log.warning("job %s did not stop within %.0f s; killing it", job_id, STOP_GRACE_S)
                    proc.kill()
                killed = True
        return proc.returncode, killed

    def _finish(self, job_id: str, code: int | None, killed: bool = False) -> None:
        folder = self.folder(job_id)
        res = read_json(folder / "result.json")
        if res is None:  # it died before it could say why
            tail = log_tail(folder / "log.txt", 1500).strip()
            if killed:  # the user asked for the stop: it is stopped, but not cleanly, and says so
                state, why = STOPPED, (f"stopped by force: it did not stop within {STOP_GRACE_S:.0f} s of the request, "
                                       "so anything since its last checkpoint is lost")
            else:
                state = FAILED
                why = f"the worker exited with code {code}" if code is not None else "the worker is gone"
            res = {"state": state, "error": why + (f"; end of its log:\n{tail}" if tail else ""), "result": None}
        self._update(job_id, state=res["state"], error=res.get("error"), result=res.get("result"),
                     finished=time.time(), pid=None)
