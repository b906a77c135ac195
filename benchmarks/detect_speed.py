"""Seconds of 720p video `doppel detect` analyses per second of compute, default frame sampling.

Baseline measured in the same run: decoding the same video to RGB and nothing
else (the floor any scan pays). The scan decodes the file once: decoding and the
watermark read run ahead in a second thread (media.prefetch) while the main
thread analyses faces, so wall time can be below CPU time on two cores. Usage: python benchmarks/detect_speed.py
[--video PATH] [--step N] [--repeat K]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from doppel import media
from doppel.detect import detectors, scan

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of fn()."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default=str(DATA / "video" / "source_s32.mp4"), help="a 720p clip")
    ap.add_argument("--step", type=int, default=scan.ScanConfig.step, help="analyse every N-th frame")
    ap.add_argument("--repeat", type=int, default=2, help="runs; the fastest counts")
    ap.add_argument("--weights", default=str(detectors.WEIGHTS_DIR))
    a = ap.parse_args()
    torch.set_num_threads(1)  # as `doppel detect` runs: one process per file
    info = media.probe(a.video)
    det = detectors.Detectors.load(a.weights)
    cfg = scan.ScanConfig(step=a.step)
    decode = min(timed(lambda: sum(1 for _ in media.iter_frames(a.video)))[0] for _ in range(a.repeat))
    runs = [timed(lambda: scan.scan(a.video, det, cfg, progress=False)) for _ in range(a.repeat)]
    wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
    print(f"video: {Path(a.video).name} {info.width}x{info.height} {info.duration:.1f} s, step {a.step}, "
          f"1 torch thread, 1 process (decoding and the watermark read in a second thread)")
    print(f"detect: {info.duration / wall:.2f} s of video per wall second "
          f"({info.duration / cpu:.2f} per CPU second of this process)")
    print(f"baseline decode only: {info.duration / decode:.2f} s of video per second; "
          f"scan costs {wall / decode:.1f}x decoding")
    print(f"real time on one process: {'yes' if wall <= info.duration else 'no'} "
          f"(--jobs 2 analyses two files at once on 2 cores)")


if __name__ == "__main__":
    main()
