"""Make doppel's own fake videos of the detector's test clips (corpus/talking/mead), by kind.

    python scripts/make_test_fakes.py -o FAKES_DIR [--data ../shared/data] [--train-minutes 8] [--gan]

The MEAD clips are used by no `doppel detect train` (they are the test clips of
benchmarks/detect_heldout.py), so these fakes measure the detector on kinds of
fake it may never have seen, of people it never saw:
- `swap_<clip>.mp4`: a plain swap model trained from the shipped face prior on
  two speakers' neutral and happy clips (M030 and W009, --train-minutes on the
  CPU), drawn over their other clips as the other person (mask, colour and
  seamless cloning varied from clip to clip);
- `gan_<clip>.mp4` (with --gan): the same with a GAN swap model (`doppel train --gan`, same
  speakers, same budget) and the mask its decoder draws;
- `lipsync_<clip>.mp4`: the third speaker's (W011) clips lip-synced to the sample
  speech with the shipped `grid_s1` lip model.
Existing outputs are kept, so an interrupted run resumes. Every output carries
doppel's synthetic label (the benchmark scores the models, not the label).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from make_detect_fakes import finish, make, run  # one way to run doppel commands (scripts/ is on the path)

TRAIN = {"a": ["M030_front_neutral_level1_001", "M030_front_happy_level3_001"],
         "b": ["W009_front_neutral_level1_001", "W009_front_happy_level3_001"]}
# the first three of each (and of LIPSYNCED the first four) made the test set until 2026-12-07; the rest
# were added then, to give each kind 8-12 fake videos instead of 4-6
SWAPPED = {"b": ["M030_front_angry_level3_001", "M030_front_sad_level3_001", "M030_front_surprised_level3_001",
                 "M030_front_contempt_level3_001", "M030_front_disgusted_level3_001", "M030_front_fear_level3_001"],
           "a": ["W009_front_angry_level3_001", "W009_front_sad_level3_001", "W009_front_surprised_level3_001",
                 "W009_front_contempt_level3_001", "W009_front_disgusted_level3_001", "W009_front_fear_level3_001"]}
LIPSYNCED = ["W011_front_neutral_level1_001", "W011_front_angry_level3_001", "W011_front_happy_level3_001",
             "W011_front_sad_level3_001", "W011_front_contempt_level3_001", "W011_front_disgusted_level3_001",
             "W011_front_fear_level3_001", "W011_front_surprised_level3_001"]
# each starts with its mask (--mask X); the GAN swaps keep the rest and use the mask the GAN draws
STYLES = [["--mask", "hull", "--color", "reinhard"], ["--mask", "ellipse", "--color", "avg", "--seamless"],
          ["--mask", "hull", "--color", "hist", "--sharpen", "0.5"]]


def train_model(work: Path, name: str, minutes: float, extra: list[str]) -> Path:
    """The swap model work/NAME trained on work/faces_a and faces_b for `minutes` (resumed if interrupted;
    a marker file says it finished)."""
    model = work / name
    done = work / ("trained" if name == "model" else f"trained_{name}")
    if not done.is_file():
        resume = ["--resume"] if (model / "train_state.safetensors").is_file() else []
        if not run(["train", str(work / "faces_a"), str(work / "faces_b"), "-o", str(model), "--minutes",
                    str(minutes), *resume, "--threads", "1", "--workers", "0", "--batch", "16", "--lr", "5e-4", *extra]):
            sys.exit(f"make_test_fakes: training the swap model {name} failed")
        done.write_text(f"{minutes} minutes\n")
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--train-minutes", type=float, default=8.0, help="swap model training budget")
    ap.add_argument("--gan", action="store_true", help="also train a GAN swap model and make gan_<clip>.mp4")
    a = ap.parse_args()
    mead = a.data / "corpus" / "talking" / "mead"
    speech = sorted((a.data / "speech").glob("*.wav"))
    if not mead.is_dir() or not speech:
        sys.exit(f"make_test_fakes: no corpus/talking/mead or speech/ under {a.data}")
    work = a.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    failed = []
    for j, c in enumerate(LIPSYNCED):  # first: they need no swap model
        out = a.out / f"lipsync_{c}.mp4"
        make(out, ["lipsync", str(mead / f"{c}.mp4"), str(speech[j % len(speech)]), "-m", "grid_s1", "-o", str(out)],
             failed)
    for who, clips in TRAIN.items():
        faces = work / f"faces_{who}"
        if not faces.is_dir() and not run(["extract", *[str(mead / f"{c}.mp4") for c in clips], "-o", str(faces)]):
            sys.exit(f"make_test_fakes: extracting {who} failed")
    model = train_model(work, "model", a.train_minutes, [])
    gan = train_model(work, "gan", a.train_minutes, ["--gan", "--gan-schedule", "600"]) if a.gan else None
    i = 0
    for to, clips in SWAPPED.items():
        for c in clips:
            out = a.out / f"swap_{c}.mp4"
            make(out, ["swap", str(mead / f"{c}.mp4"), "-m", str(model), "-o", str(out), "--to", to,
                       "--match-distance", "10", *STYLES[i % len(STYLES)]], failed)
            if gan:
                out = a.out / f"gan_{c}.mp4"
                make(out, ["swap", str(mead / f"{c}.mp4"), "-m", str(gan), "-o", str(out), "--to", to,
                           "--match-distance", "10", "--mask", "learned", *STYLES[i % len(STYLES)][2:]], failed)
            i += 1
    finish("make_test_fakes", a.out, failed)

if __name__ == "__main__":
    main()
