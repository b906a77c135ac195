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
The blends, degradations and cues are drawn and measured once (`--samples DIR` keeps
them for later runs) and each folder's CNN, Fourier model and fusion score them.
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

from tqdm import tqdm

from doppel.detect import augment, cues, dataset, models, scan, train
from doppel.faces import detect

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


def prepare(faces: list, seed: int, desc: str) -> dict:
    """Every face as it is and as a fresh blend, degraded, landmarks refitted, cues measured: the
    inputs of train.features, drawn draw for draw as it draws them, but without any model, so the
    cues (most of the cost) are measured once for every folder. Returns arrays (npz-able)."""
    rng = np.random.default_rng(seed)
    out = {k: [] for k in ("image", "landmarks", "spectrum", "cues", "y", "group", "kind")}

    def add(pair: list, landmarks: np.ndarray, y: int, group: str, kind: str) -> None:
        box = detect.box_from_landmarks(landmarks)
        img, *prev = augment.degrade([p for p in pair if p is not None], rng)
        prev = prev[0] if prev else None
        lm = detect.landmarks68(img, box)
        feats = cues.face_cues(img, lm, prev, detect.landmarks68(prev, box) if prev is not None else None)
        for k, v in (("image", img), ("landmarks", lm), ("spectrum", models.spectrum(img, lm)),
                     ("cues", [feats.get(n, np.nan) for n in scan.FUSION_FEATURES]), ("y", y), ("group", group),
                     ("kind", kind)):
            out[k].append(v)

    for f in tqdm(faces, desc=desc, unit="face", leave=False):
        fake, fake_prev = dataset.make_fake(f, [d for d in faces if d.group != f.group], rng)
        add([f.image, f.prev_image], f.landmarks, 0, f.group, "real")
        add([fake, fake_prev], f.landmarks, 1, f.group, train.BLEND)
    return {k: np.array(v, dtype=np.float64 if k == "cues" else None) for k, v in out.items()}


def prepared(faces: list, seed: int, name: str, folder: str | None) -> dict:
    """prepare(), kept in `folder` (a run with the same faces and seed reuses it)."""
    if not folder:
        return prepare(faces, seed, name)
    path = Path(folder) / f"heldout-{name}-{len(faces)}-{seed}.npz"
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    prep = prepare(faces, seed, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **prep)
    return prep


def rows(det: models.Detectors, prep: dict) -> np.ndarray:
    """The fusion features of prepared faces under one folder's models (what train.features gives)."""
    crops = np.stack([models.cnn_crop(i, lm, det.cnn.cfg) for i, lm in zip(prep["image"], prep["landmarks"])])
    x = prep["cues"].copy()
    x[:, scan.FUSION_FEATURES.index("cnn")] = models.cnn_logits(det.cnn, crops)
    x[:, scan.FUSION_FEATURES.index("fourier")] = det.fourier.logit(prep["spectrum"])
    return x


def scores(folder: str, prep: dict, clips: bool) -> dict:
    det = models.Detectors.load(folder)
    x, y, g, k = rows(det, prep), prep["y"].astype(int), list(prep["group"]), list(prep["kind"])
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
    ap.add_argument("--samples", help="folder keeping the prepared (blended, degraded, cue-measured) faces")
    a = ap.parse_args()
    torch.set_num_threads(1)
    sets = {"calib": (calib_faces(a.limit, a.cache), True)} if a.limit else {}
    if a.corpus:
        sets["corpus"] = (train.corpus(DATA, "test", a.corpus, a.cache), False)
    if a.clips:
        sets["clips"] = (test_clips(a.clips, a.cache), True)
    for name, (faces, clips) in sets.items():
        prep = prepared(faces, a.seed, name, a.samples)
        table = {w: scores(w, prep, clips) for w in a.weights}
        base = table[a.weights[0]]
        print(f"[{name}] {len(faces)} held-out faces (x2: real and blended); AUC (ratio to {a.weights[0]})")
        for w, r in table.items():
            print(f"  {w}: " + ", ".join(_cell(k, v, base[k]) for k, v in r.items()))


def _cell(key: str, value: float | None, base: float | None) -> str:
    if value is None:
        return f"{key} n/a"
    ratio = f" ({value / base:.2f}x)" if base and "FAKE" not in key else ""  # shares have no useful ratio
    return f"{key} {value:.3f}{ratio}"


if __name__ == "__main__":
    main()
