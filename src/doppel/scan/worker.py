"""What runs on a Dask worker: the detector plugin (models loaded once per worker) and the task.

The task catches every Python exception and returns it as a reason, so one bad
file costs one task, not a worker; a file that kills the process (a decoder
segfault) or hangs is handled by the driver (cluster.py). Each task announces
its start on the START_TOPIC event topic, which is how the driver knows which
worker runs a file, since when (for the timeout) and how many times it began.
"""
from __future__ import annotations

import logging
import os
import time

from distributed.diagnostics.plugin import WorkerPlugin

from ..errors import DoppelError

log = logging.getLogger(__name__)

PLUGIN = "doppel-detectors"
START_TOPIC = "doppel-scan-start"
# Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in workers by default; with it set (any value), dlib's
# HOG face detector (dlib-bin 20.0.1) segfaults on the first frame, so the variable must be unset.
NO_MALLOC_TRIM = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
# The same for `dask scheduler` / `dask worker` processes: a file in $DASK_CONFIG or ~/.config/dask/
# (docs/scan.md); allowed-failures 1: a file that kills two workers is recorded as an error.
DASK_YAML = """distributed:
  nanny:
    pre-spawn-environ:
      MALLOC_TRIM_THRESHOLD_: null
  scheduler:
    allowed-failures: 1
"""
MALLOC_MESSAGE = ("this worker has MALLOC_TRIM_THRESHOLD_ set (Dask's default), which makes dlib's face "
                  "detector crash; start workers with the dask config in docs/scan.md")


class DetectorPlugin(WorkerPlugin):
    """Loads the detectors once when a worker starts (and again when it is restarted)."""

    name = PLUGIN

    def __init__(self, weights: str | None = None):
        self.weights = weights  # detector weights folder on the worker; None = the installed package's
        self.detectors = None

    def setup(self, worker) -> None:
        if "MALLOC_TRIM_THRESHOLD_" in os.environ:
            raise DoppelError(MALLOC_MESSAGE)
        import cv2
        import torch

        from ..detect import detectors
        torch.set_num_threads(1)  # parallelism comes from worker processes, one file each
        cv2.setNumThreads(1)
        self.detectors = detectors.Detectors.load(self.weights or detectors.WEIGHTS_DIR)
        _warm_up()
        log.info("worker %s loaded detectors %s", worker.address, self.detectors.version)


def _warm_up() -> None:
    """Load dlib's face models now (they load lazily), so a file's time, and its timeout, is its own."""
    import numpy as np

    from ..faces import finder
    blank = np.zeros((64, 64, 3), np.uint8)
    finder.find_faces(blank)
    finder.landmarks68(blank, np.array([8.0, 8.0, 56.0, 56.0]))


def analyse(path: str, det, step: int) -> dict:
    """The detector's result of one file as its JSON (`doppel detect`'s scan, without report crops)."""
    from ..detect import scan
    return scan.scan(path, det, scan.ScanConfig(step=step, keep_crops=0), progress=False).to_json()


def scan_task(path: str, digest: str, attempt: int, step: int, analyser=None) -> dict:
    """Scan one file on this worker: {"data": ...} or {"error": reason, "retry": bool}."""
    from distributed import get_worker
    worker = get_worker()
    worker.log_event(START_TOPIC, {"digest": digest, "attempt": attempt, "worker": worker.address})
    det = worker.plugins[PLUGIN].detectors
    t0 = time.monotonic()
    try:
        data = (analyser or analyse)(path, det, step)
        return {"data": data, "worker": worker.address, "seconds": time.monotonic() - t0}
    except DoppelError as e:  # unreadable or not a video: the same every time, not retried
        return {"error": str(e), "retry": False, "worker": worker.address}
    except Exception as e:  # noqa: BLE001 - any other failure is one file's error, retried once
        log.warning("%s failed on %s", path, worker.address, exc_info=True)
        return {"error": f"{e.__class__.__name__}: {e}", "retry": True, "worker": worker.address}
