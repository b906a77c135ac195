"""Frames per second of `doppel extract` beside decoding the same clip alone.

    python benchmarks/extract_speed.py            # a 720p clip and a 512x512 clip from ../shared/data
    python benchmarks/extract_speed.py --repeat 1 --clip path/to/video.mp4
    python benchmarks/extract_speed.py --small       # also a planted 720p clip with one ~50 px face

Prints, per clip: decode-only frames/s, extract frames/s (detect, track, align,
score, write crops, set filters, identity) and their ratio, with the default
face finder and with the old one (384 px fast pass only). Models are loaded
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


def small_face_clip(out: Path, frames: int = 100, width: int = 50) -> Path:
    """A 1280x720 clip of a talking face shrunk to a ~`width` px 68-point box over a real background."""
    src = DATA / "talking" / "retalking_face_5.mp4"
    first = next(media.iter_frames(src)).image
    lm = detect.find_faces(first)[0].landmarks
    s = width / (lm[:, 0].max() - lm[:, 0].min())
    bg = next(media.iter_frames(DATA / "video" / "source_s32.mp4")).image[:240, :320]
    import cv2
    bg = cv2.resize(bg, (1280, 720), interpolation=cv2.INTER_CUBIC)
    with media.VideoWriter(out, 25) as w:
        for i, frame in enumerate(media.iter_frames(src)):
            if i == frames:
                break
            small = cv2.resize(frame.image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            canvas = bg.copy()
            canvas[300:300 + small.shape[0], 600:600 + small.shape[1]] = small
            w.write(canvas)
    return out


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
    p.add_argument("--small", action="store_true", help="also time a planted 720p clip with one ~50 px face")
    args = p.parse_args()
    clips = list(args.clip or CLIPS)
    tmp = tempfile.TemporaryDirectory()
    if args.small:
        clips.append(small_face_clip(Path(tmp.name) / "small_face_720p.mp4"))
    ref = str(args.reference) if args.reference else None
    finders = {"new": ex.ExtractConfig(reference=ref), "old": ex.ExtractConfig(reference=ref, detect=detect.OLD_FINDER)}
    warm_up(clips[0])
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} "
          "(other work on the machine slows every figure)")
    print(f"{'clip':<44} {'size':>9} {'finder':>6} {'frames':>6} {'no face':>7} {'decode f/s':>10} "
          f"{'extract f/s':>11} {'ratio':>6}")
    for clip in clips:
        info = media.probe(clip)
        dec = max(decode_fps(clip) for _ in range(args.repeat))
        for name, cfg in finders.items():
            try:
                runs = [extract_fps(clip, cfg) for _ in range(args.repeat)]
            except ex.DoppelError as e:
                print(f"{clip.name[:44]:<44} {info.width:>4}x{info.height:<4} {name:>6}  {e}")
                continue
            fps, summary = max(runs, key=lambda r: r[0])
            print(f"{clip.name[:44]:<44} {info.width:>4}x{info.height:<4} {name:>6} {summary.frames:>6} "
                  f"{summary.frames_no_face:>7} {dec:>10.1f} {fps:>11.1f} {fps / dec:>6.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
