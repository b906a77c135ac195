"""Quality of `doppel swap` on a video of A, for several mask/colour settings.

    python benchmarks/swap_quality.py --model MODEL [--input talking/retalking_face_1.mp4]
        [--b-video talking/retalking_face_2.mp4] [--settings hull:reinhard hull:avg ellipse:hist]

Measured on held-out frames: the frames of --input after the last one in the model's face set A
(read from the model file; --start overrides). When every frame trained the model the figures are on
training frames and the script says so. Without --model it extracts the first --train-share of both
clips, trains a lite model on them (--train-minutes) and measures on the rest of --input.

Per setting, on the swapped video (input frames beside output frames):
  d(B), d(A) mean distance of the swapped faces' dlib embeddings to B's and to A's mean face, with the
            share nearer B and the number of embeddings; baselines in the same run: the input itself
            (A's own faces), B's own faces (--b-video) and a stranger (--other-video) against B
  landmarks mean |input - output| landmark distance over the inter-ocular distance (expression/pose kept)
  flicker   mean frame-to-frame change inside the face region, output over input (1 = no added flicker)
  motion    mean frame-to-frame landmark movement, output over input (1 = moves as A did; a frozen face ~0)
  sharp     Laplacian variance inside the face box, output over input (a blurry face scores low flicker too)
  seam      CIE76 Delta E between the two sides of the mask edge in the output, beside the input's own
            step at the same place (out well above in: a visible seam)
A's and B's mean faces come from the model's info, else from the first frames of --input / --b-video.
A setting is MASK:COLOR[:seamless][:nosmooth] (nosmooth turns the colour EMA off).
"""
from __future__ import annotations

import argparse
import importlib.util
import tempfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from doppel import cli, media
from doppel.errors import DoppelError
from doppel.faces import align, blend, finder
from doppel.faces import mask as masks
from doppel.swap import convert
from doppel.faceset import FaceSet
from doppel.swap.model import read_header

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SECTORS = 16  # the mask edge is compared in angular sectors around the face centre
BAND = 0.04  # width of the bands either side of the mask edge, fraction of face size


def mean_identity(path: Path, frames: int = 5) -> np.ndarray:
    """Mean dlib embedding of the largest face in the first few frames with one."""
    embs = []
    for f in media.iter_frames(path, step=5):
        faces = finder.find_faces(f.image)
        if faces:
            embs.append(finder.embedding(np.ascontiguousarray(f.image), faces[0].landmarks))
        if len(embs) == frames:
            break
    if not embs:
        raise SystemExit(f"no face found in {path}")
    return np.mean(embs, 0)


def eye_distance(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))


def frame_mask(lm: np.ndarray, shape: tuple, settings: convert.SwapSettings, size: int, coverage: float) -> np.ndarray:
    """The blend mask in frame pixels as convert draws it (float32 (H, W))."""
    m = align.align_matrix(lm, size, coverage)
    k = 4
    crop_mask = masks.make_mask(align.transform_points(lm, m) * k, size * k, settings.mask)
    return np.clip(align.uncrop(crop_mask, m * k, shape[:2]), 0, 1)


