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
