"""GAN vs plain swap model on held-out faces: sharpness, SSIM, identity and occlusion.

    python benchmarks/gan_compare.py split FACESET_A FACESET_B --out DIR [--hold-out 0.2]
    doppel train DIR/train_a DIR/train_b -o DIR/plain --minutes M --threads 1
    doppel train DIR/train_a DIR/train_b -o DIR/gan --gan --minutes M --threads 1
    python benchmarks/gan_compare.py measure FACESET_A FACESET_B --out DIR --plain DIR/plain --gan DIR/gan
    python benchmarks/gan_compare.py speed [--batch 8] [--steps 5]

`split` writes the first (1 - hold-out) of each face set's faces, in frame order,
as training face sets (held out in time, so no held-out face has a neighbour
frame in training). `measure` uses the remaining faces:
  - sharpness: Laplacian variance of generated faces / that of the real held-out
    faces of the person drawn (1: as sharp as real; a blurry face scores low);
  - SSIM of held-out faces rebuilt by their own decoder;
  - identity: dlib embedding distance of A drawn as B to B's mean embedding and to A's;
  - occlusion: a skin-coloured ellipse (10-25% of the face hull) painted over each
    held-out A face, the face swapped into the crop with the hull mask and with
    the learned mask (learned alpha x hull); the figure is the mean abs difference
    (0-255) to the occluded input inside the ellipse: lower = more occluder kept;
  - training speed from each model's log.jsonl, and the GAN/plain ratio (noisy when
    the two runs met different CPU loads: `speed` alternates the two steps in one
    process on random batches instead).
A GAN model's own output is its composite over the input where a figure needs
one face (SSIM, sharpness, identity); its raw colour is shown beside it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from doppel.faces import align
from doppel.faces import mask as masks
from doppel.faceset import FaceSet
from doppel.swap import gan, losses
from doppel.swap.model import load_model

SKIN = np.array([205, 150, 125], np.float32)  # a hand-like RGB


def held_out(fs: FaceSet, hold: float):
    """Records sorted by frame, split at 1 - hold: (train records, held-out records)."""
    recs = sorted(fs.faces, key=lambda r: r.frame_index)
    n = int(round(len(recs) * (1 - hold)))
    return recs[:n], recs[n:]


def split(args) -> None:
    for who, path in zip("ab", (args.faceset_a, args.faceset_b)):
        fs = FaceSet.open(path)
        train, held = held_out(fs, args.hold_out)
        out = FaceSet.create(Path(args.out) / f"train_{who}", fs.size, fs.coverage)
        for rec in train:
            out.add(rec, fs.load_crop(rec))
        out.save()
        print(f"{who}: {len(train)} training faces (frames {train[0].frame_index}-{train[-1].frame_index}), "
              f"{len(held)} held out (frames {held[0].frame_index}-{held[-1].frame_index})")


def crops_and_landmarks(fs: FaceSet, recs) -> tuple[np.ndarray, np.ndarray]:
    crops = np.stack([fs.load_crop(r) for r in recs])
    lms = np.stack([align.transform_points(r.landmarks_array, r.matrix_array) for r in recs])
    return crops, lms


def tensor(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def sharpness(crops: np.ndarray) -> float:
    return float(np.mean([cv2.Laplacian(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for c in crops]))


def embeddings(crops: np.ndarray, lms: np.ndarray, scale: int = 4) -> np.ndarray:
    from doppel.faces import finder
    return np.stack([finder.embedding(cv2.resize(c, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC),
                                      lm * scale) for c, lm in zip(crops, lms)])


@torch.no_grad()
def faces(model, x: torch.Tensor, who: str) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(raw colour, alpha or None, the face the model shows: composite for a GAN model)."""
    c, m = model(x, who)
    return c, m, (gan.composite(c, m, x) if m is not None else c)


