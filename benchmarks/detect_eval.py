"""Frame-level AUC and video-level accuracy of each detector, each cue and the fused verdict.

Usage: python benchmarks/detect_eval.py [LIST.csv] [--step N] [--minutes M]
LIST.csv has lines `path,label` (label 1 = fake, 0 = real; paths relative to
the list). Without a list: the FaceForensics++ pair in data/deepfake/ (never
used in training) plus three real clips that were held out of CNN training
(they did serve for calibration, so they flatter the real side).

Frame level: the most suspicious face of each analysed frame, scored by each
model, cue and the fusion, against the video's label (a cue whose fusion
coefficient is negative is negated first, so AUC > 0.5 always means "works in
the direction the fusion uses it"; a cue left out of the fusion keeps its own
direction, higher = more suspicious). Video AUC ranks the videos by each score
reduced by the verdict's rule (scan.video_score: mean of the more suspicious
half of the frames). Video accuracy: a model or cue calls a video fake when its
mean over frames lies on the fake side of the fusion's reference mean (no
threshold is tuned on the evaluated videos); the verdict uses its calibrated bands. A doppel
synthetic label would force FAKE, so videos doppel made are judged by the models alone (the
verdict's model_probability). Baseline in the same run: majority class (accuracy) and chance
(AUC 0.5). The articulation check (detect/articulation.py), which never enters the verdict, gets a video-level
row of its own where the videos have speech in their audio (low = suspicious).
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from doppel.detect import articulation, detectors, scan
from doppel.errors import DoppelError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEFAULT = [("deepfake/ffpp_pair_real.mp4", 0), ("deepfake/ffpp_pair_fake.mp4", 1),
           ("talking/retalking_face_5.mp4", 0), ("video/driving_d19.mp4", 0), ("video/source_s20.mp4", 0)]


def read_list(path: Path | None) -> list[tuple[Path, int]]:
    if path is None:
        return [(DATA / p, y) for p, y in DEFAULT]
    rows = [r for r in csv.reader(path.read_text().splitlines())
            if len(r) >= 2 and r[0].strip() != "path" and not r[0].startswith("#")]
    out = [((path.parent / r[0].strip()).resolve(), int(r[1])) for r in rows]
    missing = [p for p, _ in out if not p.exists()]
    if missing:  # said once, up front: a list naming generated files must say how to make them
        print(f"{len(missing)} of {len(out)} listed files are missing (see the comments in {path.name}): "
              + ", ".join(p.name for p in missing))
    return out


REPORT_ONLY = ["mouth_blur"]  # cues the report shows; a fusion may or may not read them (older weights do not)


def columns(det: detectors.Detectors) -> tuple[list[str], list[str]]:
    """(every column, the report-only cues the fusion does not read): the fusion's features, then those
    cues, then the fused score."""
    extra = [c for c in REPORT_ONLY if c not in det.fusion.names]
    return list(det.fusion.names) + extra + ["fused"], extra


def frame_table(result: scan.ScanResult, names: list[str]) -> np.ndarray:
    """(frames, len(names)) values of the most suspicious face."""
    rows = [[f.features().get(k) for k in names] for _, f in scan.top_faces(result.frames)]
    return np.array(rows, np.float64).reshape(-1, len(names))  # None -> NaN


def auc(y: np.ndarray, s: np.ndarray) -> str:
    ok = np.isfinite(s)
    return f"{roc_auc_score(y[ok], s[ok]):.3f}" if len(set(y[ok])) == 2 else "n/a"


def video_score(column: np.ndarray) -> float:
    """The verdict's video rule on one score column (NaN where a cue was not measurable)."""
    ok = column[np.isfinite(column)]
    return scan.video_score(ok) if ok.size else np.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("list", nargs="?", type=Path, help="CSV of path,label (1 = fake)")
    ap.add_argument("--step", type=int, default=scan.ScanConfig.step)
    ap.add_argument("--minutes", type=float, default=10.0, help="stop scanning new videos after this")
    ap.add_argument("--weights", default=str(detectors.WEIGHTS_DIR))
    a = ap.parse_args()
    torch.set_num_threads(1)
    det = detectors.Detectors.load(a.weights)
    cfg = scan.ScanConfig(step=a.step)
    names, report_only = columns(det)
    extra = [1.0] * len(report_only)  # own direction (higher = more suspicious); no reference mean to call by
    sign = np.where(np.array(det.fusion.coef + extra + [1.0]) < 0, -1.0, 1.0)
    ref = np.array(det.fusion.mean + [np.nan] * len(report_only) + [0.0])
    tables, labels, verdicts, spreads = [], [], [], []
    t0 = time.monotonic()
    for path, y in read_list(a.list):
        if time.monotonic() - t0 > a.minutes * 60:
            print(f"time budget reached; skipped {path}")
            continue
        try:
            r = scan.scan(path, det, cfg, progress=False)
        except DoppelError as e:
            print(f"skipped {path}: {e}")
            continue
        t = frame_table(r, names)
        v = r.verdict.to_json()
        if v.get("forced_by"):  # judge doppel's own (labelled) output by the models, not by its label
            v.update(label=v["model_label"], probability=v["model_probability"])
        tag = " (doppel label ignored)" if r.verdict.forced_by else ""
        print(f"{path.name}: label {y}, verdict {v['label']} p={v['probability']}{tag}, {len(t)} frames with faces")
        tables.append(t)
        labels.append(y)
        verdicts.append(v)
        spreads.append((r.articulation or {}).get("articulation"))
    if not tables:
        raise SystemExit("nothing could be evaluated")
    y_frames = np.concatenate([np.full(len(t), y) for t, y in zip(tables, labels)])
    allf = np.concatenate(tables)
    labels = np.array(labels)
    print(f"\n{len(labels)} videos ({labels.sum()} fake), {len(y_frames)} frames")
    print(f"{'score':<18} {'frame AUC':>9} {'video AUC':>9} {'video acc':>9}")
    for k, n in enumerate(names):
        vids = np.array([video_score(t[:, k] * sign[k]) for t in tables])
        means = np.array([np.nanmean(t[:, k]) if np.isfinite(t[:, k]).any() else np.nan for t in tables])
        calls = (means - ref[k]) * sign[k] > 0
        acc = f"{np.mean(calls == labels.astype(bool)):.3f}" if np.isfinite(ref[k]) else "n/a"
        print(f"{n:<18} {auc(y_frames, allf[:, k] * sign[k]):>9} {auc(labels, vids):>9} {acc:>9}")
    measured = [(s, y) for s, y in zip(spreads, labels) if s is not None]
    if measured:
        spread, y_art = (np.array(c) for c in zip(*measured))
        low = spread < articulation.LOW
        print(f"{'articulation':<18} {'':>9} {auc(y_art, -spread):>9} {'':>9}  (video level, low = suspicious; "
              f"measured on {len(measured)} of {len(labels)} videos, below LOW: {low[y_art == 1].sum()} of "
              f"{(y_art == 1).sum()} fakes, {low[y_art == 0].sum()} of {(y_art == 0).sum()} reals; never part of "
              "the verdict)")
    decided = [(v["label"] == "FAKE") == bool(y) for v, y in zip(verdicts, labels) if v["label"] in ("FAKE", "REAL")]
    at_half = np.mean([(v["probability"] or 0) >= 0.5 for v in verdicts] == labels.astype(bool))
    majority = max(labels.mean(), 1 - labels.mean())
    print(f"\nverdict: accuracy at p=0.5 {at_half:.3f}; REAL/FAKE decided on {len(decided)}/{len(labels)} "
          f"videos, {np.mean(decided) if decided else float('nan'):.3f} of those right")
    print(f"baseline majority class: {majority:.3f}; verdict / baseline = {at_half / majority:.2f}x")


if __name__ == "__main__":
    main()
