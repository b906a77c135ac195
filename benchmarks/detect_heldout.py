"""Compare detector weight folders on the same held-out faces and the same doppel blends.

Usage: python benchmarks/detect_heldout.py [WEIGHTS_DIR ...] [--limit N] [--corpus N] [--clips N]
       [--seed S] [--cache DIR]
Default: the shipped weights only. Three held-out sets, each face scored as it is
and as a fresh doppel blend (self-blended or X-ray, train.features), both through
the same random degradations, with one seed, so every folder sees identical inputs:
- calib: every 3rd frame (up to --limit) of the calibration clips (held out of CNN
  and fusion training, but they fitted every trained folder's Platt map);
- corpus: --corpus photos of corpus identities of the test part (dataset.corpus_part:
  never trained on, fused or calibrated by `detect train --corpus`), no temporal cues;
- clips: --clips frames (every 3rd) of each real clip of corpus/talking (MEAD and the
  two presenters: used by no `detect train`), with temporal cues.
Prints per set and folder the frame-level AUC of the CNN and of the fusion, the
pseudo-clip AUC (video rule) where there are clips, and for the clips the share of
real pseudo-clips the calibrated verdict calls FAKE (p >= 0.7); then the ratio of each
AUC to the first folder's (the baseline, measured in the same run).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from doppel.detect import dataset, models, scan, train

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def calib_faces(limit: int, cache: str | None) -> list:
    faces = []
    for clip in train.CALIB_CLIPS:
        path = next(DATA.glob(f"*/{clip}.mp4"))
        faces += dataset.cached(cache, {"clip": str(path.resolve()), "every": 3, "limit": limit},
                                lambda: dataset.faces_from_video(path, 3, limit))
    return faces


def test_clips(limit: int, cache: str | None) -> list:
    """Faces of the corpus's real talking clips: MEAD (3 speakers x 8 emotions) and two presenters."""
    faces = []
    for path in sorted((DATA / "corpus" / "talking").rglob("*.mp4")):
        faces += dataset.cached(cache, {"clip": str(path.resolve()), "every": 3, "limit": limit},
                                lambda: dataset.faces_from_video(path, 3, limit))
    return faces


def scores(folder: str, faces: list, seed: int, clips: bool) -> dict:
    det = models.Detectors.load(folder)
    x, y, g, k = train.features(det, faces, np.random.default_rng(seed), Path(folder).name)
    fused, cnn = det.fusion.logit(x), x[:, scan.FUSION_FEATURES.index("cnn")]
    out = {"cnn frame": train._auc(y, cnn), "fused frame": train._auc(y, fused)}
    if clips:
        cfg = train.TrainConfig()
        clip_f, clip_y, _ = train.pseudo_clips(fused, y, g, cfg, k)
        clip_c, _, _ = train.pseudo_clips(cnn, y, g, cfg, k)
        p = det.platt.prob(clip_f)
        out.update({"cnn clip": train._auc(clip_y, clip_c), "fused clip": train._auc(clip_y, clip_f),
                    "real clips FAKE": round(float((p[clip_y == 0] >= scan.ScanConfig.fake_at).mean()), 3),
                    "blend clips FAKE": round(float((p[clip_y == 1] >= scan.ScanConfig.fake_at).mean()), 3)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="*", default=[str(models.WEIGHTS_DIR)])
    ap.add_argument("--limit", type=int, default=48, help="faces per calibration clip (0: leave that set out)")
    ap.add_argument("--corpus", type=int, default=0, help="test-part corpus identities (0: none)")
    ap.add_argument("--clips", type=int, default=0, help="faces per corpus/talking clip (0: none)")
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--cache", help="face cache folder (as for detect train --cache)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    sets = {"calib": (calib_faces(a.limit, a.cache), True)} if a.limit else {}
    if a.corpus:
        sets["corpus"] = (train.corpus(DATA, "test", a.corpus, a.cache), False)
    if a.clips:
        sets["clips"] = (test_clips(a.clips, a.cache), True)
    for name, (faces, clips) in sets.items():
        rows = {w: scores(w, faces, a.seed, clips) for w in a.weights}
        base = rows[a.weights[0]]
        print(f"[{name}] {len(faces)} held-out faces (x2: real and blended); AUC (ratio to {a.weights[0]})")
        for w, r in rows.items():
            print(f"  {w}: " + ", ".join(_cell(k, v, base[k]) for k, v in r.items()))


def _cell(key: str, value: float | None, base: float | None) -> str:
    if value is None:
        return f"{key} n/a"
    ratio = f" ({value / base:.2f}x)" if base and "FAKE" not in key else ""  # shares have no useful ratio
    return f"{key} {value:.3f}{ratio}"


if __name__ == "__main__":
    main()
