"""How a detector CNN's AUC moves with the scale of its face crop, on selection data (never the test set).

Usage: python benchmarks/detect_scale.py [WEIGHTS_DIR ...] [--coverages 0.52,0.56,0.6] [--fakes DIR]
       [--limit N] [--corpus N] [--cache DIR] [--samples DIR] [--seed S] [--reenact]
A scan cuts every face at the coverage the weights record (the landmark box's share of the crop);
this scores each folder's CNN on the same prepared faces cut at other coverages too. Sets:
- calib / fusion: every 3rd frame (up to --limit) of the calibration or fusion clips of `detect
  train` (no CNN training saw them), each real and as a fresh blend, plus with --fakes the faces of
  doppel's fake videos of those clips (<kind>_<clip>.mp4, scripts/make_detect_fakes.py), by kind;
  with --reenact, reenactment blends of the clips' faces too (kind "reenact");
- val: --corpus photos of the corpus identities that validate the CNN as it trains (fusion part),
  real and blended through `cnn_fit.validation_crops`, as training validates.
Prints per set, folder and coverage the frame AUC against each kind (and the pseudo-clip AUC, video
rule, for clips), and each AUC's ratio to the folder's own coverage in the same run (the baseline).
The test split (benchmarks/detect_heldout.py) stays out: choose a coverage here, test it there once.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detect_heldout as heldout  # noqa: E402  (the same faces, fakes and preparation as the test's)

from doppel.detect import cnn_fit, detectors, train  # noqa: E402

DATA = heldout.DATA


def logits(det: detectors.Detectors, prep: dict, coverage: float) -> np.ndarray:
    """The face scores with the face CNN's crop at `coverage` (a partner CNN's crop stays at its own)."""
    return det.face_logits(heldout.crops(prep, replace(det.cnn.cfg, coverage=coverage)),
                           heldout.crops(prep, det.partner.cfg) if det.partner is not None else None)


def clip_table(det: detectors.Detectors, prep: dict, coverage: float) -> dict:
    """{kind: (frame AUC, pseudo-clip AUC)} of real faces against each kind of fake."""
    s, y = logits(det, prep, coverage), prep["y"].astype(int)
    k, g = np.array(prep["kind"]), list(prep["group"])
    out = {}
    for kind in [train.BLEND] + sorted(set(k) - {"real", train.BLEND}):
        m = np.isin(k, ["real", kind])
        cs, cy, _ = train.pseudo_clips(s[m], y[m], list(np.array(g)[m]), train.TrainConfig(), list(k[m]))
        out[str(kind)] = (train._auc(y[m], s[m]), train._auc(cy, cs))
    return out


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="*", default=[str(detectors.WEIGHTS_DIR)])
    ap.add_argument("--coverages", default="0.52,0.56,0.6", help="comma-separated crop coverages to try")
    ap.add_argument("--fakes", help="folder of doppel's fake videos of the sample clips (<kind>_<clip>.mp4)")
    ap.add_argument("--limit", type=int, default=96, help="faces per calibration or fusion clip (0: no clip sets)")
    ap.add_argument("--corpus", type=int, default=300, help="validation corpus identities (0: none)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cache", help="face cache folder (as for detect train --cache)")
    ap.add_argument("--reenact", action="store_true",
                    help="also score reenactment blends of the clips' faces (kind 'reenact', detect_heldout --reenact)")
    ap.add_argument("--samples", help="folder keeping the prepared (blended, degraded) faces for later runs")
    a = ap.parse_args()
    torch.set_num_threads(1)
    covers = [float(c) for c in a.coverages.split(",") if c]
    dets = {w: detectors.Detectors.load(w) for w in a.weights}
    fakes = heldout.fake_faces(Path(a.fakes), a.limit // 2, train.CALIB_CLIPS + train.FUSION_CLIPS, a.cache) \
        if a.fakes and a.limit else []
    for name, clips in (("calib", train.CALIB_CLIPS), ("fusion", train.FUSION_CLIPS)) if a.limit else ():
        faces = heldout.calib_faces(a.limit, a.cache, clips)
        mine = [f for f in fakes if f.group in clips]
        prep = heldout.prepared(faces, a.seed, f"scale-{name}", a.samples, mine, reenact=a.reenact)
        print(f"[{name}] {len(faces)} real faces of {', '.join(clips)} (and as many blends), {len(mine)} faces of "
              "doppel's fake videos; frame AUC / pseudo-clip AUC (ratio of the frame AUC to the folder's own coverage)")
        for w, det in dets.items():
            base = clip_table(det, prep, det.cnn.cfg.coverage)
            for c in sorted(set(covers) | {det.cnn.cfg.coverage}):
                t = base if c == det.cnn.cfg.coverage else clip_table(det, prep, c)
                cells = [f"{k} {_f(f)}/{_f(p)} ({_f(f / base[k][0] if f and base[k][0] else None)}x)"
                         for k, (f, p) in t.items()]
                print(f"  {w} @ {c:g}{' (its own)' if c == det.cnn.cfg.coverage else ''}: " + ", ".join(cells))
    if a.corpus:
        faces = train.corpus(DATA, "fusion", a.corpus, a.cache, train.CNN_SIDE)
        print(f"[val] {len(faces)} corpus identities of the fusion part (the CNN's validation), real against blends; "
              "frame AUC (ratio to the folder's own coverage)")
        for w, det in dets.items():
            own = det.cnn.cfg.coverage
            auc = {c: cnn_fit.val_auc(det.cnn, cnn_fit.validation_crops(faces, replace(det.cnn.cfg, coverage=c), 0))
                   for c in sorted(set(covers) | {own})}
            print(f"  {w}: " + ", ".join(f"@ {c:g} {v:.4f} ({v / auc[own]:.3f}x)" for c, v in auc.items()))


if __name__ == "__main__":
    main()
