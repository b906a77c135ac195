"""kill -9 doppel stages at random moments and check that nothing on disk is half-written.

    PYTHONPATH=src python scripts/kill_trials.py --work DIR [--trials 5] [--stages extract,train,...]
        [--clip VIDEO] [--b-clip VIDEO] [--lip-clip VIDEO] [--seed 0]

Each stage works in DIR/<stage>, emptied first (the face sets A and B in DIR are kept).

Per stage: one uninterrupted run (its output is the "old complete" artifact and its wall time T), then
--trials runs of the same command killed with SIGKILL at a uniform random moment in [0.2 T, 1.1 T].
After each kill every artifact under its final name must be the old complete one or a new complete one
(it loads, decodes to the end, parses; a face set lists every record of the killed run or none of
them, since each extract trial extends a copy of the complete set). Stages that train (train, lipsync-train) restart from what the
kill left (--resume) and, once all trials are done, run to the end: their weights must equal the
uninterrupted run's bit for bit. Temporary files a kill leaves (dot-names beside the output) are
counted as litter, not artifacts. Prints one line per stage and exits 1 when anything was lost.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
STAGES = ("extract", "train", "swap", "lipsync-train", "detect")
TRAIN_STEPS, LIP_STEPS = 12, 2000  # steps of the train and lipsync-train trials


def doppel(args: list, kill_after: float | None = None) -> tuple[int, float, bool]:
    """Run `doppel ARGS` in a subprocess; SIGKILL it after `kill_after` s. (rc, wall s, killed while running)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "doppel.cli", "-q", *map(str, args)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:  # communicate, not wait: progress bars would fill the stderr pipe and block the child
        err = p.communicate(timeout=kill_after)[1]
        landed = False
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        err = p.communicate()[1]
        landed = True
    err = err.decode(errors="replace")
    if not landed and p.returncode:
        raise RuntimeError(f"doppel {' '.join(map(str, args[:2]))} failed ({p.returncode}): {err[-1500:]}")
    return p.returncode, time.monotonic() - t0, landed


def litter(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.is_file()] if folder.exists() else []


def clear_litter(folder: Path) -> None:
    for p in litter(folder):
        p.unlink()


# ---- what a complete artifact is, per stage (each returns a list of problems) ----

def records(root: Path) -> int:
    from doppel.faceset import FaceSet
    fs = FaceSet.open(root)
    return len(fs.faces) + len(fs.dropped)


def check_faceset(root: Path, old: bytes, complete: int) -> list[str]:
    """The killed run extended a complete set: alignments.json must be the old one, byte for byte, or
    list exactly `complete` records (old + one whole run's) with its set-level filters applied, and
    every crop it lists must decode. A set that reads but holds fewer records is a partial one."""
    from doppel.faceset import FaceSet
    path = root / "alignments.json"
    if not path.exists():
        return ["the old face set is gone"]
    if path.read_bytes() == old:
        return []
    try:
        fs = FaceSet.open(root)
        for _ in fs.iter_crops():  # every listed crop is there and decodes
            pass
    except Exception as e:  # noqa: BLE001 - any failure to read it back is a lost artifact
        return [f"face set unreadable: {e.__class__.__name__}: {e}"]
    n = len(fs.faces) + len(fs.dropped)
    if n != complete or "quality" not in fs.meta:
        return [f"partial face set: {n} of {complete} records"]
    return []


def check_swap_model(root: Path) -> list[str]:
    from safetensors.torch import load_file
    from doppel.swap.model import read_header
    out = []
    for name in ("model.safetensors", "train_state.safetensors"):
        if (root / name).exists():
            try:
                load_file(str(root / name))
            except Exception as e:  # noqa: BLE001
                out.append(f"{name} unreadable: {e}")
    if (root / "model.safetensors").exists() and not out:
        read_header(root)
    return out


def check_lip(path: Path) -> list[str]:
    from doppel.lipsync import model
    if not path.exists():
        return []
    try:
        model.load(path)
        return []
    except Exception as e:  # noqa: BLE001
        return [f"{path.name} unreadable: {e}"]