def occluded(crops: np.ndarray, lms: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Crops with a skin-coloured ellipse over the lower face, and the ellipses (N, S, S) {0, 1}."""
    size = crops.shape[1]
    out, occ = crops.copy(), np.zeros(crops.shape[:3], np.float32)
    for i, lm in enumerate(lms):
        area = rng.uniform(0.1, 0.25) * masks.hull(lm, size).sum()
        centre = lm[rng.choice([48, 54, 3, 13, 57])]  # mouth corners, cheeks, chin
        ax = np.sqrt(area / np.pi * 1.4)
        cv2.ellipse(occ[i], tuple(int(v) for v in centre), (int(ax), int(area / np.pi / ax)),
                    rng.uniform(0, 180), 0, 360, 1.0, -1)
        out[i] = np.where(occ[i][..., None] > 0, SKIN, crops[i]).astype(np.uint8)
    return out, occ


def occlusion(model, crops, lms, occ) -> dict[str, float]:
    """Mean abs difference to the occluded input inside the occluder, per blend mask."""
    x = tensor(crops)
    c, m, _ = faces(model, x, "b")
    hull = torch.from_numpy(np.stack([masks.hull(lm, crops.shape[1]) for lm in lms]))[:, None]
    res = {"hull": hull}
    if m is not None:
        res["learned"] = m * hull
    inside = torch.from_numpy(occ)[:, None].expand(-1, 3, -1, -1) > 0
    return {k: float(((v * c + (1 - v) * x - x).abs() * 255)[inside].mean()) for k, v in res.items()}


def speed(model_dir: Path) -> float:
    lines = [json.loads(line) for line in (model_dir / "log.jsonl").read_text().splitlines()]
    return float(np.median([line["faces_per_s"] for line in lines]))


def measure(args) -> None:
    fa, fb = FaceSet.open(args.faceset_a), FaceSet.open(args.faceset_b)
    (tr_a, ho_a), (tr_b, ho_b) = held_out(fa, args.hold_out), held_out(fb, args.hold_out)
    xa, la = crops_and_landmarks(fa, ho_a)
    xb, lb = crops_and_landmarks(fb, ho_b)
    mean_a = embeddings(*crops_and_landmarks(fa, tr_a[::4])).mean(0)
    mean_b = embeddings(*crops_and_landmarks(fb, tr_b[::4])).mean(0)
    occ_x, occ = occluded(xa, la, np.random.default_rng(0))
    sharp_b = sharpness(xb)
    print(f"held out: {len(xa)} faces of A, {len(xb)} of B; real B sharpness {sharp_b:.1f}")
    rows = {}
    for name in ("plain", "gan"):
        model, header = load_model(getattr(args, name))
        r = {"step": header.info["step"], "faces/s": speed(Path(getattr(args, name)))}
        c_ab, _, f_ab = faces(model, tensor(xa), "b")
        c_bb, _, f_bb = faces(model, tensor(xb), "b")
        r["sharp A->B"] = sharpness(to_uint8(f_ab)) / sharp_b
        r["sharp A->B colour"] = sharpness(to_uint8(c_ab)) / sharp_b
        r["SSIM B rebuilt"] = losses.ssim(f_bb, tensor(xb)).mean().item()
        r["SSIM B colour"] = losses.ssim(c_bb, tensor(xb)).mean().item()
        e = embeddings(to_uint8(f_ab), la)
        r["id dist A->B to B"] = float(np.linalg.norm(e - mean_b, axis=1).mean())
        r["id dist A->B to A"] = float(np.linalg.norm(e - mean_a, axis=1).mean())
        for k, v in occlusion(model, occ_x, la, occ).items():
            r[f"occluder diff, {k} mask"] = v
        rows[name] = r
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    print(f"{'figure':28s} {'plain':>9s} {'gan':>9s}")
    for k in keys:
        print(f"{k:28s} " + " ".join(f"{rows[n].get(k, float('nan')):9.3f}" for n in ("plain", "gan")))
    print(f"training speed ratio gan/plain: {rows['gan']['faces/s'] / rows['plain']['faces/s']:.2f}")


def step_speed(args) -> None:
    """Plain and GAN training steps on the same random batches, alternated so both see the same CPU load."""
    import time
    from doppel.swap.model import build
    from doppel.swap.train import Pair, train_step
    s, n = 64, args.batch
    hull = torch.zeros(n, 1, s, s)
    hull[:, :, 8:56, 12:52] = 1
    batch = {p: {"input": torch.rand(n, 3, s, s), "target": torch.rand(n, 3, s, s),
                 "parts": torch.zeros(n, 1, s, s), "mask": hull} for p in "ab"}
    torch.manual_seed(0)
    plain, g = Pair(build("lite")), Pair(build("lite", mask=True))
    opt_p, opt_g = (torch.optim.Adam(m.parameters(), 1e-4, betas=(0.5, 0.999)) for m in (plain, g))
    trainer = gan.GanTrainer(gan.GanConfig(), 100, 0, 0, 1, torch.device("cpu"))
    lcfg = losses.LossConfig()
    window = losses.gaussian_window()
    times = {"plain": [], "gan": []}
    for i in range(args.steps + 1):
        for name in ("plain", "gan"):
            t = time.perf_counter()
            if name == "plain":
                train_step(plain, opt_p, batch, lcfg, window, torch.device("cpu"), False)
            else:
                trainer.step(g, opt_g, batch, 50)  # mid-schedule: perceptual loss on
            if i:  # the first step of each warms up
                times[name].append(time.perf_counter() - t)
    rate = {k: 2 * n / float(np.median(v)) for k, v in times.items()}
    print(f"faces/s at batch {n}, median of {args.steps} alternated steps: plain {rate['plain']:.1f}, "
          f"gan {rate['gan']:.1f}; ratio gan/plain {rate['gan'] / rate['plain']:.2f}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["split", "measure", "speed"])
    p.add_argument("faceset_a", nargs="?")
    p.add_argument("faceset_b", nargs="?")
    p.add_argument("--out", help="folder for the training face sets")
    p.add_argument("--batch", type=int, default=8, help="faces per person per step (speed)")
    p.add_argument("--steps", type=int, default=5, help="timed steps of each (speed)")
    p.add_argument("--hold-out", type=float, default=0.2, help="last fraction of each set's frames held out")
    p.add_argument("--plain", help="plain model folder (measure)")
    p.add_argument("--gan", help="GAN model folder (measure)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    {"split": split, "measure": measure, "speed": step_speed}[args.command](args)


if __name__ == "__main__":
    main()
