"""A probe, not a shipped model: can a temporal model of the lower face, trained only on re-timed mouths made
from real clips, tell doppel's lip-syncs from real speech? (docs/detect.md, "A temporal mouth model").

Usage: python benchmarks/temporal_mouth.py [--data DIR] [--fakes DIR] [--cache DIR] [--grid 40] [--minutes 30]
           [--wobble 0 0.4] [--smooth 0.5] [--train-fakes lipsync[,swap] [--video-share 0.5]] [-o DIR]
           [--init stepN.pt] [--train A.mp4 ...] [--sel B.mp4 ...]
1. Every frame of each clip: the face tracker's largest face, cropped at the face CNN's alignment (128 px,
   coverage 0.6) with its landmarks; one npz a clip in --cache (kept between runs).
2. A small CNN sees T = 5 consecutive lower-face crops (nose tip to below the chin) and their frame-to-frame
   changes. Real: a window of a training clip. Fake: the same window with the lower face or mouth of the same
   clip at another time (at least 8 frames away) aligned onto each frame by the jaw, nose base and lips and
   blended through one deformed part mask for the window (`detect/sbi.py`), each frame's paste misregistered
   by up to --wobble pixels; a --smooth share of the pasted frames is the mean of three donor frames (a
   generated mouth: less detail, smoother in time). With --train-fakes, a --video-share of the fakes are
   instead windows of doppel's own fakes of the training clips and GRID sentences (--fakes: `<kind>_<clip>.mp4`
   and the variants `<kind>_<clip>__*.mp4`; GRID lip-syncs drawn as often as GRID real windows, a quarter).
   Both classes get one `augment.degrade` chain a window.
   Training clips: the sample clips outside the detector's fusion and calibration clips, and the first
   --grid GRID s1 sentences (a quarter of the draws: one person). The test split is never read.
3. Every --eval-s seconds and at the end, on the held-out selection clips (config.FUSION_CLIPS and
   CALIB_CLIPS): window AUC and clip AUC (a clip's score: the mean of the upper half of its window scores)
   of the real clips against doppel's lip-syncs and swaps of them (--fakes: lipsync_<clip>.mp4 and
   swap_<clip>.mp4 from scripts/make_detect_fakes.py; none of them is trained on), and the window AUC of
   the probe's own fakes of those clips ("own"). Baseline: chance, 0.5. Checkpoints go to -o.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
T = 5  # frames a window
R0, R1, C0, C1 = 50, 114, 26, 106  # the lower face in the 128 px crop: nose tip to below the chin
MIN_GAP = 8  # a donor window starts at least this many frames away (the mouth has moved)


def crops_of(path: Path, cache: Path) -> dict:
    """{"crops": (N, 128, 128, 3) uint8, "lm": (N, 68, 2), "idx": (N,) frame numbers} of a clip, cached."""
    from doppel import media
    from doppel.detect.config import CNNConfig
    from doppel.detect.detectors import crop_matrix
    from doppel.faces import align, finder
    dst = cache / f"{path.parent.name}__{path.stem}.npz"
    if not dst.exists():
        cfg, tracker, crops, lms, idx = CNNConfig(size=128, coverage=0.6), finder.FaceTracker(), [], [], []
        for fr in media.iter_frames(path):
            faces = tracker(fr.image)
            if faces:
                face = max(faces, key=lambda f: np.ptp(f.landmarks[:, 0]))
                m = crop_matrix(face.landmarks, cfg)
                crops.append(align.crop(fr.image, m, 128))
                lms.append(align.transform_points(face.landmarks, m))
                idx.append(fr.index)
            if len(idx) >= 600:
                break
        with media.atomic_path(dst) as tmp:
            np.savez(tmp, crops=np.array(crops, np.uint8).reshape(-1, 128, 128, 3),
                     lm=np.array(lms, np.float32).reshape(-1, 68, 2), idx=np.array(idx, int))
    z = np.load(dst)
    return {"crops": z["crops"], "lm": z["lm"].astype(np.float64), "idx": z["idx"]}


def lower(frames) -> np.ndarray:
    """(T, 64, 80, 3): the lower-face part of each of T 128 px crops."""
    return np.stack([f[R0:R1, C0:C1] for f in frames])


def starts(idx: np.ndarray) -> np.ndarray:
    """Window starts whose T frames are consecutive frames with a face."""
    return np.array([i for i in range(len(idx) - T + 1) if idx[i + T - 1] - idx[i] == T - 1], int)


def fake_window(clip: dict, t: int, d: int, rng: np.random.Generator, wobble: tuple[float, float],
                smooth: float) -> list[np.ndarray]:
    """Frames t..t+T-1 with the lower face or mouth of frames d..d+T-1 pasted in (see the module's text)."""
    import cv2

    from doppel.detect import cues, sbi
    from doppel.faces import align
    from doppel.faces.landmarks import LOWER_JAW, NOSE_BASE, OUTER_LIP
    pts = np.r_[LOWER_JAW, NOSE_BASE, OUTER_LIP]
    crops, lm = clip["crops"], clip["lm"]
    seed = int(rng.integers(1 << 30))  # one mask, colour and quality draw for the whole window
    offset = rng.normal(0, 0.6, 2) if rng.random() < 0.5 else np.zeros(2)
    wob, smoothed = rng.uniform(*wobble), rng.random() < smooth

    def warped(j: int, k: int, extra: np.ndarray) -> np.ndarray:
        m = align.umeyama(lm[j][pts], lm[t + k][pts])[:2].copy()
        m[:, 2] += offset + extra
        return cv2.warpAffine(crops[j], m, (128, 128), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    out = []
    for k in range(T):
        target, shift = crops[t + k], rng.normal(0, wob, 2) if wob > 0 else np.zeros(2)
        src = warped(d + k, k, shift)
        if smoothed:
            near = [min(max(d + k + e, 0), len(crops) - 1) for e in (-1, 1)]
            src = ((src.astype(np.float32) + sum(warped(j, k, np.zeros(2)).astype(np.float32) for j in near)) / 3
                   ).astype(np.uint8)
        r = np.random.default_rng(seed)
        if r.random() < 0.7:
            src = sbi.match_colour(src, target, cues.hull_mask(lm[t + k], (128, 128)) > 0)
        if r.random() < 0.7:
            src = sbi.quality_jitter(src, r)
        out.append(sbi.blend(target, src, sbi.deformed_mask(lm[t + k], (128, 128), r, sbi.PART_SHAPES)))
    return out


def sample(clip: dict, rng: np.random.Generator, fake: bool, args) -> np.ndarray | None:
    """(T, 64, 80, 3) uint8 lower-face window, real or re-timed; None when the clip has no far donor."""
    from doppel.detect import augment
    st = clip["starts"]
    t = int(rng.choice(st))
    if fake:
        far = st[np.abs(st - t) >= min(MIN_GAP, max(2, (len(st) - 1) // 2))]
        if not len(far):
            return None
        frames = fake_window(clip, t, int(rng.choice(far)), rng, tuple(args.wobble), args.smooth)
    else:
        frames = [clip["crops"][t + k] for k in range(T)]
    return lower(augment.degrade(frames, rng))


def to_x(w: np.ndarray):
    """(B, T, H, W, 3) uint8 -> (B, 3T + 3(T-1), H, W): the frames, and their changes x4."""
    import torch
    x = (torch.from_numpy(np.ascontiguousarray(w)).float() / 255.0 - 0.5) / 0.25
    b, t, h, w_, c = x.shape
    x = x.permute(0, 1, 4, 2, 3)
    return torch.cat([x.reshape(b, t * c, h, w_), (4 * (x[:, 1:] - x[:, :-1])).reshape(b, (t - 1) * c, h, w_)], 1)


def net(widths=(32, 48, 64, 96, 128)):
    import torch.nn as nn
    layers, cin = [], 3 * T + 3 * (T - 1)
    for i, c in enumerate(widths):
        layers += [nn.Conv2d(cin, c, 3, stride=1 if i == 0 else 2, padding=1, bias=False), nn.BatchNorm2d(c),
                   nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                   nn.ReLU(inplace=True)]
        cin = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1), nn.Flatten(0))


def windows(clip: dict, every: int = 3, limit: int = 80) -> np.ndarray:
    """(W, T, 64, 80, 3): the lower-face windows starting at every `every`-th start, up to `limit`."""
    return np.stack([lower(clip["crops"][t:t + T]) for t in clip["starts"][::every][:limit]])


def scores(model, w: np.ndarray) -> np.ndarray:
    import torch
    model.eval()
    with torch.no_grad():
        out = np.concatenate([model(to_x(w[i:i + 128])).numpy() for i in range(0, len(w), 128)])
    model.train()
    return out


def auc(neg, pos) -> float:
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos]))


