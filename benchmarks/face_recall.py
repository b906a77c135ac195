"""Recall and false faces of the face finder on planted scenes and face-free frames, beside the old 384 px finder.

    python benchmarks/face_recall.py                 # 90 scenes of 4 faces, 300 face-free frames
    python benchmarks/face_recall.py --scenes 60 --empty 200 --seed 1 --sheet /tmp/false_faces.png

Recall. Each scene is a real background (a part of a frame of a
../shared/data/video clip away from its face, scaled up to 1280x720, 1920x1080
or portrait 1080x1920) with faces from ../shared/data (LFW corpus photos and
studio portraits) pasted at 24-160 px (width of the 68-point box) with a soft
elliptical edge. Scenes cycle through three conditions: plain, dark (the whole
scene through gamma 2-3) and turned (a camera on its side: the scene is composed
upright and turned 90 degrees), and through the three frame sizes. A planted
face counts as found when a found face's landmark box overlaps it with IoU >= 0.3.

False faces. Every found face that matches no planted face is a false face,
on the planted scenes (their backgrounds are all used, none skipped) and on
face-free frames: collages, at the same three sizes, of pieces of real video
frames of ../shared/data (video/, talking/, deepfake/, corpus/talking/ with
MEAD, every 10th GRID clip) at about their own scale, each piece without its
person's face (the largest face the default finder finds there, grown to hair
and chin): the frame with that painted over in the colour around it, or where
the face fills most of the frame the largest strip beside it; a third of the
collages darkened, a third turned. A frame in which the finder finds no face
is not used. `--sheet` writes a contact sheet of every false
face so they can be checked by eye (a real face left in a frame is not false).
Both finders see the same frames in the same run; times are CPU seconds.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from doppel import media  # noqa: E402
from doppel.faces import finder  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SIZES = (24, 160)  # planted 68-point box widths, px (log-uniform)
BINS = ((24, 40), (40, 80), (80, 161))
CONDITIONS = ("plain", "dark", "turned")
MIN_PIECE = 96  # face-free pieces narrower than this (px) are not used
PER_CLIP = 16  # face-free source frames taken from each clip, spread over it
FRAMES = ((1280, 720), (1920, 1080), (1080, 1920))  # (width, height); the last is portrait phone video
MATCH_IOU = 0.3
NEW = "new (default)"
FINDERS = {NEW: finder.DetectConfig(), "old (384 px, fast pass only)": finder.OLD_FINDER}


def face_sources(rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(photo, its 68 landmarks) for `count` distinct people: LFW corpus photos and studio portraits."""
    files = sorted((DATA / "corpus" / "lfw").glob("*.jpg")) + sorted((DATA / "corpus" / "studio" / "canada").glob("*.jpg"))
    out = []
    for i in rng.permutation(len(files)):
        image = media.read_image(files[i])
        faces = finder.find_faces(image, finder.DetectConfig(min_face=0, turns=False))
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
            faces = finder.find_faces(frame.image, deep="if-none")
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
    x0, y0, x1, y1 = finder.landmarks_box(landmarks)
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
            if all(finder.iou(np.r_[cand[:2] - width, cand[2:] + width], b) == 0 for b in boxes):
                boxes.append(paste(canvas, photo, lm, width, (x, y)))
                break
    if condition == "dark":
        gamma = rng.uniform(2.0, 3.0)
        canvas = cv2.LUT(canvas, np.round(255 * (np.arange(256) / 255) ** gamma).astype(np.uint8))
    if condition == "turned":
        boxes = [finder.turn_box(b, 1, canvas.shape) for b in boxes]
        canvas = np.ascontiguousarray(np.rot90(canvas, 1))
    return canvas, boxes


def score(found: list[finder.Face], planted: list[np.ndarray]) -> tuple[list[bool], int]:
    """Which planted boxes were found, and the number of false faces."""
    boxes = [finder.landmarks_box(f.landmarks) for f in found]
    hit, used = [], set()
    for p in planted:
        best = max(range(len(boxes)), key=lambda i: finder.iou(p, boxes[i]), default=None)
        ok = best is not None and best not in used and finder.iou(p, boxes[best]) >= MATCH_IOU
        if ok:
            used.add(best)
        hit.append(ok)
    return hit, len(boxes) - len(used)