def check_video(path: Path, old: bytes, frames: int) -> list[str]:
    from doppel import media, provenance
    if not path.exists():
        return ["the old output is gone"]
    if path.read_bytes() == old:
        return []
    try:
        n = sum(1 for _ in media.iter_frames(path))
        ok = n == frames and provenance.read_label(path)
        return [] if ok else [f"new output has {n} of {frames} frames or no label"]
    except Exception as e:  # noqa: BLE001
        return [f"output unreadable: {e}"]


def check_report(folder: Path, stem: str) -> list[str]:
    out = []
    for p in folder.glob("*.json"):
        try:
            json.loads(p.read_text())
        except ValueError:
            out.append(f"{p.name} is not complete JSON")
    for p in folder.glob("*.html"):
        if not p.read_text().rstrip().endswith(("</html>", "</p>")):
            out.append(f"{p.name} is cut short")
    if not (folder / f"{stem}.json").exists():
        out.append("the old report is gone")
    return out


def same_weights(a: Path, b: Path) -> bool:
    from safetensors.torch import load_file
    import torch
    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x if not k.startswith("rng."))


# ---- the trials ----

def finished(stage: str, work: Path) -> None:
    """A trial that ran to the end leaves nothing to resume: start the next one over, or it is vacuous."""
    if stage == "lipsync-train" and (work / "k.lip").exists():
        from doppel.lipsync import model
        if model.load(work / "k.lip").step >= LIP_STEPS:
            (work / "k.lip").unlink()
    if stage == "train" and swap_step(work) >= TRAIN_STEPS:
        shutil.rmtree(work / "k")


def mid_run(stage: str, work: Path) -> bool:
    """This trial resumes training from a checkpoint before the last step (what makes resuming a test)."""
    if stage == "lipsync-train" and (work / "k.lip").exists():
        from doppel.lipsync import model
        return model.load(work / "k.lip").step < LIP_STEPS
    if stage == "train":
        return 0 <= swap_step(work) < TRAIN_STEPS
    return False


def swap_step(work: Path) -> int:
    """Steps the swap model a train trial left in work/k has taken (-1: none written yet)."""
    if not (work / "k" / "model.safetensors").exists():
        return -1
    from doppel.swap.model import read_header
    return int(read_header(work / "k").info.get("step", 0))


