"""Make doppel's own manipulated videos of every sample clip, as extra detector data.

    python scripts/make_detect_fakes.py --lip-model LIPMODEL [--swap-model MODEL] [--gan-model GAN] -o FAKES_DIR

One to three kinds (lip-syncs always, swaps with a swap model), one video of each per real clip
of talking/ and video/ (data/deepfake/ is never touched):
- `swap_<clip>.mp4`: `doppel swap` with MODEL's decoder A or B drawn over every
  face (identity check off), mask, colour matching and seamless cloning varied
  from clip to clip;
- `gan_<clip>.mp4` (with --gan-model): the same with a GAN swap model (`doppel train --gan`)
  and the mask its decoder draws (`--mask learned`);
- `lipsync_<clip>.mp4`: `doppel lipsync` of the clip to one of the speech/ files; with --variants K, K-1 more
  a clip (`lipsync_<clip>__v<k>.mp4`), each to another speech file with other synthesis settings
  (LIP_STYLES); with --grid N, the first N GRID s1 sentences (corpus/grid_s1), each lip-synced to the
  audio of a later sentence (`lipsync_<sentence>.mp4`): more lip-syncs of more mouths to learn the lip
  model's tell from.

The shipped detector (detect-955cedfdb8) used `make demo`'s swap model (retalking_face_1 and _2,
started from the shipped face prior, 10 minutes: `demo_out/model`) and the shipped lip model
(`--lip-model src/doppel/lipsync/weights/grid_s1.lip`). Faces the swap model never saw come out
blurry: those swaps are easy fakes, the lip-syncs (mouth only, the clip's own texture) hard ones.
(Before it, detect-f0cdfb66ba used no fake videos; an earlier version a `lite` model of
retalking_face_1/2 trained 30 minutes from scratch.)

`doppel detect train --fakes FAKES_DIR` then uses them by clip name: the kinds
named in `--fakes-train` add CNN training fakes from the training clips, and all
kinds add fakes to the fusion and calibration clips (so the calibration also
sees a kind the CNN was never trained on). Existing outputs are kept, so an
interrupted run resumes. Every output carries doppel's synthetic label.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from doppel import cli
from doppel.detect import dataset

# settings cycled over the clips (index = clip number): decoder, mask, colour, extra flags
SWAP_STYLES = [
    ["--to", "b", "--mask", "hull", "--color", "reinhard"],
    ["--to", "a", "--mask", "ellipse", "--color", "avg"],
    ["--to", "b", "--mask", "hull", "--color", "hist", "--erode", "0.05"],
    ["--to", "a", "--mask", "hull", "--color", "reinhard", "--seamless"],
    ["--to", "b", "--mask", "ellipse", "--color", "reinhard", "--sharpen", "0.5"],
    ["--to", "a", "--mask", "hull", "--color", "avg", "--erode", "-0.05", "--feather", "0.08"],
]
LIP_STYLES = [  # lip-sync variant k (variant 0 is the plain default)
    [],
    ["--candidates", "4"],
    ["--candidates", "16", "--retime"],
    ["--retime", "--crf", "23"],
]
GAN_STYLES = [  # the GAN draws its own mask
    ["--to", "a", "--color", "reinhard"],
    ["--to", "b", "--color", "avg", "--seamless"],
    ["--to", "a", "--color", "hist", "--sharpen", "0.5"],
    ["--to", "b", "--color", "reinhard", "--erode", "0.03"],
]


def run(argv: list[str]) -> bool:
    print(f"$ doppel {shlex.join(argv)}", flush=True)
    t = time.time()
    rc = cli.main(argv)
    print(f"  exit {rc} in {time.time() - t:.0f} s", flush=True)
    return rc == 0


def make(out: Path, argv: list[str], failed: list[str]) -> None:
    """`doppel ARGV` unless `out` is there already (so an interrupted run resumes); `out`'s name goes into
    `failed` when the command fails."""
    if not out.exists() and not run(argv):
        failed.append(out.name)


def finish(prog: str, folder: Path, failed: list[str], total: int | None = None) -> None:
    """Print what `folder` holds and what failed; exit non-zero when anything did."""
    print(f"\n{len(list(folder.glob('*.mp4')))} videos in {folder}; failed: {', '.join(failed) or 'none'}")
    if failed:
        sys.exit(f"{prog}: {len(failed)}{f' of {total}' if total else ''} videos failed (rerun to retry them)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--swap-model", help="a doppel swap model folder (without it: no swap_<clip>.mp4)")
    ap.add_argument("--lip-model", required=True, help="a LIPMODEL from `doppel lipsync train`")
    ap.add_argument("--gan-model", help="a GAN swap model folder (`doppel train --gan`): also make gan_<clip>.mp4")
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--max-frames", type=int, default=150, help="frames swapped per clip")
    ap.add_argument("--variants", type=int, default=1, help=f"lip-syncs per clip (1-{len(LIP_STYLES)})")
    ap.add_argument("--grid", type=int, default=0, help="also lip-sync the first N GRID s1 sentences")
    a = ap.parse_args()
    clips = dataset.videos(a.data)
    speech = sorted((a.data / "speech").glob("*.wav"))
    if not clips or not speech:
        sys.exit(f"make_detect_fakes: no clips or speech under {a.data}")
    for what, path in (("--swap-model", a.swap_model), ("--lip-model", a.lip_model), ("--gan-model", a.gan_model)):
        if path and not Path(path).exists():
            sys.exit(f"make_detect_fakes: {what} not found: {path}")
    if not 1 <= a.variants <= len(LIP_STYLES):
        sys.exit(f"make_detect_fakes: --variants must be 1-{len(LIP_STYLES)}, not {a.variants}")
    grid = sorted((a.data / "corpus" / "grid_s1").glob("*.mpg"))
    if a.grid and len(grid) < 2 * a.grid:
        sys.exit(f"make_detect_fakes: --grid {a.grid} needs {2 * a.grid} GRID s1 sentences, {len(grid)} found")
    a.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for i, clip in enumerate(clips):  # lip-syncs first: they need no swap model, so a first pass can run without one
        for k in range(a.variants):
            out = a.out / f"lipsync_{clip.stem}{f'__v{k}' if k else ''}.mp4"
            make(out, ["lipsync", str(clip), str(speech[(i + k) % len(speech)]), "-m", a.lip_model, "-o", str(out),
                       *LIP_STYLES[k]], failed)
    for j, sentence in enumerate(grid[: a.grid]):
        out = a.out / f"lipsync_{sentence.stem}.mp4"
        make(out, ["lipsync", str(sentence), str(grid[a.grid + j]), "-m", a.lip_model, "-o", str(out),
                   *LIP_STYLES[j % len(LIP_STYLES)]], failed)
    for i, clip in enumerate(clips):
        if a.swap_model:
            out = a.out / f"swap_{clip.stem}.mp4"
            make(out, ["swap", str(clip), "-m", a.swap_model, "-o", str(out), "--match-distance", "10",
                       "--max-frames", str(a.max_frames), *SWAP_STYLES[i % len(SWAP_STYLES)]], failed)
        if a.gan_model:
            out = a.out / f"gan_{clip.stem}.mp4"
            make(out, ["swap", str(clip), "-m", a.gan_model, "-o", str(out), "--match-distance", "10", "--mask",
                       "learned", "--max-frames", str(a.max_frames), *GAN_STYLES[i % len(GAN_STYLES)]], failed)
    finish("make_detect_fakes", a.out, failed,
           (a.variants + bool(a.swap_model) + bool(a.gan_model)) * len(clips) + a.grid)

if __name__ == "__main__":
    main()
