"""scripts/kill_trials.py on small clips: SIGKILL at random moments of extract, train, swap, lipsync train
and detect loses no artifact, and killed training resumes to the uninterrupted run's weights (slow)."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from doppel import media

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_kill_trials_lose_nothing(data_dir, tmp_path):
    clips = []
    for name in ("retalking_face_5", "retalking_face_2"):  # 20 frames at 256 px: each run takes seconds
        out = tmp_path / f"{name}.mp4"
        with media.VideoWriter(out, 25) as w:
            for f in media.read_frames(data_dir / "talking" / f"{name}.mp4")[:20]:
                w.write(cv2.resize(f.image, (256, 256), interpolation=cv2.INTER_AREA))
        clips.append(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "kill_trials.py"), "--work", str(tmp_path / "w"),
                        "--trials", "2", "--clip", str(clips[0]), "--b-clip", str(clips[1]), "--seed", "1"],
                       env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, (r.stdout, r.stderr[-3000:])
    lines = r.stdout.splitlines()
    assert len(lines) == 5 and all("artifacts lost 0" in l for l in lines), r.stdout
    assert sum("resumed = uninterrupted: True" in l for l in lines) == 2, r.stdout


def _script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("kill_trials", ROOT / "scripts" / "kill_trials.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("step", [3, 12])
def test_kill_trials_reads_the_step_of_a_swap_model_as_written_now(tmp_path, step):
    """The script's own reading of a checkpoint (default run: the trials themselves are slow, and this
    part rotted once when the checkpoint header became a dataclass)."""
    import torch
    from doppel.swap.model import build, save_model
    kt = _script()
    torch.manual_seed(0)
    save_model(tmp_path / "k", build("lite").eval(),
               info={"coverage": 0.8, "size": 64, "identity_a": None, "identity_b": None, "step": step})
    assert kt.check_swap_model(tmp_path / "k") == []
    assert kt.mid_run("train", tmp_path) == (step < kt.TRAIN_STEPS)
    kt.finished("train", tmp_path)  # a finished run is removed so the next trial starts over
    assert (tmp_path / "k").exists() == (step < kt.TRAIN_STEPS)
