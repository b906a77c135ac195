"""Peak memory (RSS) and speed of extract, swap, lipsync (as target) and detect on long 1080p videos.

    python benchmarks/peak_memory.py [--lengths 20,60] [--work /tmp/doppel_peak] [--clip VIDEO]
        [--speech WAV] [--commands extract,swap,lipsync,detect] [--reuse]

A talking clip from ../shared/data is upscaled to 1080 px tall, centred on a 1920x1080 frame, and
played forward and backward (no jump cut) until each length is reached; the videos are written under
--work, never into the repository (--reuse keeps one already there with the right frame count, made
from the same --clip by an earlier run). Every command runs as its own process; its peak RSS is the
child's ru_maxrss from os.wait4 (the largest resident set it reached, threads included). frames/s
is video frames per wall second (lipsync: output frames; its speech is the short wav looped to the
video's length, so compositing covers the whole target too). A peak that stays put from the short
to the long video is bounded; one that grows with it is not. The swap model is a 2-step model
started from the bundled prior (its quality does not matter here: only its cost per frame).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "src"))
COMMANDS = ("extract", "swap", "lipsync", "detect")


def make_video(clip: Path, seconds: float, out: Path, reuse: bool = False) -> int:
    """Write the clip, upscaled to 1080p and ping-ponged, as `seconds` of H.264; returns its frame count."""
    from doppel import media
    fps = media.probe(clip).fps
    n = int(round(seconds * fps))
    if reuse and out.exists() and media.probe(out).frame_count == n:
        return n
    frames = [f.image for f in media.iter_frames(clip)]
    order = np.concatenate([np.arange(len(frames)), np.arange(len(frames) - 2, 0, -1)])
    with media.VideoWriter(out, fps, crf=23) as w:
        for i in range(n):
            img = frames[order[i % len(order)]]
            big = cv2.resize(img, (1080 * img.shape[1] // img.shape[0], 1080), interpolation=cv2.INTER_CUBIC)
            canvas = np.zeros((1080, 1920, 3), np.uint8)
            x = (1920 - big.shape[1]) // 2
            canvas[:, max(x, 0):max(x, 0) + min(big.shape[1], 1920)] = big[:, max(-x, 0):max(-x, 0) + 1920]
            w.write(canvas)
    return n


def make_speech(speech: Path, seconds: float, out: Path) -> None:
    from scipy.io import wavfile
    rate, x = wavfile.read(speech)
    reps = int(np.ceil(seconds * rate / len(x)))
    wavfile.write(out, rate, np.tile(x, (reps,) + (1,) * (x.ndim - 1))[: int(seconds * rate)])


def run(args: list) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of `doppel ARGS` as a child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "doppel.cli", "-q", *map(str, args)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read().decode(errors="replace")  # read before waiting: a full pipe would block it
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    if p.returncode:
        raise SystemExit(f"doppel {' '.join(map(str, args[:2]))} failed ({p.returncode}): {err[-1500:]}")
    return wall, usage.ru_maxrss / 2 ** 20  # ru_maxrss is in KiB on Linux


def swap_model(work: Path, clip: Path) -> Path:
    """A 2-step lite model from the bundled prior, A = the clip's face set, B = another talking clip's."""
    model = work / "model"
    if (model / "model.safetensors").exists():
        return model
    for c, f in ((clip, work / "fs_a"), (DATA / "talking" / "retalking_face_2.mp4", work / "fs_b")):
        if not (f / "alignments.json").exists():
            run(["extract", c, "-o", f])
    run(["train", work / "fs_a", work / "fs_b", "-o", model, "--steps", 2, "--batch", 4, "--workers", 0,
         "--preview-every", 0])
    return model


def measure(cmd: str, video: Path, frames: int, seconds: float, work: Path, model: Path | None,
            speech: Path) -> tuple[float, float]:
    tag = video.stem
    if cmd == "extract":
        return run(["extract", video, "-o", work / f"fs_{tag}"])
    if cmd == "swap":
        return run(["swap", video, "-m", model, "-o", work / f"swap_{tag}.mp4"])
    if cmd == "lipsync":
        wav = work / f"speech_{tag}.wav"
        make_speech(speech, seconds, wav)
        return run(["lipsync", video, wav, "-m", "grid_s1", "-o", work / f"lip_{tag}.mp4"])
    if cmd == "detect":
        return run(["detect", video, "-o", work / f"det_{tag}"])
    raise SystemExit(f"unknown command {cmd}; choose from {', '.join(COMMANDS)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="20,60", help="video lengths in seconds, comma-separated")
    ap.add_argument("--work", type=Path, default=Path("/tmp/doppel_peak"), help="scratch folder (outside the repo)")
    ap.add_argument("--clip", type=Path, default=DATA / "talking" / "retalking_face_5.mp4")
    ap.add_argument("--speech", type=Path, default=DATA / "speech" / "retalking_audio_1.wav")
    ap.add_argument("--commands", default=",".join(COMMANDS))
    ap.add_argument("--reuse", action="store_true",
                    help="keep a video already under --work with the right frame count (made from the same --clip)")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    cmds = a.commands.split(",")
    model = swap_model(a.work, a.clip) if "swap" in cmds else None
    rows = []
    for seconds in (float(s) for s in a.lengths.split(",")):
        video = a.work / f"long_{seconds:g}s.mp4"
        frames = make_video(a.clip, seconds, video, a.reuse)
        for cmd in cmds:
            wall, gb = measure(cmd, video, frames, seconds, a.work, model, a.speech)
            rows.append((cmd, seconds, frames, gb, frames / wall, wall))
            print(f"{cmd:8s} {seconds:4g} s 1080p ({frames} frames): peak RSS {gb:.2f} GB, "
                  f"{frames / wall:.1f} frames/s ({wall:.0f} s)", flush=True)
    print("\n| command | video | peak RSS | frames/s | wall |\n|---|---|---|---|---|")
    for cmd, seconds, frames, gb, fps, wall in sorted(rows, key=lambda r: (COMMANDS.index(r[0]), r[1])):
        print(f"| {cmd} | {seconds:g} s 1080p ({frames} frames) | {gb:.2f} GB | {fps:.1f} | {wall:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