def darken(rng, image: np.ndarray) -> np.ndarray:
    gamma = rng.uniform(2.0, 3.0)
    return cv2.LUT(image, np.round(255 * (np.arange(256) / 255) ** gamma).astype(np.uint8))


def grown(box: np.ndarray, shape: tuple) -> tuple[int, int, int, int]:
    """A face box grown to cover hair, ears and chin, clipped to a frame of `shape`."""
    h, w = shape[:2]
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    return (int(max(0, x0 - 0.5 * bw)), int(max(0, y0 - 0.8 * bh)),
            int(min(w, x1 + 0.5 * bw)), int(min(h, y1 + 0.5 * bh)))


def face_free_piece(image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """The face-free part of a one-person frame whose face is `box`: the frame with the grown box painted the
    median colour of a ring around it when that box covers at most half of it, else the largest strip
    beside, above or below the box (None when that is under MIN_PIECE px a side)."""
    gx0, gy0, gx1, gy1 = grown(box, image.shape)
    h, w = image.shape[:2]
    if (gx1 - gx0) * (gy1 - gy0) <= 0.5 * h * w:
        ring = [image[max(0, gy0 - 12):gy0, gx0:gx1], image[gy1:gy1 + 12, gx0:gx1],
                image[gy0:gy1, max(0, gx0 - 12):gx0], image[gy0:gy1, gx1:gx1 + 12]]
        ring = np.concatenate([r.reshape(-1, 3) for r in ring])
        out = image.copy()
        out[gy0:gy1, gx0:gx1] = np.median(ring, 0) if len(ring) else 128
        return out
    strips = [image[:, :gx0], image[:, gx1:], image[:gy0], image[gy1:]]
    best = max(strips, key=lambda s: s.shape[0] * s.shape[1])
    return np.ascontiguousarray(best) if min(best.shape[:2]) >= MIN_PIECE else None


def face_free_pieces(limit_per_clip: int = PER_CLIP) -> list[tuple[str, np.ndarray]]:
    """(name, piece) of real video frames without their person's face, `limit_per_clip` frames per clip
    (GRID: 2 frames of every 10th clip)."""
    clips = [(c, limit_per_clip) for folder in ("video", "talking", "deepfake", "corpus/talking", "corpus/talking/mead")
             for c in sorted((DATA / folder).glob("*.mp4"))]
    clips += [(c, 2) for c in sorted((DATA / "corpus" / "grid_s1").glob("*.mpg"))[::10]]
    out = []
    for clip, count in clips:
        step = max(1, media.probe(clip).frame_count // count)
        for frame in media.iter_frames(clip, step=step):
            faces = finder.find_faces(frame.image)
            piece = face_free_piece(frame.image, faces[0].box) if faces else None  # faces[0]: the largest
            if piece is not None:
                out.append((f"{clip.stem}#{frame.index}", piece))
    return out


def collage(rng, pool: list[tuple[str, np.ndarray]], size: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """A (width, height) = `size` frame: one piece scaled to cover it, then pieces at about their own scale
    (x0.8-1.5) pasted at random places until their area adds up to 1.5 frames; and the pieces' names."""
    w, h = size
    name, image = pool[rng.integers(len(pool))]
    s = max(w / image.shape[1], h / image.shape[0])
    big = cv2.resize(image, (max(w, round(image.shape[1] * s)), max(h, round(image.shape[0] * s))),
                     interpolation=cv2.INTER_CUBIC)
    canvas = np.ascontiguousarray(big[:h, :w])
    names, area = [name], 0.0
    while area < 1.5 * w * h and len(names) < 40:
        name, image = pool[rng.integers(len(pool))]
        s = min(rng.uniform(0.8, 1.5), w / image.shape[1], h / image.shape[0])
        piece = cv2.resize(image, (max(1, round(image.shape[1] * s)), max(1, round(image.shape[0] * s))),
                           interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        y, x = rng.integers(0, h - piece.shape[0] + 1), rng.integers(0, w - piece.shape[1] + 1)
        canvas[y:y + piece.shape[0], x:x + piece.shape[1]] = piece
        names.append(name)
        area += piece.shape[0] * piece.shape[1]
    return canvas, names


def poisson_upper(k: int, n: int, conf: float = 0.95) -> float:
    """One-sided `conf` upper bound of a rate per 100 frames, having seen `k` events in `n` frames."""
    def below(mu: float) -> float:  # P(X <= k) for X ~ Poisson(mu)
        return sum(math.exp(-mu) * mu ** i / math.factorial(i) for i in range(k + 1))
    lo, hi = 0.0, 10.0 + 10 * k
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if below(mid) > 1 - conf else (lo, mid)
    return 100 * hi / n


def crop_of(image: np.ndarray, box: np.ndarray, label: str, size: int = 128) -> np.ndarray:
    """A `size` px tile of `image` around `box` (twice its size) with `label` under it."""
    x0, y0, x1, y1 = box
    m = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a0, b0 = int(max(0, cx - m)), int(max(0, cy - m))
    a1, b1 = int(min(image.shape[1], cx + m)), int(min(image.shape[0], cy + m))
    tile = np.zeros((size + 16, size, 3), np.uint8)
    if a1 > a0 and b1 > b0:
        tile[:size] = cv2.resize(image[b0:b1, a0:a1], (size, size), interpolation=cv2.INTER_AREA)
    cv2.putText(tile, label[:22], (2, size + 12), cv2.FONT_HERSHEY_PLAIN, 0.8, (255, 255, 255), 1)
    return tile


def contact_sheet(tiles: list[np.ndarray], path: Path, columns: int = 8) -> None:
    if not tiles:
        tiles = [np.zeros((144, 128, 3), np.uint8)]
    rows = [np.hstack(tiles[i:i + columns] + [np.zeros_like(tiles[0])] * (columns - len(tiles[i:i + columns])))
            for i in range(0, len(tiles), columns)]
    media.write_image(path, np.vstack(rows))


def run_finders(image: np.ndarray, planted: list[np.ndarray], rows: dict, tag: tuple, label: str,
                sheet: list | None) -> None:
    """Both finders on one frame; adds hits (width, condition, size, hit), false faces and CPU time to `rows`."""
    condition, size, kind = tag
    for name, cfg in FINDERS.items():
        t = time.process_time()  # CPU time of this process: steadier than wall time on a shared machine
        found = finder.find_faces(image, cfg)
        r = rows[name]
        r["seconds"][kind] += time.process_time() - t
        r["frames"][kind] += 1
        hit, false = score(found, planted)
        # the face's own width: in a turned scene that is its box's height
        widths = [b[3] - b[1] if condition == "turned" else b[2] - b[0] for b in planted]
        r["hits"] += [(w, condition, size, h) for w, h in zip(widths, hit)]
        r["false"][kind] += false
        if false and sheet is not None and cfg is FINDERS[NEW]:
            matched = [finder.landmarks_box(f.landmarks) for f in found]
            for f, box in zip(found, matched):
                if not any(finder.iou(p, box) >= MATCH_IOU for p in planted):
                    sheet.append(crop_of(image, f.box, f"{kind} {label}"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=90, help="planted scenes")
    p.add_argument("--faces", type=int, default=4, help="faces per scene")
    p.add_argument("--empty", type=int, help="face-free frames (default: 10 per 3 scenes, 300 for 90)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sheet", type=Path, help="write a contact sheet PNG of the new finder's false faces here")
    args = p.parse_args()
    empty = args.empty if args.empty is not None else 10 * args.scenes // 3
    rng = np.random.default_rng(args.seed)
    faces = face_sources(rng, 40)
    bgs = backgrounds(args.scenes)
    pool = face_free_pieces() if empty else []
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; {len(faces)} people, "
          f"{len(bgs)} backgrounds (none skipped), {len(pool)} face-free pieces of video frames for {empty} face-free frames")
    rows = {name: {"hits": [], "false": {"scene": 0, "empty": 0}, "frames": {"scene": 0, "empty": 0},
                   "seconds": {"scene": 0.0, "empty": 0.0}} for name in FINDERS}
    sheet: list[np.ndarray] = [] if args.sheet else None
    for i in range(args.scenes):
        condition, size = CONDITIONS[i % 3], FRAMES[(i // 3) % len(FRAMES)]
        image, planted = scene(rng, bgs[i % len(bgs)], faces, size, condition, args.faces)
        run_finders(image, planted, rows, (condition, size, "scene"), f"s{i}", sheet)
    for i in range(empty):
        condition, size = CONDITIONS[i % 3], FRAMES[(i // 3) % len(FRAMES)]
        w, h = size
        image, _ = collage(rng, pool, (h, w) if condition == "turned" else size)
        image = darken(rng, image) if condition == "dark" else image
        image = np.ascontiguousarray(np.rot90(image, 1)) if condition == "turned" else image
        run_finders(image, [], rows, (condition, size, "empty"), f"e{i}", sheet)
    report(rows)
    if args.sheet:
        contact_sheet(sheet, args.sheet)
        print(f"contact sheet of {len(sheet)} false faces of the new finder: {args.sheet}")


def report(rows: dict) -> None:
    cols = [f"{a}-{b - 1} px" for a, b in BINS] + list(CONDITIONS) + [f"{w}x{h}" for w, h in FRAMES]
    print("recall (condition and frame-size columns: faces >= 40 px)")
    print(f"{'finder':<30}" + "".join(f"{c:>11}" for c in cols))
    for name, r in rows.items():
        cells = [[h for w, _, _, h in r["hits"] if a <= w < b] for a, b in BINS]
        cells += [[h for w, cond, _, h in r["hits"] if cond == c and w >= 40] for c in CONDITIONS]
        cells += [[h for w, _, s, h in r["hits"] if s == size and w >= 40] for size in FRAMES]
        print(f"{name:<30}" + "".join(f"{np.mean(c) if c else float('nan'):>11.2f}" for c in cells))
    hits = rows[NEW]["hits"]
    print("new finder, recall by condition and size band (faces):")
    for c in CONDITIONS:
        print(f"  {c:<8}" + "".join(
            f"{a}-{b - 1} px {np.mean(k) if (k := [h for w, cc, _, h in hits if cc == c and a <= w < b]) else float('nan'):.2f}"
            f" ({len(k)})   " for a, b in BINS))
    n = [len([1 for w, *_ in hits if a <= w < b]) for a, b in BINS]
    print("faces per size bin: " + ", ".join(f"{a}-{b - 1} px: {k}" for (a, b), k in zip(BINS, n)))
    big = {k: np.mean([h for w, _, _, h in r["hits"] if w >= 40]) for k, r in rows.items()}
    new, old = (big[k] for k in FINDERS)
    ratio = f"{new / old:.1f}x" if old > 0 else "old found none"
    print(f"recall >= 40 px, new / old: {new:.2f} / {old:.2f} ({ratio})")
    print(f"{'false faces':<30}{'scenes':>12}{'face-free':>12}{'all':>12}{'false/100 fr':>13}{'95% upper':>10}"
          f"{'cpu s/scene':>12}{'cpu s/free fr':>14}")
    for name, r in rows.items():
        k, n = sum(r["false"].values()), sum(r["frames"].values())
        per = {x: r["seconds"][x] / max(1, r["frames"][x]) for x in ("scene", "empty")}
        print(f"{name:<30}" + "".join(f"{r['false'][x]:>6} / {r['frames'][x]:<4}" for x in ("scene", "empty"))
              + f"{k:>6} / {n:<4}{100 * k / max(1, n):>13.2f}{poisson_upper(k, max(1, n)):>10.2f}"
              f"{per['scene']:>12.2f}{per['empty']:>14.2f}")


if __name__ == "__main__":
    main()
