"""The driver: connect to a Dask cluster, send each file to an idle worker, record results.

Failure handling (docs/scan.md):
- a Python error in a file (or a bad file): the task returns the reason; unexpected errors
  are retried once, DoppelErrors (not a video, unreadable) are recorded at once;
- a worker that dies mid-file: Dask reschedules the file on another worker (a second start
  event tells the driver, which records the lost attempt); a file that kills its worker twice
  ends as KilledWorker and is recorded with that reason (allowed-failures = 1);
- a file that runs past `timeout`: the driver forgets its task, restarts that worker through
  its nanny (the only way to stop a stuck thread) and retries the file once.
Only this process writes the store, one transaction per file, so Ctrl-C loses at most the
files in flight and a rerun skips everything recorded.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import logging
import threading
import time
from dataclasses import dataclass

from .sources import Source
from .store import Store
from .worker import NO_MALLOC_TRIM, START_TOPIC, DetectorPlugin, scan_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanSettings:
    step: int = 3  # analyse every step-th frame (as `doppel detect --step`)
    timeout: float = 900.0  # seconds one file may run on a worker before it is abandoned and its worker restarted
    retries: int = 1  # further tries of a file whose try failed (error, timeout, lost worker)
    weights: str | None = None  # detector weights folder on the workers; None = the installed package's


@contextlib.contextmanager
def connect(address: str | None = None, local_workers: int = 2):
    """A Client on the scheduler at `address`, or on a LocalCluster of `local_workers` processes."""
    import dask
    from distributed import Client, LocalCluster
    if not log.isEnabledFor(logging.DEBUG):  # Dask's INFO lines (workers joining, closing) would bury the bar
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if address:
        with Client(address, timeout=30) as client:
            yield client
        return
    # A worker death before the second try marks the file bad (Dask's default allows 3).
    with dask.config.set({"distributed.scheduler.allowed-failures": 1, **NO_MALLOC_TRIM}):
        # dashboard on a free port: two scans on one machine must not clash on 8787
        with LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0", env={"OMP_NUM_THREADS": "1"}) as cluster:
            with Client(cluster) as client:
                yield client


@dataclass
class _Job:
    src: Source
    attempt: int = 1
    worker: str | None = None  # the idle worker it was sent to


class Driver:
    """Runs the files through the cluster and records every outcome in the store."""

    def __init__(self, client, store: Store, settings: ScanSettings = ScanSettings(), analyser=None,
                 progress: bool = True):
        self.client, self.store, self.s, self.analyser, self.progress = client, store, settings, analyser, progress
        self.starts: dict[tuple[str, int], list[tuple[str, float]]] = collections.defaultdict(list)
        self.tries: collections.Counter = collections.Counter()  # digest -> starts seen, all attempts
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.restarter = cf.ThreadPoolExecutor(1, thread_name_prefix="restart")
        self.restarting: set[str] = set()  # workers being restarted: sent nothing more
        client.subscribe_topic(START_TOPIC, self._on_start)
        client.register_plugin(DetectorPlugin(settings.weights))

    def _on_start(self, event) -> None:
        msg = event[1]
        with self.lock:
            self.starts[(msg["digest"], msg["attempt"])].append((msg["worker"], time.time()))
            self.tries[msg["digest"]] += 1

    def run(self, sources: list[Source]) -> collections.Counter:
        """Scan `sources` (already filtered to what is left); returns counts of done/error/retried."""
        from distributed import wait
        from tqdm import tqdm
        pending = collections.deque(_Job(s) for s in sources)
        inflight: dict = {}
        self.bar = tqdm(total=len(sources), desc="scan", unit="file", disable=not self.progress)
        try:
            while pending or inflight:
                for worker in self._free_threads(inflight)[: len(pending)]:
                    job = pending.popleft()
                    job.worker = worker
                    inflight[self._submit(job)] = job
                if not inflight:  # no worker yet (a cluster still starting)
                    time.sleep(1.0)
                    continue
                try:
                    done = wait(list(inflight), timeout=1.0, return_when="FIRST_COMPLETED").done
                except TimeoutError:
                    done = set()
                for fut in done:
                    self._finish(inflight.pop(fut), fut, pending)
                    fut.release()  # else a restarted worker's finished results would be recomputed
                self._time_out(inflight, pending)
        finally:
            for fut in inflight:
                fut.cancel()
            self.bar.close()
            self.restarter.shutdown(wait=False, cancel_futures=True)  # Ctrl-C must not wait for a restart
        return self.counts

    def _free_threads(self, inflight: dict) -> list[str]:
        """One entry per idle worker thread. Files go to idle workers only, so none waits on a worker
        behind another file, and a file that kills its worker takes no queued file with it."""
        busy = collections.Counter(j.worker for j in inflight.values())
        return [w for w, n in self.client.nthreads().items() if w not in self.restarting
                for _ in range(n - busy[w])]

    def _submit(self, job: _Job):
        return self.client.submit(scan_task, job.src.path, job.src.digest, job.attempt, self.s.step, self.analyser,
                                  key=f"scan-{job.src.digest[:20]}-{job.attempt}", pure=False, retries=0,
                                  workers=[job.worker], allow_other_workers=True)

    def _finish(self, job: _Job, fut, pending) -> None:
        starts = self._lost_workers(job)
        if fut.status == "error":
            exc = fut.exception()
            if exc.__class__.__name__ == "KilledWorker":  # Dask already tried it on a second worker
                return self._give_up(job, starts, "the worker died while scanning it, twice (KilledWorker: "
                                                  "the file may crash the decoder)", "worker lost")
            return self._failed(job, starts, f"{exc.__class__.__name__}: {exc}", True, pending)
        res = fut.result()
        if "data" in res:
            self.store.record_attempt(job.src.digest, job.src.path, job.attempt, res["worker"], _t(starts), "done")
            self.store.record_result(job.src.digest, job.src.path, job.src.size, res["data"], res["worker"],
                                     self.tries[job.src.digest] or job.attempt)
            self._count("done")
        else:
            self._failed(job, starts, res["error"], res["retry"], pending)

    def _lost_workers(self, job: _Job) -> list[tuple[str, float]]:
        """This attempt's starts; all but the last were on workers that went away mid-file."""
        with self.lock:
            starts = list(self.starts.get((job.src.digest, job.attempt), []))
        for w, t in starts[:-1]:
            self.store.record_attempt(job.src.digest, job.src.path, job.attempt, w, t, "worker lost",
                                      "the worker went away mid-file; Dask rescheduled it")
        return starts

    def _failed(self, job: _Job, starts, reason: str, retry: bool, pending, outcome: str = "error") -> None:
        if retry and job.attempt <= self.s.retries:
            self.store.record_attempt(job.src.digest, job.src.path, job.attempt, _w(starts), _t(starts), outcome, reason)
            self.counts["retried"] += 1
            pending.appendleft(_Job(job.src, job.attempt + 1))
            return
        self._give_up(job, starts, reason, outcome)

    def _give_up(self, job: _Job, starts, reason: str, outcome: str) -> None:
        self.store.record_attempt(job.src.digest, job.src.path, job.attempt, _w(starts), _t(starts), outcome, reason)
        self.store.record_error(job.src.digest, job.src.path, job.src.size, reason, _w(starts),
                                self.tries[job.src.digest] or job.attempt)
        self._count("error")

    def _time_out(self, inflight: dict, pending) -> None:
        now = time.time()
        for fut, job in list(inflight.items()):
            with self.lock:
                starts = list(self.starts.get((job.src.digest, job.attempt), []))
            if not starts or now - starts[-1][1] < self.s.timeout or fut.done():
                continue
            worker = starts[-1][0]
            if fut.key not in _processing(self.client, worker):
                continue  # that worker died: Dask reschedules the file and its next start resets the clock
            del inflight[fut]
            fut.cancel()
            log.warning("%s ran past %gs on %s: restarting that worker", job.src.path, self.s.timeout, worker)
            self.restarting.add(worker)
            done = self.restarter.submit(self.client.restart_workers, [worker], raise_for_error=False)
            done.add_done_callback(lambda _, w=worker: self.restarting.discard(w))
            self._lost_workers(job)
            self._failed(job, starts[-1:], f"timed out after {self.s.timeout:g} s on one worker "
                                           f"(the worker was restarted)", True, pending, "timeout")

    def _count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        self.bar.set_postfix(errors=self.counts["error"], retried=self.counts["retried"], refresh=False)
        self.bar.update(1)


def _processing(client, worker: str) -> tuple:
    """The task keys `worker` runs; none once the scheduler has dropped it (a dead worker: asking the scheduler
    about it then raises KeyError, seen when a killed worker's restart took longer than the timeout)."""
    try:
        return tuple(client.processing([worker]).get(worker, ()))
    except KeyError:
        return ()


def _w(starts) -> str | None:
    return starts[-1][0] if starts else None


def _t(starts) -> float | None:
    return starts[-1][1] if starts else None
