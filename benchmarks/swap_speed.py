"""Frames per second of `doppel swap` on a 720p clip, beside the decode + re-encode floor.

    python benchmarks/swap_speed.py [--clip video/source_s32.mp4] [--frames 180] [--threads 1] [--repeat 2]

The model is an untrained `lite` (same speed as a trained one) whose identity
of A is the clip's own first face, so the identity check runs as in real use.
The floor decodes the same frames and writes them with the same writer, audio
and quality, doing nothing else: swap fps / floor fps says what the face work costs.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


import numpy as np

from doppel import media
from doppel.faces import finder
from doppel.swap import convert
from doppel.swap.model import ModelFacts, build, read_header, save_model

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def floor_fps(clip: Path, frames: int, out: Path) -> float:
    """Decode `frames` frames and re-encode them (same writer, crf and audio as swap)."""
    t = time.perf_counter()
    with media.VideoWriter(out, media.probe(clip).fps, convert.SwapSettings().crf, audio=str(clip)) as w:
        for f in media.iter_frames(clip):
            if f.index >= frames:
                break
            w.write(f.image)
    return frames / (time.perf_counter() - t)


def make_model(clip: Path, preset: str, folder: Path) -> Path:
    first = next(media.iter_frames(clip)).image
    faces = finder.find_faces(first)
    ident = finder.embedding(np.ascontiguousarray(first), faces[0].landmarks).tolist() if faces else None
    model = build(preset).eval()
    save_model(folder, model, info={"coverage": 0.8, "size": model.cfg.size, "identity_a": ident})
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", default=str(DATA / "video" / "source_s32.mp4"), help="720p-class video")
    p.add_argument("--frames", type=int, default=180, help="frames to process (shorten the run)")
    p.add_argument("--preset", default="lite")
    p.add_argument("--threads", type=int, default=convert.SwapSettings().threads, help="torch threads")
    p.add_argument("--batch", type=int, default=convert.SwapSettings().batch)
    p.add_argument("--repeat", type=int, default=2, help="interleaved runs of floor and swap; best counts")
    p.add_argument("--cache-mb", type=int, default=convert.SwapSettings().cache_mb, help="0: decode twice")
    args = p.parse_args()
    clip = Path(args.clip)
    info = media.probe(clip)
    frames = min(args.frames, info.frame_count)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_model(clip, args.preset, tmp / "model")
        facts = ModelFacts.of(read_header(model), model)
        ident = None if facts.identity_a is None else np.asarray(facts.identity_a, np.float32)
        settings = convert.SwapSettings(max_frames=frames, threads=args.threads, batch=args.batch,
                                        cache_mb=args.cache_mb)
        floors, swaps, pass1 = [], [], []
        for _ in range(args.repeat):  # interleaved, best of N: the box is shared and its load moves
            floors.append(floor_fps(clip, frames, tmp / "floor.mp4"))
            t = time.perf_counter()
            convert.track_faces(convert.FrameSource(str(clip), frames, 0), settings, ident)
            pass1.append(frames / (time.perf_counter() - t))
            s = convert.swap(clip, model, tmp / "swap.mp4", settings)
            swaps.append(s.fps)
    print(f"clip {clip.name} {info.width}x{info.height}, {frames} frames, {args.preset}, torch threads {args.threads}, "
          f"batch {args.batch}, frame cache {args.cache_mb} MB, best of {args.repeat}")
    print(f"floor (decode + encode, nothing else): {max(floors):.1f} fps  (runs: {', '.join(f'{x:.1f}' for x in floors)})")
    print(f"pass 1 alone (decode + landmarks + tracks): {max(pass1):.1f} fps")
    print(f"doppel swap: {max(swaps):.1f} fps  (runs: {', '.join(f'{x:.1f}' for x in swaps)}; "
          f"{s.swapped}/{s.frames} frames swapped)")
    print(f"ratio swap / floor: {max(swaps) / max(floors):.2f}")


if __name__ == "__main__":
    main()
