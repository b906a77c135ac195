"""Reconstruction quality of a time-boxed `lite` training on two talking clips.

    python benchmarks/train_quality.py [--minutes 20] [--clips A.mp4 B.mp4] [--threads N]
    python benchmarks/train_quality.py --out DIR --prepare-only     # face sets + held-out faces only
    python benchmarks/train_quality.py --out DIR --reuse --device cuda   # train/evaluate elsewhere

Faces of two people are taken from two talking-head clips in ../shared/data
with the tracker and aligner (a small helper here, not the extract stage); the
last 10% of each clip's faces (in time, so no held-out face has a near-twin
neighbour frame in training) are held out. The model trains for --minutes;
then the SSIM of each person's held-out faces rebuilt by their own decoder is
printed beside the SSIM of that person's mean training face against the same
held-out faces (a trivial baseline that knows the pose and colours but no
expression).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from doppel import media
from doppel.faces import align
from doppel.faceset import FaceRecord, FaceSet
from doppel.swap import losses, train
from doppel.swap.model import load_model

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLIPS = ("talking/retalking_face_1.mp4", "talking/retalking_face_2.mp4")


def extract(video: Path, size: int = 64) -> list[tuple[FaceRecord, np.ndarray]]:
    """(record, crop) of the largest face in every frame of `video` where one is found."""
    from doppel.faces import finder  # dlib: only needed when preparing the face sets

    tracker, out = finder.FaceTracker(), []
    for frame in media.iter_frames(video):
        faces = tracker(frame.image)
        if faces:
            m = align.align_matrix(faces[0].landmarks, size)
            rec = FaceRecord(str(video), frame.index, frame.time, [float(v) for v in faces[0].box],
                             faces[0].landmarks.tolist(), m.tolist())
            out.append((rec, align.crop(frame.image, m, size)))
    return out


def split_faceset(faces, root: Path, hold: float) -> np.ndarray:
    """Write the first (1 - hold) of the faces as a face set; return the held-out crops (N, S, S, 3)."""
    n_train = int(round(len(faces) * (1 - hold)))
    fs = FaceSet.create(root, faces[0][1].shape[0], align.DEFAULT_COVERAGE)
    for rec, crop in faces[:n_train]:
        fs.add(rec, crop)
    fs.save()
    return np.stack([c for _, c in faces[n_train:]])


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255)


def evaluate(model, who: str, held: np.ndarray, train_root: Path) -> tuple[float, float]:
    """(SSIM of rebuilt held-out faces, SSIM of the mean training face) for one person."""
    x = to_tensor(held)
    with torch.no_grad():
        rebuilt = model(x, who)[0]
    train_crops = np.stack([c for _, c in FaceSet.open(train_root).iter_crops()])
    mean = to_tensor(train_crops).mean(0, keepdim=True).expand_as(x)
    return losses.ssim(rebuilt, x).mean().item(), losses.ssim(mean, x).mean().item()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=20.0, help="training time")
    p.add_argument("--clips", nargs=2, default=[str(DATA / c) for c in CLIPS], help="one clip per person")
    p.add_argument("--hold-out", type=float, default=0.1, help="fraction of each person's faces held out")
    p.add_argument("--batch", type=int, default=16, help="faces per person per step")
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate")
    p.add_argument("--workers", type=int, default=1, help="data-loader processes")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--out", default=None, help="keep the face sets and model here (default: a temp folder)")
    p.add_argument("--prepare-only", action="store_true", help="write the face sets and held-out faces to --out, then stop")
    p.add_argument("--reuse", action="store_true", help="use the face sets and held-out faces already in --out")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to train")
    p.add_argument("--init", default="prior", help="start weights: prior (shipped), scratch, or a prior file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        t = time.perf_counter()
        held = {}
        for who, clip in zip("ab", args.clips):
            if args.reuse:
                held[who] = np.load(root / f"held_{who}.npy")
                continue
            faces = extract(Path(clip))
            held[who] = split_faceset(faces, root / f"faces_{who}", args.hold_out)
            np.save(root / f"held_{who}.npy", held[who])
            print(f"person {who}: {clip}: {len(faces)} faces, {len(held[who])} held out")
        print(f"extraction {time.perf_counter() - t:.0f} s")
        if args.prepare_only:
            return
        cfg = train.TrainConfig(preset="lite", minutes=args.minutes, batch=args.batch, lr=args.lr,
                                workers=args.workers, preview_every=0, save_every=1000, device=args.device,
                                init=args.init)
        s = train.train(root / "faces_a", root / "faces_b", root / "model", cfg)
        print(f"trained {s.steps_run} steps in {s.seconds:.0f} s ({s.faces_per_s:.1f} faces/s); "
              f"last loss A {s.loss_a:.4f}, B {s.loss_b:.4f}")
        model, _ = load_model(root / "model")  # evaluated on the CPU wherever it trained
        print(f"{'person':8s} {'SSIM rebuilt':>13s} {'SSIM mean face':>15s} {'ratio':>6s}")
        for who in "ab":
            got, base = evaluate(model, who, held[who], root / f"faces_{who}")
            print(f"{who:8s} {got:13.3f} {base:15.3f} {got / base:6.2f}")


if __name__ == "__main__":
    main()
