"""Quality of `doppel swap` on a video of A, for several mask/colour settings.

    python benchmarks/swap_quality.py --model MODEL [--input talking/retalking_face_1.mp4]
        [--b-video talking/retalking_face_2.mp4] [--settings hull:reinhard hull:avg ellipse:hist]

Per setting, on the swapped video (input frames beside output frames):
  identity  share of swapped faces whose dlib embedding is nearer B's mean face than A's
  landmarks mean |input - output| landmark distance over the inter-ocular distance (expression/pose kept)
  flicker   mean frame-to-frame change inside the face region, output over input (1 = no added flicker)
  seam      CIE76 Delta E between the two sides of the mask edge in the output, beside the input's own
            step at the same place (out well above in: a visible seam)
A's and B's mean faces come from the model's info, else from the first frames of --input / --b-video.
Without --model, the benchmark extracts and trains a lite model itself when doppel's extract and
train stages are installed (--train-minutes, default 20); otherwise --model is required.
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
from doppel.faces import align, blend, detect
from doppel.faces import mask as masks
from doppel.swap import convert
from doppel.swap.model import read_header

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SECTORS = 16  # the mask edge is compared in angular sectors around the face centre
BAND = 0.04  # width of the bands either side of the mask edge, fraction of face size


def mean_identity(path: Path, frames: int = 5) -> np.ndarray:
    """Mean dlib embedding of the largest face in the first few frames with one."""
    embs = []
    for f in media.iter_frames(path, step=5):
        faces = detect.find_faces(f.image)
        if faces:
            embs.append(detect.embedding(np.ascontiguousarray(f.image), faces[0].landmarks))
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
    t_in, t_out = detect.FaceTracker(), detect.FaceTracker()
    lm_err, near_b, flick_in, flick_out, seam_out, seam_in, found = [], [], [], [], [], [], []
    prev = None
    for fi, fo in zip(media.iter_frames(src), media.iter_frames(out)):
        if fi.index >= limit:
            break
        a, b = t_in(fi.image), t_out(fo.image)
        if not a:
            prev = None
            continue
        face = a[0]
        x0, y0, x1, y1 = np.clip(face.box, 0, None).astype(int)
        if prev is not None:
            flick_in.append(np.abs(fi.image[y0:y1, x0:x1].astype(np.float32) - prev[0][y0:y1, x0:x1]).mean())
            flick_out.append(np.abs(fo.image[y0:y1, x0:x1].astype(np.float32) - prev[1][y0:y1, x0:x1]).mean())
        prev = (fi.image, fo.image)
        if fi.index % every == 0:
            m = frame_mask(face.landmarks, fi.image.shape, settings, size, coverage)
            seam_out.append(edge_step(fo.image, m, face.landmarks))
            seam_in.append(edge_step(fi.image, m, face.landmarks))
        match = max(b, key=lambda f: detect.iou(f.box, face.box), default=None)
        found.append(match is not None and detect.iou(match.box, face.box) >= 0.3)
        if not found[-1]:
            continue
        lm_err.append(np.linalg.norm(match.landmarks - face.landmarks, axis=1).mean() / eye_distance(face.landmarks))
        if fi.index % every == 0:
            e = detect.embedding(np.ascontiguousarray(fo.image), match.landmarks)
            near_b.append(np.linalg.norm(e - ident_b) < np.linalg.norm(e - ident_a))
    nan = float("nan")
    return {"identity": np.mean(near_b) if near_b else nan, "landmarks": np.mean(lm_err) if lm_err else nan,
            "found": np.mean(found) if found else nan,
            "flicker": np.mean(flick_out) / max(np.mean(flick_in), 1e-6),
            "seam": np.nanmean(seam_out) if seam_out else nan, "seam_in": np.nanmean(seam_in) if seam_in else nan,
            }


def parse_setting(text: str) -> convert.SwapSettings:
    parts = text.split(":")
    if len(parts) < 2 or parts[0] not in masks.MASKS or parts[1] not in blend.COLOR:
        raise SystemExit(f"setting {text!r}: want MASK:COLOR[:seamless][:nosmooth], "
                         f"masks {masks.MASKS}, colours {tuple(blend.COLOR)}")
    base = convert.SwapSettings()
    return replace(base, mask=replace(base.mask, shape=parts[0]), color=parts[1],
                   seamless="seamless" in parts[2:], color_smooth=1.0 if "nosmooth" in parts[2:] else base.color_smooth)


def train_model(a: Path, b: Path, folder: Path, minutes: float) -> Path:
    """Extract both clips and train lite with doppel's own stages (when installed)."""
    for mod in ("doppel.extract", "doppel.swap.train"):
        if importlib.util.find_spec(mod) is None:
            raise SystemExit(f"{mod} is not installed: pass --model MODEL")
    for clip, name in ((a, "fa"), (b, "fb")):
        if cli.main(["extract", str(clip), "-o", str(folder / name)]):
            raise SystemExit(f"extract failed on {clip}")
    if cli.main(["train", str(folder / "fa"), str(folder / "fb"), "-o", str(folder / "model"),
                 "--preset", "lite", "--minutes", str(minutes)]):
        raise SystemExit("training failed")
    return folder / "model"


