"""Make doppel's own fake videos of the detector's test clips (corpus/talking/mead), by kind.

    python scripts/make_test_fakes.py -o FAKES_DIR [--data ../shared/data] [--train-minutes 8]

The MEAD clips are used by no `doppel detect train` (they are the test clips of
benchmarks/detect_heldout.py), so these fakes measure the detector on kinds of
fake it may never have seen, of people it never saw:
- `swap_<clip>.mp4`: a plain swap model trained from the shipped face prior on
  two speakers' neutral and happy clips (M030 and W009, --train-minutes on the
  CPU), drawn over their other clips as the other person (mask, colour and
  seamless cloning varied from clip to clip);
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
SWAPPED = {"b": ["M030_front_angry_level3_001", "M030_front_sad_level3_001", "M030_front_surprised_level3_001"],
           "a": ["W009_front_angry_level3_001", "W009_front_sad_level3_001", "W009_front_surprised_level3_001"]}
LIPSYNCED = ["W011_front_neutral_level1_001", "W011_front_angry_level3_001", "W011_front_happy_level3_001",
             "W011_front_sad_level3_001"]
STYLES = [["--mask", "hull", "--color", "reinhard"], ["--mask", "ellipse", "--color", "avg", "--seamless"],
          ["--mask", "hull", "--color", "hist", "--sharpen", "0.5"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--train-minutes", type=float, default=8.0, help="swap model training budget")
    a = ap.parse_args()
    mead = a.data / "corpus" / "talking" / "mead"
    speech = sorted((a.data / "speech").glob("*.wav"))
    if not mead.is_dir() or not speech:
        sys.exit(f"make_test_fakes: no corpus/talking/mead or speech/ under {a.data}")
    work = a.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    failed = []
    for who, clips in TRAIN.items():
        faces = work / f"faces_{who}"
        if not faces.is_dir() and not run(["extract", *[str(mead / f"{c}.mp4") for c in clips], "-o", str(faces)]):
            sys.exit(f"make_test_fakes: extracting {who} failed")
    model = work / "model"
    done = work / "trained"  # written once training finished: an interrupted training resumes instead
    if not done.is_file():
        resume = ["--resume"] if (model / "train_state.safetensors").is_file() else []
        if not run(["train", str(work / "faces_a"), str(work / "faces_b"), "-o", str(model), "--minutes",
                    str(a.train_minutes), *resume, "--threads", "1", "--workers", "0", "--batch", "16", "--lr", "5e-4"]):
            sys.exit("make_test_fakes: training the swap model failed")
        done.write_text(f"{a.train_minutes} minutes\n")
    i = 0
    for to, clips in SWAPPED.items():
        for c in clips:
            out = a.out / f"swap_{c}.mp4"
            make(out, ["swap", str(mead / f"{c}.mp4"), "-m", str(model), "-o", str(out), "--to", to,
                       "--match-distance", "10", *STYLES[i % len(STYLES)]], failed)
            i += 1
    for j, c in enumerate(LIPSYNCED):
        out = a.out / f"lipsync_{c}.mp4"
        make(out, ["lipsync", str(mead / f"{c}.mp4"), str(speech[j % len(speech)]), "-m", "grid_s1", "-o", str(out)],
             failed)
    finish("make_test_fakes", a.out, failed)

if __name__ == "__main__":
    main()
