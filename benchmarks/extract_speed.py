"""Frames per second of `doppel extract` beside decoding the same clip alone.

    python benchmarks/extract_speed.py            # a 720p clip and a 512x512 clip from ../shared/data
    python benchmarks/extract_speed.py --repeat 1 --clip path/to/video.mp4

Prints, per clip: decode-only frames/s, extract frames/s (detect, track, align,
score, write crops, set filters, identity) and their ratio. Models are loaded
before timing. The machine's load average is printed too: on shared machines
the figures are noisy.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from doppel import extract as ex  # noqa: E402
from doppel import media  # noqa: E402
from doppel.faces import detect  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CLIPS = [DATA / "video" / "source_s32.mp4", DATA / "talking" / "hdtf_WDA_AlexandriaOcasioCortez_000.mp4"]


def decode_fps(path: Path) -> float:
    start = time.perf_counter()
    n = sum(1 for _ in media.iter_frames(path))
    return n / (time.perf_counter() - start)


def extract_fps(path: Path, cfg: ex.ExtractConfig) -> tuple[float, ex.Summary]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = ex.extract([path], Path(tmp) / "fs", cfg)
        return summary.frames / (time.perf_counter() - start), summary


def warm_up(path: Path) -> None:
    """Load the dlib models (several seconds) outside the timed runs."""
    image = next(iter(media.iter_frames(path))).image
    faces = detect.find_faces(image)
    if faces:
        detect.landmarks5(image, faces[0].box)
        detect.embedding(image, faces[0].landmarks)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", action="append", type=Path, help="clip(s) to time (default: a 720p and a 512x512 one)")
    p.add_argument("--repeat", type=int, default=2, help="runs per clip; the best is reported")
    p.add_argument("--reference", type=Path, help="also pass this photo as --reference")
    args = p.parse_args()
    clips = args.clip or CLIPS
    cfg = ex.ExtractConfig(reference=str(args.reference) if args.reference else None)
    warm_up(clips[0])
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} "
          "(other work on the machine slows every figure)")
    print(f"{'clip':<44} {'size':>9} {'frames':>6} {'decode f/s':>10} {'extract f/s':>11} {'ratio':>6}")
    for clip in clips:
        info = media.probe(clip)
        dec = max(decode_fps(clip) for _ in range(args.repeat))
        runs = [extract_fps(clip, cfg) for _ in range(args.repeat)]
        fps, summary = max(runs, key=lambda r: r[0])
        print(f"{clip.name[:44]:<44} {info.width:>4}x{info.height:<4} {summary.frames:>6} {dec:>10.1f} "
              f"{fps:>11.1f} {fps / dec:>6.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
