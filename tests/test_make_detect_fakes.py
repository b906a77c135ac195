"""scripts/make_detect_fakes.py: lip-sync variants and GRID lip-syncs, named so the detector and the temporal
mouth probe find them; a bad count is a one-line error."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[1]
LIP = ROOT / "src/doppel/lipsync/weights/grid_s1.lip"


def script(*argv, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "scripts/make_detect_fakes.py"), *map(str, argv)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=cwd)


def planted(root: Path, data_dir: Path, grid: int) -> Path:
    """A data folder: one short real clip (talking/), one speech file, `grid` GRID s1 sentences."""
    from doppel import media
    data = root / "data"
    for sub in ("talking", "speech", "corpus/grid_s1"):
        (data / sub).mkdir(parents=True)
    with media.VideoWriter(data / "talking" / "clip.mp4", 25) as w:
        for f in media.read_frames(data_dir / "talking" / "retalking_face_1.mp4")[:10]:
            w.write(cv2.resize(f.image, (256, 256), interpolation=cv2.INTER_AREA))
    (data / "speech" / "a.wav").symlink_to(data_dir / "speech" / "retalking_audio_1.wav")
    for p in sorted((data_dir / "corpus" / "grid_s1").glob("*.mpg"))[:grid]:
        (data / "corpus" / "grid_s1" / p.name).symlink_to(p)
    return data


@pytest.mark.parametrize("argv, says", [(["--variants", "9"], "--variants must be 1-4"),
                                        (["--grid", "2"], "--grid 2 needs 4 GRID s1 sentences, 1 found")])
def test_bad_counts_are_one_line_errors(tmp_path, data_dir, argv, says):
    data = planted(tmp_path, data_dir, grid=1)
    r = script("--data", data, "--lip-model", LIP, "-o", tmp_path / "out", *argv, cwd=tmp_path)
    assert r.returncode != 0 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_variants_and_grid_lipsyncs_are_made_and_labelled(tmp_path, data_dir):
    from doppel.provenance.label import read_label
    data = planted(tmp_path, data_dir, grid=2)
    out = tmp_path / "out"
    r = script("--data", data, "--lip-model", LIP, "-o", out, "--variants", "2", "--grid", "1", cwd=tmp_path)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    grid0 = sorted((data_dir / "corpus" / "grid_s1").glob("*.mpg"))[0].stem
    assert sorted(p.name for p in out.glob("*.mp4")) == sorted(
        ["lipsync_clip.mp4", "lipsync_clip__v1.mp4", f"lipsync_{grid0}.mp4"])
    assert "--candidates 4" in r.stdout  # variant 1's settings
    for p in out.glob("*.mp4"):
        assert (read_label(p) or {}).get("kind") == "lipsync", p.name
    again = script("--data", data, "--lip-model", LIP, "-o", out, "--variants", "2", "--grid", "1", cwd=tmp_path)
    assert again.returncode == 0 and "$ doppel" not in again.stdout  # nothing made twice
