"""The doppel demo: the whole pipeline on the sample media in ../shared/data.

    python scripts/demo.py [--data ../shared/data] [--out demo_out] [--train-minutes 10]

Extracts two people from two talking clips, trains the swap model for a bounded
time, swaps A's face for B's, lip-syncs a clip to new speech, runs the detector
on the results and on a real/fake pair nobody here made, and prints where the
outputs and the report are. Every step is a `doppel` command, printed before it
runs, so each can be repeated by hand.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from doppel import cli

CLIP_A = "talking/retalking_face_1.mp4"
CLIP_B = "talking/retalking_face_2.mp4"
LIP_TARGET = "talking/retalking_face_3.mp4"
LIP_AUDIO = "speech/retalking_audio_2.wav"
LIP_TRAIN = ["talking/retalking_face_3.mp4", "talking/retalking_face_4.mp4",
             "talking/retalking_face_5.mp4", "talking/hdtf_WDA_AlexandriaOcasioCortez_000.mp4"]


def step(title: str, argv: list[str]) -> float:
    """Run one doppel command; stop the demo on failure."""
    print(f"\n=== {title}\n$ doppel {shlex.join(argv)}", flush=True)
    t = time.time()
    rc = cli.main(argv)
    if rc != 0:
        sys.exit(f"demo: step failed ({title}), exit code {rc}")
    return time.time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="the sample media")
    ap.add_argument("--out", type=Path, default=Path("demo_out"), help="where everything is written")
    ap.add_argument("--train-minutes", type=float, default=10.0, help="time budget of the swap training")
    ap.add_argument("--lip-minutes", type=float, default=2.0, help="time budget of the lip-sync training")
    args = ap.parse_args()
    d, o = args.data, args.out
    if not (d / CLIP_A).is_file():
        sys.exit(f"demo: sample media not found under {d} (expected {d / CLIP_A})")
    o.mkdir(parents=True, exist_ok=True)
    times = {}
    for who, clip in (("a", CLIP_A), ("b", CLIP_B)):
        if (o / f"faces_{who}" / "alignments.json").is_file():
            print(f"\n=== extract person {who.upper()}: {o / f'faces_{who}'} exists, reused")
        else:
            times[f"extract {who.upper()}"] = step(f"extract person {who.upper()}",
                                                   ["extract", str(d / clip), "-o", str(o / f"faces_{who}")])
    step("contact sheet of A", ["faceset", "sheet", str(o / "faces_a"), "-o", str(o / "faces_a_sheet.png")])
    resume = ["--resume"] if (o / "model" / "train_state.safetensors").is_file() else []
    times["train"] = step("train the swap model", ["train", str(o / "faces_a"), str(o / "faces_b"), "-o", str(o / "model"),
                                                   "--minutes", str(args.train_minutes), *resume,
                                                   # one torch thread, augmentation in the training process (the most
                                                   # faces per CPU-second on 2 cores: benchmarks/train_speed.py --loop);
                                                   # a higher rate and smaller batches: more steps in a short budget
                                                   "--threads", "1", "--workers", "0", "--batch", "16", "--lr", "5e-4"])
    times["swap"] = step("swap A -> B", ["swap", str(d / CLIP_A), "-m", str(o / "model"), "-o", str(o / "swapped.mp4"),
                                         "--preview", str(o / "swapped_preview.png")])
    times["lipsync train"] = step("train lip sync", ["lipsync", "train", *[str(d / c) for c in LIP_TRAIN],
                                                     "-o", str(o / "lipmodel.safetensors"), "--minutes", str(args.lip_minutes)])
    times["lipsync"] = step("lip-sync a clip to new speech", ["lipsync", str(d / LIP_TARGET), str(d / LIP_AUDIO), "-m",
                                                              str(o / "lipmodel.safetensors"), "-o", str(o / "lipsynced.mp4"),
                                                              "--preview", str(o / "lipsynced_preview.png")])
    videos = [o / "swapped.mp4", o / "lipsynced.mp4", d / "deepfake/ffpp_pair_real.mp4", d / "deepfake/ffpp_pair_fake.mp4"]
    times["detect"] = step("detect", ["detect", *map(str, videos), "-o", str(o / "report")])
    print("\n=== done")
    for k, v in times.items():
        print(f"  {k:<14} {v:7.1f} s")
    print(f"\noutputs in {o}/: swapped.mp4, lipsynced.mp4 (both labelled synthetic), swapped_preview.png,"
          f" lipsynced_preview.png, faces_a_sheet.png, model/previews/ (training progress)")
    print(f"report: {o / 'report' / 'index.html'} (links one .html and .json per video; summary.json)")


if __name__ == "__main__":
    main()
