"""The articulation check (detect/articulation.py) on labelled videos: real speakers against lip-syncs.

Usage: python benchmarks/articulation.py --set selection|test [--fakes DIR] [--grid N] [--jobs 2]
       python benchmarks/articulation.py --real A.mp4 ... --fake B.mp4 ...
Every file goes through `doppel detect`'s own scan (default step); the check needs speech in the audio, so
files without it are listed as not measured and left out of the figures. Sets:
- selection (what LOW and REAL_RANGE were set on): the sample clips with speech (talking/retalking_face_1-5,
  the HDTF clip, video/driving_d20) against doppel's lip-syncs of the sample clips (--fakes, default
  /tmp/df: lipsync_*.mp4 from scripts/make_detect_fakes.py);
- test (never used to set anything): corpus/talking german_20s and may_5s and the first --grid GRID s1
  sentences against doppel's lip-syncs of the MEAD test clips (--fakes, default /tmp/tf/fakes:
  lipsync_*.mp4 from scripts/make_test_fakes.py; the MEAD clips themselves have no audio).
Prints each file's articulation, each side's range, the AUC (low = lip-sync) and the share of each side
below articulation.LOW, against the baseline that calls nothing low (0 of either).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SELECTION_REAL = [DATA / "talking" / f"retalking_face_{i}.mp4" for i in range(1, 6)] + [
    DATA / "talking" / "hdtf_WDA_AlexandriaOcasioCortez_000.mp4", DATA / "video" / "driving_d20.mp4"]


def measure(path: str) -> tuple[str, float | None, int, str]:
    """(file, articulation or None, speech frames, note) from a full scan of the file."""
    import torch

    from doppel.detect import detectors, scan
    torch.set_num_threads(1)
    det = detectors.Detectors.load()
    a = scan.scan(path, det, progress=False).articulation or {}
    return path, a.get("articulation"), a.get("speech_frames", 0), a.get("note", "image")


def main() -> None:
    from doppel.detect import articulation
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=["selection", "test"])
    ap.add_argument("--fakes", help="folder of doppel's lip-syncs (lipsync_*.mp4)")
    ap.add_argument("--grid", type=int, default=30, help="GRID s1 sentences among the test's real speakers")
    ap.add_argument("--real", nargs="*", default=[], help="real videos with speech")
    ap.add_argument("--fake", nargs="*", default=[], help="lip-synced videos")
    ap.add_argument("--jobs", type=int, default=2, help="files scanned at once")
    a = ap.parse_args()
    real, fake = list(a.real), list(a.fake)
    if a.set == "selection":
        real += [str(p) for p in SELECTION_REAL]
        fake += [str(p) for p in sorted(Path(a.fakes or "/tmp/df").glob("lipsync_*.mp4"))]
    elif a.set == "test":
        real += [str(DATA / "corpus" / "talking" / n) for n in ("german_20s.mp4", "may_5s.mp4")]
        real += [str(p) for p in sorted((DATA / "corpus" / "grid_s1").glob("*.mpg"))[: a.grid]]
        fake += [str(p) for p in sorted(Path(a.fakes or "/tmp/tf/fakes").glob("lipsync_*.mp4"))]
    if not real or not fake:
        ap.error("give --set, or real and fake files")
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(a.jobs, ctx) as pool:
        got = dict(zip(real + fake, pool.map(measure, real + fake)))
    values = {}
    for side, files in (("real", real), ("lip-sync", fake)):
        values[side] = [got[f][1] for f in files if got[f][1] is not None]
        for f in files:
            _, v, n, note = got[f]
            print(f"{side:8s} {Path(f).name:48s} " + (f"{v:.3f} ({n} speech frames)" if v is not None else note))
    print(f"articulation.LOW = {articulation.LOW}, REAL_RANGE = {articulation.REAL_RANGE}")
    for side, v in values.items():
        low = sum(x < articulation.LOW for x in v)
        print(f"{side}: {len(v)} measured, range {min(v):.3f}-{max(v):.3f}, median {np.median(v):.3f}; "
              f"below LOW {low} of {len(v)} ({low / len(v):.0%})" if v else f"{side}: none measured")
    if values["real"] and values["lip-sync"]:
        y = [0] * len(values["real"]) + [1] * len(values["lip-sync"])
        low_first = -np.array(values["real"] + values["lip-sync"])  # low articulation = lip-sync
        print(f"AUC (low articulation = lip-sync): {roc_auc_score(y, low_first):.3f}; "
              "baseline (no check): 0.5, and nothing called low")


if __name__ == "__main__":
    main()