def run_stage(stage: str, work: Path, trials: int, rng: np.random.Generator, clip: Path, b_clip: Path,
              lip_clip: Path) -> dict:
    shutil.rmtree(work, ignore_errors=True)  # a reused folder would hold extended sets and finished runs
    work.mkdir(parents=True)
    res = {"stage": stage, "trials": trials, "landed": 0, "lost": [], "litter": 0, "resumed_equal": None,
           "mid_resumes": 0}
    fa, fb = work.parent / "faces_a", work.parent / "faces_b"
    if stage in ("train", "swap") and not (fb / "alignments.json").exists():
        for c, f in ((clip, fa), (b_clip, fb)):
            doppel(["extract", c, "-o", f])
    train_args = [fa, fb, "--steps", TRAIN_STEPS, "--save-every", 3, "--batch", 2, "--workers", 0, "--preview-every", 0,
                  "--seed", 1, "--threads", 1]
    # 2000 steps (about 18 s here; start-up is 4 s) with a checkpoint every 100, so most kills land in
    # training between checkpoints and the next trial resumes mid-run
    lip_args = [lip_clip, "--steps", LIP_STEPS, "--save-every", 100, "--hidden", 8, "--cache", work / "cache"]
    if stage == "extract":
        cmd = ["extract", clip, "-o", work / "fs"]
    elif stage == "train":
        cmd, check = ["train", *train_args[:2], "-o", work / "k", *train_args[2:]], lambda: check_swap_model(work / "k")
    elif stage == "swap":
        model = work / "model"
        if not (model / "model.safetensors").exists():
            doppel(["train", *train_args[:2], "-o", model, "--steps", 2, *train_args[4:]])
        cmd = ["swap", clip, "-m", model, "-o", work / "out.mp4"]
    elif stage == "lipsync-train":
        cmd, check = ["lipsync", "train", lip_args[0], "-o", work / "k.lip", *lip_args[1:]], lambda: check_lip(work / "k.lip")
    elif stage == "detect":
        cmd = ["detect", clip, "-o", work / "rep", "--step", 4]
    else:
        raise SystemExit(f"unknown stage {stage}; choose from {', '.join(STAGES)}")

    # the uninterrupted run: the reference weights, or the old complete output the trials overwrite
    ref_cmd = list(cmd)
    if stage == "train":
        ref_cmd[ref_cmd.index(work / "k")] = work / "ref"
    if stage == "lipsync-train":
        ref_cmd[ref_cmd.index(work / "k.lip")] = work / "ref.lip"
        doppel(["lipsync", "train", lip_args[0], "-o", work / "warm.lip", "--steps", 1, *lip_args[3:]])  # cache
    if stage == "extract":
        ref_cmd[ref_cmd.index(work / "fs")] = work / "ref_fs"
    _, wall, _ = doppel(ref_cmd)
    if stage == "extract":  # each trial extends a copy of the complete set by one run of the same clip
        complete = 2 * records(work / "ref_fs")
        check = lambda: check_faceset(work / "fs", old, complete)  # noqa: E731
    if stage == "swap":
        from doppel import media
        old, frames = (work / "out.mp4").read_bytes(), sum(1 for _ in media.iter_frames(clip))
        check = lambda: check_video(work / "out.mp4", old, frames)  # noqa: E731
    if stage == "detect":
        check = lambda: check_report(work / "rep", clip.stem)  # noqa: E731

    for _ in range(trials):
        argv = list(cmd)
        if stage == "extract":
            shutil.rmtree(work / "fs", ignore_errors=True)
            shutil.copytree(work / "ref_fs", work / "fs")
            old = (work / "fs" / "alignments.json").read_bytes()
        finished(stage, work)
        if stage == "train":
            if (work / "k" / "model.safetensors").exists():
                argv.append("--resume")
            else:
                shutil.rmtree(work / "k", ignore_errors=True)  # killed before its first checkpoint: nothing to keep
        res["mid_resumes"] += mid_run(stage, work)
        _, _, landed = doppel(argv, kill_after=float(rng.uniform(0.2, 1.1)) * wall)
        res["landed"] += landed
        res["lost"] += check()
        out_dir = work / ("k" if stage == "train" else "fs" if stage == "extract" else "rep" if stage == "detect"
                          else "")
        res["litter"] += len(litter(out_dir))
        clear_litter(out_dir)

    if stage == "train":
        doppel(cmd + (["--resume"] if (work / "k" / "model.safetensors").exists() else []))
        res["resumed_equal"] = all(same_weights(work / "ref" / n, work / "k" / n)
                                   for n in ("model.safetensors", "train_state.safetensors"))
    if stage == "lipsync-train":
        doppel(cmd)
        res["resumed_equal"] = same_weights(work / "ref.lip", work / "k.lip")
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (kept for inspection)")
    ap.add_argument("--trials", type=int, default=5, help="kills per stage")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--clip", type=Path, default=DATA / "talking" / "retalking_face_5.mp4")
    ap.add_argument("--b-clip", type=Path, default=DATA / "talking" / "retalking_face_2.mp4")
    ap.add_argument("--lip-clip", type=Path, default=DATA / "talking" / "retalking_face_5.mp4",
                    help="a talking clip with its speech, for lipsync train")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    bad = False
    for stage in a.stages.split(","):
        r = run_stage(stage, a.work / stage, a.trials, rng, a.clip, a.b_clip, a.lip_clip)
        bad |= bool(r["lost"]) or r["resumed_equal"] is False
        eq = "" if r["resumed_equal"] is None else (f", {r['mid_resumes']} resumed mid-run, "
                                                     f"resumed = uninterrupted: {r['resumed_equal']}")
        print(f"{stage}: {r['trials']} kills ({r['landed']} while running), artifacts lost {len(r['lost'])}"
              f"{': ' + '; '.join(r['lost'][:3]) if r['lost'] else ''}, temp files left {r['litter']}{eq}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