def row(name: str, r: dict, fps: str = "") -> str:
    return (f"{name:28s} {r['identity']:8.2f} {r['landmarks']:9.3f} {r['flicker']:8.2f} "
            f"{r['seam']:8.2f} {r['seam_in']:8.2f} {r['found']:6.2f} {fps:>6s}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="trained swap model folder (A = --input's person)")
    p.add_argument("--input", default=str(DATA / "talking" / "retalking_face_1.mp4"), help="video of A")
    p.add_argument("--b-video", default=str(DATA / "talking" / "retalking_face_2.mp4"), help="video of B")
    p.add_argument("--settings", nargs="+", default=["hull:reinhard", "hull:avg", "hull:hist",
                                                     "ellipse:reinhard", "hull:reinhard:nosmooth"])
    p.add_argument("--frames", type=int, default=150, help="frames of the input to swap (shorten the run)")
    p.add_argument("--every", type=int, default=10, help="embedding and seam every N frames")
    p.add_argument("--train-minutes", type=float, default=20.0, help="when training a model here")
    p.add_argument("--match-distance", type=float, default=convert.SwapSettings().match_distance)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    src, bvid = Path(args.input), Path(args.b_video)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = Path(args.model) if args.model else train_model(src, bvid, tmp, args.train_minutes)
        cfg, info = read_header(model)
        ident_a = np.asarray(info["identity_a"], np.float32) if info.get("identity_a") else mean_identity(src)
        ident_b = np.asarray(info["identity_b"], np.float32) if info.get("identity_b") else mean_identity(bvid)
        measure = dict(size=cfg.size, coverage=float(info.get("coverage") or align.DEFAULT_COVERAGE),
                       ident_a=ident_a, ident_b=ident_b, every=args.every, limit=args.frames)
        print(f"model {model} ({cfg.preset}, step {info.get('step')}), input {src.name}, "
              f"{args.frames} frames; |A - B| = {np.linalg.norm(ident_a - ident_b):.3f}")
        print(f"{'setting':28s} {'identity':>8s} {'landmarks':>9s} {'flicker':>8s} {'seam out':>8s} "
              f"{'seam in':>8s} {'found':>6s} {'fps':>6s}")
        # baseline row: the input against itself (identity ~0, landmarks 0, flicker 1)
        print(row("input (no swap)", analyse(src, src, convert.SwapSettings(), **measure)), flush=True)
        for text in args.settings:
            s = replace(parse_setting(text), max_frames=args.frames, match_distance=args.match_distance)
            try:
                summary = convert.swap(src, model, tmp / "swap.mp4", s)
            except DoppelError as e:
                print(f"{text:28s} error: {e}")
                continue
            print(row(text, analyse(src, tmp / "swap.mp4", s, **measure), f"{summary.fps:.1f}"), flush=True)
    print("identity: share nearer B (higher is better); landmarks: / eye distance (lower); "
          "flicker: output / input (1 = none added); seam: Delta E across the mask edge in the output, beside "
          "the input's own step at the same place (out > in: a visible seam); found: share of frames where "
          "dlib still finds the face in the output (identity and landmarks use those)")


if __name__ == "__main__":
    main()
