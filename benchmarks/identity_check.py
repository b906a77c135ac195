"""How well `doppel detect --reference` tells the claimed person from someone else.

Usage: python benchmarks/identity_check.py [--mead DIR] [--step 25] [--clips 4] [--swap VIDEO REFERENCE]

Each MEAD speaker's neutral clip is the reference; the speaker's other (emotional)
clips are genuine videos, the other speakers' clips impostors (a face swap onto
the claimed person's video shows the same way: another person's face). Per video
the median distance of its checked frames (scan with --reference, about one
frame a second) is called "same person" below dlib's 0.6. Printed: median
distances, the share of videos called right for each group, and the baseline of
always answering "same person". `--swap VIDEO REFERENCE` adds one video (e.g. a
doppel swap of A's clip) scored against a reference of the person it replaced.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from doppel.detect import identity, detectors, scan

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def median_distance(path: Path, ref: dict, det, step: int) -> float:
    r = scan.scan(path, det, scan.ScanConfig(step=step, keep_crops=0), progress=False, reference=ref)
    return r.identity["median"] if r.identity["median"] is not None else np.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mead", type=Path, default=DATA / "corpus" / "talking" / "mead")
    ap.add_argument("--step", type=int, default=25, help="analyse every N-th frame (identity: ~1 a second)")
    ap.add_argument("--clips", type=int, default=4, help="other clips per speaker scanned")
    ap.add_argument("--swap", nargs=2, type=Path, metavar=("VIDEO", "REFERENCE"))
    a = ap.parse_args()
    det = detectors.Detectors.load(detectors.WEIGHTS_DIR)
    speakers = sorted({p.name.split("_")[0] for p in a.mead.glob("*.mp4")})
    refs = {s: identity.reference_embedding([next(a.mead.glob(f"{s}_front_neutral_*.mp4"))]) for s in speakers}
    genuine, impostor = [], []
    t0 = time.monotonic()
    for s in speakers:
        clips = sorted(p for p in a.mead.glob(f"{s}_*.mp4") if "neutral" not in p.name)[: a.clips]
        for clip in clips:
            for other in speakers:
                d = median_distance(clip, refs[other], det, a.step)
                (genuine if other == s else impostor).append(d)
                print(f"{clip.name} vs reference {other}: {d:.3f}")
    g, i = np.array(genuine), np.array(impostor)
    print(f"\n{len(speakers)} speakers, {len(g)} genuine and {len(i)} impostor (video, reference) pairs, "
          f"{time.monotonic() - t0:.0f} s")
    print(f"median distance: genuine {np.nanmedian(g):.3f} (max {np.nanmax(g):.3f}), "
          f"impostor {np.nanmedian(i):.3f} (min {np.nanmin(i):.3f})")
    right = np.r_[g <= identity.SAME_PERSON, i > identity.SAME_PERSON]
    print(f"called right at {identity.SAME_PERSON}: genuine {np.mean(g <= identity.SAME_PERSON):.3f}, "
          f"impostor {np.mean(i > identity.SAME_PERSON):.3f}, all {right.mean():.3f}; "
          f"baseline 'always the same person' {len(g) / len(right):.3f}")
    if a.swap:
        ref = identity.reference_embedding([a.swap[1]])
        print(f"\n{a.swap[0].name} against {a.swap[1].name}: median distance "
              f"{median_distance(a.swap[0], ref, det, a.step):.3f}; the reference against itself: "
              f"{median_distance(a.swap[1], ref, det, a.step):.3f}")


if __name__ == "__main__":
    main()
