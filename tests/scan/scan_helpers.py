"""Planted faults for the scan tests (a uniquely named module: tests/ has no packages).

`analyse` replaces the worker's analyser: a file named crash_* raises (a decoder that
throws), hang_* never returns, die_* kills its worker process the first time (a worker
killed mid-file, after 2 s) and segv_* kills it at once, every time (a file that crashes the decoder
natively). Anything else goes to the real detector.
"""
import os
import shutil
import signal
import time
from pathlib import Path

from doppel.scan import worker

GRID = ("bbaf2n", "bbaf3s", "bbaf4p", "bbaf5a", "bbal6n", "bbal7s")
STEP = 25  # 3 analysed frames per 3 s GRID clip: the detector's full path, quickly


def analyse(path: str, det, step: int) -> dict:
    name = Path(path).name
    if name.startswith("crash"):
        raise RuntimeError("planted decoder crash")
    if name.startswith("hang"):
        time.sleep(3600)
    if name.startswith("segv"):
        os.kill(os.getpid(), signal.SIGKILL)
    if name.startswith("die"):
        marker = Path(path).with_suffix(".died")
        if not marker.exists():
            marker.touch()
            time.sleep(2)  # mid-file: the start event has reached the scheduler
            os.kill(os.getpid(), signal.SIGKILL)
    return worker.analyse(path, det, step)


def clip(data_dir: Path, k: int) -> Path:
    return data_dir / "corpus" / "grid_s1" / f"{GRID[k]}.mpg"


def plant(folder: Path, data_dir: Path, names: dict[str, int]) -> Path:
    """Copies of GRID clips under new names ({name: clip number}); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, k in names.items():
        shutil.copyfile(clip(data_dir, k), folder / name)
    return folder


def plant_bad(folder: Path, data_dir: Path) -> None:
    """A text file named .mp4 and a truncated mp4."""
    (folder / "text.mp4").write_text("not a video\n")
    src = (data_dir / "talking" / "retalking_face_1.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(src[: len(src) // 20])
