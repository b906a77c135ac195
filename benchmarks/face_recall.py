"""Recall and false faces of the face finder on planted scenes, beside the old 384 px finder.

    python benchmarks/face_recall.py                 # 30 scenes, 4 faces each
    python benchmarks/face_recall.py --scenes 60 --seed 1

Each scene is a real background (a part of a frame of a ../shared/data/video clip
away from its face, scaled up to 1280x720 or 1920x1080) with faces from
../shared/data (LFW corpus photos and studio portraits) pasted at 24-160 px
(width of the 68-point box) with a soft elliptical edge. Scenes cycle through
three conditions: plain, dark (the whole scene through gamma 2-3) and turned (a
camera on its side: the scene is composed upright and turned 90 degrees).
A planted face counts as found when a found face's landmark box overlaps it
with IoU >= 0.3; every other found face is a false face. Both finders see the
same scenes in the same run. Backgrounds on which either finder already finds
a face are skipped (and counted), so the planted faces are the only true ones.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from doppel import media  # noqa: E402
from doppel.faces import detect  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SIZES = (24, 160)  # planted 68-point box widths, px (log-uniform)
BINS = ((24, 40), (40, 80), (80, 161))
CONDITIONS = ("plain", "dark", "turned")
FRAMES = ((1280, 720), (1920, 1080))
MATCH_IOU = 0.3
FINDERS = {"new (default)": detect.DetectConfig(), "old (384 px, fast pass only)": detect.OLD_FINDER}


def face_sources(rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(photo, its 68 landmarks) for `count` distinct people: LFW corpus photos and studio portraits."""
    files = sorted((DATA / "corpus" / "lfw").glob("*.jpg")) + sorted((DATA / "corpus" / "studio" / "canada").glob("*.jpg"))
    out = []
    for i in rng.permutation(len(files)):
        image = media.read_image(files[i])
        faces = detect.find_faces(image, detect.DetectConfig(min_face=0, turns=False))
        if len(faces) == 1 and faces[0].box[2] - faces[0].box[0] > 80:
            out.append((image, faces[0].landmarks))
        if len(out) == count:
            return out
    return out


def backgrounds(count: int) -> list[np.ndarray]:
    """Parts of video frames beside their face (the larger side strip), up to `count`."""
    out = []
    clips = sorted((DATA / "video").glob("*.mp4"))
    for clip in clips:
        for frame in media.iter_frames(clip, step=40):
            faces = detect.find_faces(frame.image, deep="if-none")
            if not faces:
                continue
            x0, _, x1, _ = faces[0].box
            w = frame.image.shape[1]
            strip = frame.image[:, : int(max(0, x0 - 10))] if x0 > w - x1 else frame.image[:, int(min(w, x1 + 10)):]
            if strip.shape[1] >= 80:
                out.append(strip)
            if len(out) >= count:
                return out
    return out


