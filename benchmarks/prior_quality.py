"""Prior vs scratch at equal wall time: reconstruction and swap identity on held-out frames.

    python benchmarks/prior_quality.py --out DIR --prepare-only            # face sets + held-out clips
    python benchmarks/prior_quality.py --out DIR --init prior --minutes 10  # train one model, evaluate it
    python benchmarks/prior_quality.py --out DIR --init scratch --minutes 10
    python benchmarks/prior_quality.py --out DIR --report                  # the table of every model in DIR

Person A and B are the demo's pair (retalking_face_1 and _2); each clip's last 10% of
face frames (in time) is held out: never trained on, written as a short clip. Run the
two --init runs side by side (one torch thread each, one core each) so they get the
same CPU; each writes DIR/model_<init>_<minutes>/ and a JSON of its figures.

Figures per model, all on held-out frames:
  ssim_a, ssim_b   SSIM of the held-out aligned faces rebuilt by the person's own decoder
  dist_b           mean dlib 128-D distance from each face of the swapped held-out A clip
                   (`doppel swap`: mask, colour match, blend) to B's mean embedding;
                   dlib's same-person threshold is 0.6
  within_0.6       share of swapped faces at distance < 0.6 from B
  nearer_b         share of swapped faces nearer B's mean than A's
Baselines in the same units: A's held-out frames unswapped (dist to B), and B's own
held-out frames (dist to B: what "is B" looks like).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_quality as tq  # noqa: E402  (its face extraction and split helpers)

from doppel import media  # noqa: E402

DATA = tq.DATA
CLIPS = ("talking/retalking_face_1.mp4", "talking/retalking_face_2.mp4")


def held_clip(video: Path, first_index: int, dest: Path) -> Path:
    """The frames of `video` from `first_index` on, as a new clip (the held-out tail)."""
    info = media.probe(video)
    with media.VideoWriter(dest, info.fps, crf=14) as w:
        for f in media.iter_frames(video):
            if f.index >= first_index:
                w.write(f.image)
    return dest


def prepare(root: Path, hold: float) -> None:
    for who, clip in zip("ab", CLIPS):
        faces = tq.extract(DATA / clip)
        held = tq.split_faceset(faces, root / f"faces_{who}", hold)
        np.save(root / f"held_{who}.npy", held)
        first = faces[len(faces) - len(held)][0].frame_index
        held_clip(DATA / clip, first, root / f"held_{who}.mp4")
        print(f"person {who}: {clip}: {len(faces)} faces, {len(held)} held out from frame {first}")


def embeddings(video: Path) -> np.ndarray:
    """dlib embedding of the largest face of every frame of `video` (N, 128)."""
    from doppel.faces import finder

    out = []
    for f in media.iter_frames(video):
        faces = finder.find_faces(f.image)
        if faces:
            out.append(finder.embedding(np.ascontiguousarray(f.image), faces[0].landmarks))
    return np.array(out).reshape(-1, 128)  # (0, 128) when no frame has a face (a swap too blurred to find)


def mean_embedding(faceset: Path, n: int = 16) -> np.ndarray:
    """Mean embedding of up to n training frames of a person, measured on the full frames."""
    from doppel.faces import finder
    from doppel.faceset import FaceSet

    fs = FaceSet.open(faceset)
    recs = fs.faces[:: max(1, len(fs.faces) // n)][:n]
    frames = {r.frame_index for r in recs}
    out = []
    for f in media.iter_frames(recs[0].source):
        if f.index in frames:
            rec = next(r for r in recs if r.frame_index == f.index)
            out.append(finder.embedding(np.ascontiguousarray(f.image), rec.landmarks_array))
    return np.mean(out, 0)


def dist(e: np.ndarray, m: np.ndarray) -> np.ndarray:
    return np.linalg.norm(e - m[None], axis=1)


def mean(x: np.ndarray) -> float:
    """Rounded mean; NaN (printed, not raised) over no faces at all."""
    return round(float(x.mean()), 4) if len(x) else float("nan")


def train_and_eval(root: Path, init: str, minutes: float, batch: int, lr: float) -> dict:
    import torch

    from doppel.swap import convert, train
    from doppel.swap.model import load_model

    torch.set_num_threads(1)
    name = f"model_{init}_{minutes:g}"
    folder = root / name
    cfg = train.TrainConfig(preset="lite", minutes=minutes, batch=batch, lr=lr, workers=0, preview_every=0,
                            save_every=100000, init=init)
    s = train.train(root / "faces_a", root / "faces_b", folder, cfg)
    model, _ = load_model(folder)
    r = {"init": init, "minutes": minutes, "steps": s.steps_run, "seconds": s.seconds,
         "faces_per_s": round(s.faces_per_s, 1)}
    for who in "ab":
        got, base = tq.evaluate(model, who, np.load(root / f"held_{who}.npy"), root / f"faces_{who}")
        r[f"ssim_{who}"], r[f"mean_face_ssim_{who}"] = round(got, 4), round(base, 4)
    out = folder / "held_a_as_b.mp4"
    convert.swap(root / "held_a.mp4", folder, out, convert.SwapSettings(threads=1))
    ma, mb = mean_embedding(root / "faces_a"), mean_embedding(root / "faces_b")
    e = embeddings(out)
    db, da = dist(e, mb), dist(e, ma)
    r.update(swapped_faces=len(e), dist_b=mean(db), within_06=mean(db < 0.6), nearer_b=mean(db < da), dist_a=mean(da))
    ea, eb = embeddings(root / "held_a.mp4"), embeddings(root / "held_b.mp4")
    r["baseline_a_unswapped_dist_b"] = mean(dist(ea, mb))
    r["baseline_b_own_dist_b"] = mean(dist(eb, mb))
    (root / f"{name}.json").write_text(json.dumps(r, indent=1))
    return r


def report(root: Path) -> None:
    rows = [json.loads(p.read_text()) for p in sorted(root.glob("model_*.json"))]
    cols = ["init", "minutes", "steps", "faces_per_s", "ssim_a", "ssim_b", "dist_b", "within_06", "nearer_b",
            "baseline_a_unswapped_dist_b", "baseline_b_own_dist_b"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="working folder (face sets, held-out clips, models)")
    p.add_argument("--prepare-only", action="store_true", help="write face sets and held-out clips, then stop")
    p.add_argument("--init", default="prior", help="prior, scratch or a prior file (train --init)")
    p.add_argument("--minutes", type=float, default=10.0, help="training time")
    p.add_argument("--batch", type=int, default=16, help="faces per person per step (the demo's)")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (the demo's)")
    p.add_argument("--hold-out", type=float, default=0.1, help="share of each clip's faces held out (the tail)")
    p.add_argument("--report", action="store_true", help="print the table of every evaluated model in --out")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.report:
        return report(a.out)
    if not (a.out / "held_b.mp4").is_file():
        t = time.perf_counter()
        prepare(a.out, a.hold_out)
        print(f"prepared in {time.perf_counter() - t:.0f} s")
    if a.prepare_only:
        return
    print(json.dumps(train_and_eval(a.out, a.init, a.minutes, a.batch, a.lr), indent=1))


if __name__ == "__main__":
    main()
