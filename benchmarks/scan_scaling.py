"""files/s of `doppel scan` with 1 and 2 local worker processes, against a plain loop and `doppel detect --jobs`.

All on the same files in one run: the first N GRID clips of ../shared/data/corpus/grid_s1
(3 s, 360x288, distinct contents, so none is skipped as a copy). Prints:
  loop        models loaded once, files scanned one after another in this process
  scan 1w/2w  Driver.run on a LocalCluster already started (startup printed apart)
  detect j2   `doppel detect --jobs 2` (a process pool; it also writes reports)
and the ratios: 2 workers / 1 worker, and the per-file overhead of the cluster
(1 worker against the loop), and how many results a second the store records
(the driver's one transaction per file; a real result of the last clip, stored
--store-rows times under new hashes). Usage:
python benchmarks/scan_scaling.py [--files 8] [--step 6] [--store-rows 500]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def loop(files: list[Path], step: int) -> tuple[float, dict]:
    """(seconds, the last file's result)."""
    import torch

    from doppel.detect import detectors
    from doppel.scan import worker
    torch.set_num_threads(1)
    det = detectors.Detectors.load()
    worker._warm_up()
    t = time.monotonic()
    for f in files:
        data = worker.analyse(str(f), det, step)
    return time.monotonic() - t, data


def store_rate(data: dict, rows: int, db: Path) -> float:
    """Results recorded per second, each in its own transaction as the driver records them."""
    from doppel.scan.store import Store
    with Store(db) as store:
        t = time.monotonic()
        for i in range(rows):
            store.record_result(f"{i:064x}", f"/bench/{i}.mpg", 1, data, "tcp://w:1", 1)
        return rows / (time.monotonic() - t)


def cluster_scan(files: list[Path], step: int, n: int, db: Path) -> tuple[float, float]:
    """(startup seconds incl. the plugin's model load, scan seconds)."""
    from doppel.scan import cluster, sources
    from doppel.scan.store import Store
    t = time.monotonic()
    with cluster.connect(None, n) as client, Store(db) as store:
        found, _ = sources.resolve(files, store, progress=False)
        driver = cluster.Driver(client, store, cluster.ScanSettings(step=step), progress=False)
        t_up = time.monotonic() - t
        t = time.monotonic()
        counts = driver.run(found)
        t_scan = time.monotonic() - t
    assert counts["done"] == len(files), counts
    return t_up, t_scan


def detect_jobs(files: list[Path], step: int, jobs: int, out: Path) -> float:
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "doppel.cli", "-q", "detect", *map(str, files), "-o", str(out),
                    "--jobs", str(jobs), "--step", str(step)], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--step", type=int, default=6)
    ap.add_argument("--store-rows", type=int, default=500)
    a = ap.parse_args()
    files = sorted((DATA / "corpus" / "grid_s1").glob("*.mpg"))[: a.files]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t_loop, data = loop(files, a.step)
        per_s = store_rate(data, a.store_rows, tmp / "store.sqlite")
        up1, t1 = cluster_scan(files, a.step, 1, tmp / "w1.sqlite")
        up2, t2 = cluster_scan(files, a.step, 2, tmp / "w2.sqlite")
        t_det = detect_jobs(files, a.step, 2, tmp / "detect")
    n = len(files)
    print(f"{n} GRID clips, step {a.step}")
    print(f"loop (1 process)       {n / t_loop:6.2f} files/s  ({t_loop:.1f} s)")
    print(f"scan 1 worker          {n / t1:6.2f} files/s  ({t1:.1f} s; cluster up in {up1:.1f} s)")
    print(f"scan 2 workers         {n / t2:6.2f} files/s  ({t2:.1f} s; cluster up in {up2:.1f} s)")
    print(f"detect --jobs 2        {n / t_det:6.2f} files/s  ({t_det:.1f} s incl. process start and reports)")
    print(f"ratio 2 workers / 1 worker: {t1 / t2:.2f}x; scan 2 workers / detect --jobs 2: {t_det / t2:.2f}x")
    print(f"cluster overhead per file (1 worker - loop): {(t1 - t_loop) / n * 1000:+.0f} ms")
    faces = sum(len(fr["faces"]) for fr in data["frames"])
    print(f"store: {per_s:.0f} results/s, one transaction each ({a.store_rows} rows of {len(data['frames'])} "
          f"frames, {faces} faces)")


if __name__ == "__main__":
    main()