def evaluate(model, sel: dict, own: tuple[np.ndarray, np.ndarray]) -> dict:
    """AUCs on the selection clips (their `windows`): doppel's lip-syncs and swaps (window, clip), the probe's own
    fakes."""
    def clip_score(s):
        return float(np.sort(s)[len(s) // 2:].mean())
    real = {n: scores(model, c["windows"]) for n, c in sel["real"].items()}
    out = {}
    for kind in ("lipsync", "swap"):
        fake = {n: scores(model, c["windows"]) for n, c in sel[kind].items()}
        if fake:
            out[kind] = auc(np.concatenate(list(real.values())), np.concatenate(list(fake.values())))
            out[kind + "_clip"] = auc([clip_score(s) for s in real.values()], [clip_score(s) for s in fake.values()])
    if len(set(own[1])) == 2:
        s = scores(model, own[0])
        out["own"] = auc(s[own[1] == 0], s[own[1] == 1])
    return out


def batches(train: list[dict], grid: list[dict], videos: list[dict], args, seed: int):
    """Endless (windows, labels) batches, half fake; a quarter of the draws from the GRID clips; with fake
    `videos`, a --video-share of the fakes is a window of one of them (of a GRID sentence's a quarter of the
    time, when there are any), the rest re-timed."""
    from doppel.detect import augment
    rng = np.random.default_rng(seed)
    by_grid = {g: [v for v in videos if v["grid"] == g] for g in (False, True)}
    while True:
        xs, ys = [], []
        while len(xs) < args.batch:
            fake = len(xs) % 2 == 1
            if fake and videos and rng.random() < args.video_share:
                vs = by_grid[bool(rng.random() < 0.25)] or videos
                v = vs[int(rng.integers(len(vs)))]
                t = int(rng.choice(v["starts"]))
                xs.append(lower(augment.degrade(list(v["crops"][t:t + T]), rng)))
                ys.append(1)
                continue
            pool = grid if grid and rng.random() < 0.25 else train
            w = sample(pool[int(rng.integers(len(pool)))], rng, fake, args)
            if w is not None:
                xs.append(w)
                ys.append(len(ys) % 2)
        yield np.stack(xs), np.array(ys, np.float32)


def main() -> None:
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from doppel.detect import dataset
    from doppel.detect.config import CALIB_CLIPS, FUSION_CLIPS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--fakes", type=Path, default=Path("/tmp/df"), help="doppel's fakes of the sample clips")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/temporal_mouth_crops"))
    ap.add_argument("--grid", type=int, default=40, help="GRID s1 sentences among the training clips")
    ap.add_argument("--train", type=Path, nargs="*", help="training clips (default: see the module's text)")
    ap.add_argument("--sel", type=Path, nargs="*", help="selection clips (default: the fusion and calibration clips)")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--eval-s", type=float, default=300.0)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wobble", type=float, nargs=2, default=(0.0, 0.4), help="per-frame misregistration, pixels")
    ap.add_argument("--smooth", type=float, default=0.5, help="share of fakes whose paste is a 3-frame mean")
    ap.add_argument("--train-fakes", default="", help="comma-separated kinds of doppel's fakes of the training "
                    "clips (lipsync, swap; from --fakes) to train on as well; default none")
    ap.add_argument("--video-share", type=float, default=0.5, help="share of the fakes taken from --train-fakes")
    ap.add_argument("--init", type=Path, help="start from this checkpoint (a stepN.pt of an earlier run)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--out", type=Path, default=Path("/tmp/temporal_mouth"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    kinds = [k for k in args.train_fakes.split(",") if k]
    if set(kinds) - {"lipsync", "swap"}:
        raise SystemExit(f"temporal_mouth: unknown --train-fakes kind in {args.train_fakes!r} (known: lipsync, swap)")
    held = set(FUSION_CLIPS + CALIB_CLIPS)
    sel_paths = args.sel if args.sel is not None else [p for p in dataset.videos(args.data) if p.stem in held]
    train_paths = args.train if args.train is not None else [p for p in dataset.videos(args.data) if p.stem not in held]
    grid_paths = [] if args.train is not None else sorted((args.data / "corpus" / "grid_s1").glob("*.mpg"))[: args.grid]

    def load(paths):
        out = []
        for p in tqdm(paths, desc="face crops", unit="clip", leave=False):
            c = crops_of(p, args.cache)
            c["starts"], c["name"] = starts(c["idx"]), p.stem
            if len(c["starts"]) >= 2:
                out.append(c)
        return out
    from doppel.errors import DoppelError
    try:
        train, grid, sel_real = load(train_paths), load(grid_paths), load(sel_paths)
    except DoppelError as e:
        raise SystemExit(f"temporal_mouth: {e}") from None
    if not train or not sel_real:
        raise SystemExit("temporal_mouth: no training or selection clip has a face in 5 consecutive frames")
    sel = {"real": {c["name"]: c for c in sel_real}}
    def fakes_of(clips, is_grid):
        found = [v for k in kinds for c in clips for pattern in (f"{k}_{c['name']}.mp4", f"{k}_{c['name']}__*.mp4")
                 for v in sorted(args.fakes.glob(pattern))]
        return [{**v, "grid": is_grid} for v in load(found)]
    videos = fakes_of(train, False) + fakes_of(grid, True)
    for kind in ("lipsync", "swap"):
        sel[kind] = {c["name"]: c for c in load([args.fakes / f"{kind}_{n}.mp4" for n in sel["real"]
                                                if (args.fakes / f"{kind}_{n}.mp4").exists()])}
    for clips in sel.values():  # cut once, scored at every evaluation
        for c in clips.values():
            c["windows"] = windows(c)
    rng = np.random.default_rng(7)
    own = [(sample(c, rng, y == 1, args), y) for c in sel_real for y in (0, 1) * 20]
    own = (np.stack([w for w, _ in own if w is not None]), np.array([y for w, y in own if w is not None]))
    print(f"training clips {len(train)} (+{len(grid)} GRID), selection clips {len(sel_real)}, "
          f"doppel lip-syncs {len(sel['lipsync'])}, swaps {len(sel['swap'])}; fake videos trained on {len(videos)}",
          flush=True)
    model = net()
    if args.init is not None:
        if not args.init.is_file():
            raise SystemExit(f"temporal_mouth: no such checkpoint: {args.init}")
        model.load_state_dict(torch.load(args.init))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = last = time.monotonic()
    losses, step = [], 0
    for xb, yb in batches(train, grid, videos, args, args.seed):
        frac = min(1.0, (time.monotonic() - t0) / (60 * args.minutes))
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * frac))
        loss = F.binary_cross_entropy_with_logits(model(to_x(xb)), torch.from_numpy(yb))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        if time.monotonic() - last >= args.eval_s or frac >= 1:
            last = time.monotonic()
            r = evaluate(model, sel, own)
            print(json.dumps({"step": step, "minutes": round((last - t0) / 60, 1),
                              "loss": round(float(np.mean(losses[-100:])), 4), **{k: round(v, 3) for k, v in r.items()}}),
                  flush=True)
            torch.save(model.state_dict(), args.out / f"step{step}.pt")
            if frac >= 1:
                break
    print("selection AUC, baseline chance 0.5: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))


if __name__ == "__main__":
    main()
