"""Frames per second of `doppel extract` beside decoding the same clip alone.

    python benchmarks/extract_speed.py            # a 720p clip and a 512x512 clip from ../shared/data
    python benchmarks/extract_speed.py --repeat 1 --clip path/to/video.mp4
    python benchmarks/extract_speed.py --small       # also a planted 720p clip with one ~50 px face
    python benchmarks/extract_speed.py --no-face     # also a 720p clip with no face (the person painted over)

Prints, per clip: decode-only frames/s, extract frames/s (detect, track, align,
score, write crops, set filters, identity) and their ratio, with the default
face finder and with the old one (384 px fast pass only). Models are loaded
before timing. The machine's load average is printed too: on shared machines
the figures are noisy.

On a clip with no face every keyframe runs the whole cascade (fast pass, deep
pass, both turned frames) and every other frame the fast pass; extract then
stops with "no face found" after reading every frame, and it is timed to that
error (frames from the stream header).
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
from doppel.faces import finder  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CLIPS = [DATA / "video" / "source_s32.mp4", DATA / "talking" / "hdtf_WDA_AlexandriaOcasioCortez_000.mp4"]


def decode_fps(path: Path) -> float:
    start = time.perf_counter()
    n = sum(1 for _ in media.iter_frames(path))
    return n / (time.perf_counter() - start)


def extract_fps(path: Path, cfg: ex.ExtractConfig) -> tuple[float, ex.Summary | None]:
    """Frames/s of extract on `path`; the summary, or None when it stopped with "no face found" (timed to it)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        try:
            summary = ex.extract([path], Path(tmp) / "fs", cfg)
        except ex.DoppelError as e:
            if not str(e).startswith("no face found"):
                raise
            return media.probe(path).frame_count / (time.perf_counter() - start), None
        return summary.frames / (time.perf_counter() - start), summary


def small_face_clip(out: Path, frames: int = 100, width: int = 50) -> Path:
    """A 1280x720 clip of a talking face shrunk to a ~`width` px 68-point box over a real background."""
    src = DATA / "talking" / "retalking_face_5.mp4"
    first = next(media.iter_frames(src)).image
    lm = finder.find_faces(first)[0].landmarks
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


def no_face_clip(out: Path, frames: int = 100) -> Path:
    """A 1280x720 clip of real footage (video/source_s32.mp4) with its person's head painted over, every frame
    the same rectangle: the union of the tracked face boxes, grown to hair, ears and chin."""
    import cv2
    import numpy as np
    src = DATA / "video" / "source_s32.mp4"
    images = [f.image for f, _ in zip(media.iter_frames(src), range(frames))]
    tracker = finder.FaceTracker()
    boxes = np.array([f.box for image in images for f in tracker(image)[:1]])
    x0, y0 = boxes[:, :2].min(0)
    x1, y1 = boxes[:, 2:].max(0)
    bw, bh = x1 - x0, y1 - y0
    h, w = images[0].shape[:2]
    gx0, gy0, gx1, gy1 = (int(max(0, x0 - 0.5 * bw)), int(max(0, y0 - 0.8 * bh)),
                          int(min(w, x1 + 0.5 * bw)), int(min(h, y1 + 0.6 * bh)))
    with media.VideoWriter(out, 25) as wr:
        for image in images:
            canvas = image.copy()
            ring = image[max(0, gy0 - 12):gy0, gx0:gx1].reshape(-1, 3)
            canvas[gy0:gy1, gx0:gx1] = np.median(ring, 0) if len(ring) else 128
            canvas[gy0:gy1, gx0:gx1] = cv2.GaussianBlur(canvas[gy0:gy1, gx0:gx1], (0, 0), 3)
            wr.write(canvas)
    return out


def warm_up(path: Path) -> None:
    """Load the dlib models (several seconds) outside the timed runs."""
    image = next(iter(media.iter_frames(path))).image
    faces = finder.find_faces(image)
    if faces:
        finder.landmarks5(image, faces[0].box)
        finder.embedding(image, faces[0].landmarks)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", action="append", type=Path, help="clip(s) to time (default: a 720p and a 512x512 one)")
    p.add_argument("--repeat", type=int, default=2, help="runs per clip; the best is reported")
    p.add_argument("--reference", type=Path, help="also pass this photo as --reference")
    p.add_argument("--small", action="store_true", help="also time a planted 720p clip with one ~50 px face")
    p.add_argument("--no-face", action="store_true", help="also time a 720p clip with no face (person painted over)")
    args = p.parse_args()
    clips = list(args.clip or CLIPS)
    tmp = tempfile.TemporaryDirectory()
    if args.small:
        clips.append(small_face_clip(Path(tmp.name) / "small_face_720p.mp4"))
    if args.no_face:
        clips.append(no_face_clip(Path(tmp.name) / "no_face_720p.mp4"))
    ref = str(args.reference) if args.reference else None
    finders = {"new": ex.ExtractConfig(reference=ref), "old": ex.ExtractConfig(reference=ref, detect=finder.OLD_FINDER)}
    warm_up(clips[0])
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} "
          "(other work on the machine slows every figure)")
    print(f"{'clip':<44} {'size':>9} {'finder':>6} {'frames':>6} {'no face':>7} {'decode f/s':>10} "
          f"{'extract f/s':>11} {'ratio':>6}")
    for clip in clips:
        info = media.probe(clip)
        dec = max(decode_fps(clip) for _ in range(args.repeat))
        for name, cfg in finders.items():
            runs = [extract_fps(clip, cfg) for _ in range(args.repeat)]
            fps, summary = max(runs, key=lambda r: r[0])
            frames, no_face = (summary.frames, summary.frames_no_face) if summary else (info.frame_count, "all")
            print(f"{clip.name[:44]:<44} {info.width:>4}x{info.height:<4} {name:>6} {frames:>6} "
                  f"{no_face:>7} {dec:>10.1f} {fps:>11.1f} {fps / dec:>6.2f}"
                  + ("  (stopped: no face found; timed to the error)" if summary is None else ""))
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