def paste(canvas: np.ndarray, photo: np.ndarray, landmarks: np.ndarray, width: float, at: tuple[int, int]
          ) -> np.ndarray:
    """Paste the face of `photo` so its 68-point box is `width` px wide with its top-left at `at`;
    returns the planted landmark box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = detect.landmarks_box(landmarks)
    s = width / (x1 - x0)
    m = 0.35 * (x1 - x0)
    cx0, cy0 = int(max(0, x0 - m)), int(max(0, y0 - 1.2 * m))
    cx1, cy1 = int(min(photo.shape[1], x1 + m)), int(min(photo.shape[0], y1 + m))
    crop = photo[cy0:cy1, cx0:cx1]
    size = (max(2, round(crop.shape[1] * s)), max(2, round(crop.shape[0] * s)))
    crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = np.zeros(crop.shape[:2], np.float32)
    cv2.ellipse(alpha, (size[0] // 2, size[1] // 2), (size[0] // 2, size[1] // 2), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, 0.06 * size[0]))[..., None]
    ox = at[0] - round((x0 - cx0) * s)
    oy = at[1] - round((y0 - cy0) * s)
    region = canvas[oy:oy + size[1], ox:ox + size[0]]
    region[:] = (alpha * crop + (1 - alpha) * region).astype(np.uint8)
    return np.array([at[0], at[1], at[0] + (x1 - x0) * s, at[1] + (y1 - y0) * s])


def scene(rng, bg: np.ndarray, faces, size: tuple[int, int], condition: str, per_scene: int):
    """One planted scene (H, W, 3) and its planted landmark boxes in scene pixels."""
    w, h = size
    cw, ch = (h, w) if condition == "turned" else (w, h)
    canvas = np.ascontiguousarray(cv2.resize(bg, (cw, ch), interpolation=cv2.INTER_CUBIC))
    boxes: list[np.ndarray] = []
    for photo, lm in (faces[i] for i in rng.choice(len(faces), per_scene, replace=False)):
        width = float(np.exp(rng.uniform(*np.log(SIZES))))
        for _ in range(50):  # a free place, away from the other faces and the edges
            x, y = int(rng.uniform(0.7 * width, cw - 2 * width)), int(rng.uniform(width, ch - 2 * width))
            cand = np.array([x, y, x + width, y + width * 1.1])
            if all(detect.iou(np.r_[cand[:2] - width, cand[2:] + width], b) == 0 for b in boxes):
                boxes.append(paste(canvas, photo, lm, width, (x, y)))
                break
    if condition == "dark":
        gamma = rng.uniform(2.0, 3.0)
        canvas = cv2.LUT(canvas, np.round(255 * (np.arange(256) / 255) ** gamma).astype(np.uint8))
    if condition == "turned":
        boxes = [detect.turn_box(b, 1, canvas.shape) for b in boxes]
        canvas = np.ascontiguousarray(np.rot90(canvas, 1))
    return canvas, boxes


def score(found: list[detect.Face], planted: list[np.ndarray]) -> tuple[list[bool], int]:
    """Which planted boxes were found, and the number of false faces."""
    boxes = [detect.landmarks_box(f.landmarks) for f in found]
    hit, used = [], set()
    for p in planted:
        best = max(range(len(boxes)), key=lambda i: detect.iou(p, boxes[i]), default=None)
        ok = best is not None and best not in used and detect.iou(p, boxes[best]) >= MATCH_IOU
        if ok:
            used.add(best)
        hit.append(ok)
    return hit, len(boxes) - len(used)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=30, help="planted scenes")
    p.add_argument("--faces", type=int, default=4, help="faces per scene")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    faces = face_sources(rng, 40)
    bgs, skipped = [], 0
    for bg in backgrounds(3 * args.scenes):
        if any(detect.find_faces(bg, cfg) for cfg in FINDERS.values()):
            skipped += 1
        else:
            bgs.append(bg)
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; {len(faces)} people, "
          f"{len(bgs)} backgrounds ({skipped} skipped: a finder found a face there)")
    rows = {name: {"hits": [], "false": 0, "seconds": 0.0} for name in FINDERS}
    for i in range(args.scenes):
        condition, size = CONDITIONS[i % 3], FRAMES[(i // 3) % 2]
        image, planted = scene(rng, bgs[i % len(bgs)], faces, size, condition, args.faces)
        for name, cfg in FINDERS.items():
            t = time.process_time()  # CPU time of this process: steadier than wall time on a shared machine
            found = detect.find_faces(image, cfg)
            rows[name]["seconds"] += time.process_time() - t
            hit, false = score(found, planted)
            rows[name]["hits"] += [(b[2] - b[0], condition, size, h) for b, h in zip(planted, hit)]
            rows[name]["false"] += false
    report(rows, args.scenes)


def report(rows: dict, scenes: int) -> None:
    cols = [f"{a}-{b - 1} px" for a, b in BINS] + list(CONDITIONS) + ["1280x720", "1920x1080"]
    print(f"{'finder':<30}" + "".join(f"{c:>11}" for c in cols) + f"{'false/100 fr':>13}{'cpu s/frame':>12}")
    recall = {}
    for name, r in rows.items():
        cells = []
        for a, b in BINS:
            cells.append([h for w, _, _, h in r["hits"] if a <= w < b])
        for c in CONDITIONS:
            cells.append([h for w, cond, _, h in r["hits"] if cond == c and w >= 40])
        for size in FRAMES:
            cells.append([h for w, _, s, h in r["hits"] if s == size and w >= 40])
        recall[name] = [np.mean(c) if c else float("nan") for c in cells]
        print(f"{name:<30}" + "".join(f"{v:>11.2f}" for v in recall[name])
              + f"{100 * r['false'] / scenes:>13.1f}{r['seconds'] / scenes:>9.2f}")
    n = [len([1 for w, *_ in rows[next(iter(rows))]["hits"] if a <= w < b]) for a, b in BINS]
    print("faces per size bin: " + ", ".join(f"{a}-{b - 1} px: {k}" for (a, b), k in zip(BINS, n))
          + "; condition and frame-size columns: faces >= 40 px")
    big = {k: np.mean([h for w, _, _, h in r["hits"] if w >= 40]) for k, r in rows.items()}
    new, old = (big[k] for k in FINDERS)
    ratio = f"{new / old:.1f}x" if old > 0 else "old found none"
    print(f"recall >= 40 px, new / old: {new:.2f} / {old:.2f} ({ratio})")


if __name__ == "__main__":
    main()