def edge_step(image: np.ndarray, mask: np.ndarray, lm: np.ndarray) -> float:
    """Mean over sectors of the Delta E between the bands just inside and just outside the mask edge."""
    r = max(2, int(BAND * masks.face_size(lm)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    core, any_ = (mask > 0.9).astype(np.uint8), (mask > 0.1).astype(np.uint8)
    inner = core & ~cv2.erode(core, kernel).astype(bool)
    outer = cv2.dilate(any_, kernel).astype(bool) & ~any_.astype(bool)
    lab = blend.to_lab(image.astype(np.float32) / 255)
    cy, cx = lm.mean(0)[::-1]
    yy, xx = np.mgrid[:mask.shape[0], :mask.shape[1]]
    sector = ((np.arctan2(yy - cy, xx - cx) + np.pi) / (2 * np.pi) * SECTORS).astype(int) % SECTORS
    steps = []
    for s in range(SECTORS):
        a, b = inner.astype(bool) & (sector == s), outer & (sector == s)
        if a.sum() > 5 and b.sum() > 5:
            steps.append(np.linalg.norm(lab[a].mean(0) - lab[b].mean(0)))
    return float(np.mean(steps)) if steps else float("nan")


def analyse(src: Path, out: Path, settings: convert.SwapSettings, size: int, coverage: float,
            ident_a: np.ndarray, ident_b: np.ndarray, every: int, limit: int) -> dict:
    """The four measures over the frames of input and output side by side."""
    t_in, t_out = finder.FaceTracker(), finder.FaceTracker()
    lm_err, near_b, flick_in, flick_out, seam_out, seam_in, found = [], [], [], [], [], [], []
    d_a, d_b, move_in, move_out, sharp_in, sharp_out = [], [], [], [], [], []
    prev, prev_lm = None, None
    for fi, fo in zip(media.iter_frames(src), media.iter_frames(out)):
        if fi.index >= limit:
            break
        a, b = t_in(fi.image), t_out(fo.image)
        if not a:
            prev, prev_lm = None, None
            continue
        face = a[0]
        x0, y0, x1, y1 = np.clip(face.box, 0, None).astype(int)
        sharp_in.append(_sharpness(fi.image[y0:y1, x0:x1]))
        sharp_out.append(_sharpness(fo.image[y0:y1, x0:x1]))
        if prev is not None:
            flick_in.append(np.abs(fi.image[y0:y1, x0:x1].astype(np.float32) - prev[0][y0:y1, x0:x1]).mean())
            flick_out.append(np.abs(fo.image[y0:y1, x0:x1].astype(np.float32) - prev[1][y0:y1, x0:x1]).mean())
        prev = (fi.image, fo.image)
        if fi.index % every == 0:
            m = frame_mask(face.landmarks, fi.image.shape, settings, size, coverage)
            seam_out.append(edge_step(fo.image, m, face.landmarks))
            seam_in.append(edge_step(fi.image, m, face.landmarks))
        match = max(b, key=lambda f: finder.iou(f.box, face.box), default=None)
        found.append(match is not None and finder.iou(match.box, face.box) >= 0.3)
        if not found[-1]:
            continue
        lm_err.append(np.linalg.norm(match.landmarks - face.landmarks, axis=1).mean() / eye_distance(face.landmarks))
        if prev_lm is not None:
            move_in.append(np.linalg.norm(face.landmarks - prev_lm[0], axis=1).mean())
            move_out.append(np.linalg.norm(match.landmarks - prev_lm[1], axis=1).mean())
        prev_lm = (face.landmarks, match.landmarks)
        if fi.index % every == 0:
            e = finder.embedding(np.ascontiguousarray(fo.image), match.landmarks)
            d_a.append(np.linalg.norm(e - ident_a))
            d_b.append(np.linalg.norm(e - ident_b))
            near_b.append(d_b[-1] < d_a[-1])
    nan = float("nan")
    return {"identity": np.mean(near_b) if near_b else nan, "landmarks": np.mean(lm_err) if lm_err else nan,
            "d_b": np.mean(d_b) if d_b else nan, "d_a": np.mean(d_a) if d_a else nan, "n": len(d_b),
            "found": np.mean(found) if found else nan,
            "motion": np.mean(move_out) / max(np.mean(move_in), 1e-6) if move_in else nan,
            "sharp": np.mean(sharp_out) / max(np.mean(sharp_in), 1e-6) if sharp_in else nan,
            "flicker": np.mean(flick_out) / max(np.mean(flick_in), 1e-6) if flick_in else nan,
            "seam": np.nanmean(seam_out) if seam_out else nan, "seam_in": np.nanmean(seam_in) if seam_in else nan,
            }


def _sharpness(region: np.ndarray) -> float:
    grey = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY) if region.size else np.zeros((3, 3), np.uint8)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def identity_baseline(path: Path, ident_a: np.ndarray, ident_b: np.ndarray, every: int, limit: int,
                      start: int = 0) -> dict:
    """Distances to A's and B's mean faces of the real faces of another video (B's own, a stranger's)."""
    d_a, d_b = [], []
    for f in media.iter_frames(path, step=every):
        if f.index < start:
            continue
        if f.index >= start + limit:
            break
        faces = finder.find_faces(f.image)
        if faces:
            e = finder.embedding(np.ascontiguousarray(f.image), faces[0].landmarks)
            d_a.append(np.linalg.norm(e - ident_a))
            d_b.append(np.linalg.norm(e - ident_b))
    nan = float("nan")
    return {"d_b": np.mean(d_b) if d_b else nan, "d_a": np.mean(d_a) if d_a else nan, "n": len(d_b),
            "identity": np.mean(np.array(d_b) < np.array(d_a)) if d_b else nan}


def trained_frames(info: dict, src: Path) -> int | None:
    """One past the last frame of `src` in the model's face set A (None when the set is not at hand)."""
    root = info.get("faceset_a")
    if not root or not Path(root).is_dir():
        return None
    fs = FaceSet.open(root)
    idx = [r.frame_index for r in fs.faces if Path(r.source).name == src.name]
    return max(idx) + 1 if idx else 0


def clip(src: Path, out: Path, start: int, frames: int) -> Path:
    """Frames [start, start + frames) of `src` as a new video (the held-out part; no audio)."""
    info = media.probe(src)
    with media.VideoWriter(out, info.fps) as w:
        for f in media.iter_frames(src):
            if start <= f.index < start + frames:
                w.write(f.image)
    return out


def parse_setting(text: str) -> convert.SwapSettings:
    parts = text.split(":")
    if len(parts) < 2 or parts[0] not in masks.MASKS or parts[1] not in blend.COLOR:
        raise SystemExit(f"setting {text!r}: want MASK:COLOR[:seamless][:nosmooth], "
                         f"masks {masks.MASKS}, colours {tuple(blend.COLOR)}")
    base = convert.SwapSettings()
    return replace(base, mask=replace(base.mask, shape=parts[0]), color=parts[1],
                   seamless="seamless" in parts[2:], color_smooth=1.0 if "nosmooth" in parts[2:] else base.color_smooth)


TRAIN_ARGS = ["--threads", "1", "--workers", "0", "--batch", "16", "--lr", "5e-4"]  # the demo's short-budget settings


def train_model(a: Path, b: Path, folder: Path, minutes: float, share: float) -> tuple[Path, int]:
    """Extract the first `share` of both clips and train lite with doppel's own stages (when installed);
    returns the model and how many of A's first frames it trained on (the held-out part starts there)."""
    for mod in ("doppel.extract", "doppel.swap.train"):
        if importlib.util.find_spec(mod) is None:
            raise SystemExit(f"{mod} is not installed: pass --model MODEL")
    trained = {}
    for video, name in ((a, "fa"), (b, "fb")):
        trained[name] = int(share * media.probe(video).frame_count)
        part = clip(video, folder / f"{name}_{video.name}", 0, trained[name])
        if cli.main(["extract", str(part), "-o", str(folder / name)]):
            raise SystemExit(f"extract failed on {video}")
    if cli.main(["train", str(folder / "fa"), str(folder / "fb"), "-o", str(folder / "model"),
                 "--preset", "lite", "--minutes", str(minutes), *TRAIN_ARGS]):
        raise SystemExit("training failed")
    return folder / "model", trained["fa"]


COLUMNS = [("d(B)", "d_b", 6, 3), ("d(A)", "d_a", 6, 3), ("nearB", "identity", 5, 2), ("n", "n", 3, 0),
           ("landmarks", "landmarks", 9, 3), ("flicker", "flicker", 7, 2), ("motion", "motion", 6, 2),
           ("sharp", "sharp", 5, 2), ("seam out", "seam", 8, 2), ("seam in", "seam_in", 7, 2),
           ("found", "found", 5, 2)]


def header() -> str:
    return f"{'setting':28s} " + " ".join(f"{t:>{w}s}" for t, _, w, _ in COLUMNS) + f" {'fps':>6s}"


def row(name: str, r: dict, fps: str = "") -> str:
    cells = []
    for _, k, w, d in COLUMNS:
        v = r.get(k, float("nan"))
        cells.append(f"{'':>{w}s}" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:{w}.{d}f}")
    return f"{name:28s} " + " ".join(cells) + f" {fps:>6s}"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="trained swap model folder (A = --input's person)")
    p.add_argument("--input", default=str(DATA / "talking" / "retalking_face_1.mp4"), help="video of A")
    p.add_argument("--b-video", default=str(DATA / "talking" / "retalking_face_2.mp4"), help="video of B")
    p.add_argument("--settings", nargs="+", default=["hull:reinhard", "hull:avg", "hull:hist",
                                                     "ellipse:reinhard", "hull:reinhard:nosmooth"])
    p.add_argument("--other-video", default=str(DATA / "talking" / "retalking_face_3.mp4"),
                   help="a stranger (neither A nor B): the identity baseline")
    p.add_argument("--frames", type=int, default=150, help="held-out frames of the input to swap (shorten the run)")
    p.add_argument("--start", type=int, default=None,
                   help="first input frame to measure (default: after the model's training frames)")
    p.add_argument("--train-share", type=float, default=0.8, help="share of each clip to train on, without --model")
    p.add_argument("--every", type=int, default=10, help="embedding and seam every N frames")
    p.add_argument("--train-minutes", type=float, default=20.0, help="when training a model here")
    p.add_argument("--match-distance", type=float, default=convert.SwapSettings().match_distance)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    src, bvid = Path(args.input), Path(args.b_video)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model:
            model, start = Path(args.model), args.start
        else:  # the training clip is a cut of the input under another name: its frame count is the start
            model, start = train_model(src, bvid, tmp, args.train_minutes, args.train_share)
            start = args.start if args.start is not None else start
        read = read_header(model)
        cfg, info = read.config, read.info
        start = start if start is not None else trained_frames(info, src)
        total = media.probe(src).frame_count
        if start is None:
            print("face set A of the model is not at hand: measuring from frame 0 (maybe training frames; "
                  "pass --start)")
            start = 0
        if start >= total:
            print(f"every frame of {src.name} is in the model's face set A: the figures below are on TRAINING "
                  "frames (train on part of the clip, or pass --start)")
            start = 0
        frames = min(args.frames, total - start)
        held = clip(src, tmp / "heldout.mp4", start, frames)
        ident_a = np.asarray(info["identity_a"], np.float32) if info.get("identity_a") else mean_identity(src)
        ident_b = np.asarray(info["identity_b"], np.float32) if info.get("identity_b") else mean_identity(bvid)
        measure = dict(size=cfg.size, coverage=float(info.get("coverage") or align.DEFAULT_COVERAGE),
                       ident_a=ident_a, ident_b=ident_b, every=args.every, limit=frames)
        print(f"model {model} ({cfg.preset}, step {info.get('step')}), input {src.name} frames {start}-"
              f"{start + frames - 1} (held out of training); |A - B| = {np.linalg.norm(ident_a - ident_b):.3f}")
        print(header())
        # baselines: the input against itself (d(A) small, landmarks 0, flicker/motion/sharp 1), B's own
        # faces and a stranger's against B (how near B a real B is, and how near anyone is)
        print(row("input (no swap)", analyse(held, held, convert.SwapSettings(), **measure)), flush=True)
        b_start = trained_frames({"faceset_a": info.get("faceset_b")}, bvid) or 0
        b_start = b_start if b_start < media.probe(bvid).frame_count else 0  # all trained: B's training faces
        print(row("B's own faces", identity_baseline(bvid, ident_a, ident_b, args.every, frames, b_start)))
        print(row(f"stranger ({Path(args.other_video).stem})",
                  identity_baseline(Path(args.other_video), ident_a, ident_b, args.every, frames)), flush=True)
        for text in args.settings:
            s = replace(parse_setting(text), max_frames=frames, match_distance=args.match_distance)
            try:
                summary = convert.swap(held, model, tmp / "swap.mp4", s)
            except DoppelError as e:
                print(f"{text:28s} error: {e}")
                continue
            print(row(text, analyse(held, tmp / "swap.mp4", s, **measure), f"{summary.fps:.1f}"), flush=True)
    print("d(B), d(A): mean embedding distance to B's / A's mean face (dlib: < 0.6 is usually the same person); "
          "nearB: share nearer B than A, n: embeddings; landmarks: / eye distance (lower); flicker: output / "
          "input (1 = none added; read it with motion and sharp: a frozen or blurry face flickers little too); "
          "motion: landmark movement output / input (1 = follows A); sharp: Laplacian variance output / input; "
          "seam: Delta E across the mask edge in the output, beside the input's own step at the same place; "
          "found: share of frames where dlib still finds the face in the output (identity and landmarks use those)")


if __name__ == "__main__":
    main()
