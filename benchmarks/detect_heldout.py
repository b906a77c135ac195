"""Compare detector weight folders on the same held-out faces and the same doppel blends.

Usage: python benchmarks/detect_heldout.py [WEIGHTS_DIR ...] [--limit N] [--seed S]
Default: the shipped weights only. The faces are every 3rd frame (up to --limit)
of the calibration clips (held out of CNN and fusion training); each is scored
as it is and as a fresh doppel blend, both through the same random
degradations (train.features), with one seed, so every folder sees identical
inputs. Prints frame-level AUC of the CNN and the fusion and pseudo-clip AUC
(video rule) for each folder, and the ratio against the first folder (the
baseline, measured in the same run). The calibration clips did fit the Platt
map of every trained folder; AUCs do not depend on it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from doppel.detect import dataset, models, train

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def heldout_faces(limit: int, clips: int | None = None) -> list:
    faces = []
    for clip in train.CALIB_CLIPS[:clips]:
        faces += dataset.faces_from_video(next(DATA.glob(f"*/{clip}.mp4")), 3, limit)
    return faces


def scores(folder: str, faces: list, seed: int) -> dict:
    det = models.Detectors.load(folder)
    x, y, g, kinds = train.features(det, faces, np.random.default_rng(seed), Path(folder).name)
    fused, cnn = det.fusion.logit(x), x[:, 0]
    cfg = train.TrainConfig()
    clip_f, clip_y, _ = train.pseudo_clips(fused, y, g, cfg, kinds)
    clip_c, _, _ = train.pseudo_clips(cnn, y, g, cfg, kinds)
    return {"cnn frame": train._auc(y, cnn), "fused frame": train._auc(y, fused),
            "cnn clip": train._auc(clip_y, clip_c), "fused clip": train._auc(clip_y, clip_f)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="*", default=[str(models.WEIGHTS_DIR)])
    ap.add_argument("--limit", type=int, default=48, help="faces per calibration clip")
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--clips", type=int, default=None, help="use only the first N calibration clips (smoke runs)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    faces = heldout_faces(a.limit, a.clips)
    rows = {w: scores(w, faces, a.seed) for w in a.weights}
    base = rows[a.weights[0]]
    print(f"{len(faces)} held-out faces (x2: real and blended); AUC (ratio to {a.weights[0]})")
    for w, r in rows.items():
        print(f"{w}: " + ", ".join(f"{k} {_f(v)} ({_ratio(v, base[k])})" for k, v in r.items()))


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _ratio(v, b) -> str:
    return "n/a" if v is None or not b else f"{v / b:.2f}x"


if __name__ == "__main__":
    main()
