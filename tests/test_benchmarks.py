"""The benchmarks do not rot: each imports (default run) and runs to its figure on a tiny input (slow)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_imports_and_has_a_main(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert callable(mod.main) and mod.__doc__


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, data_dir):
    """Short, small clips of two real people (12 frames, 256 px), a list of them, an untrained swap model."""
    import cv2
    import torch
    from doppel import media
    from doppel.swap.model import build, save_model
    root = tmp_path_factory.mktemp("bench")
    clips = []
    for name in ("retalking_face_1", "retalking_face_2"):
        out = root / f"{name}.mp4"
        with media.VideoWriter(out, 25) as w:
            for f in media.read_frames(data_dir / "talking" / f"{name}.mp4")[:12]:
                w.write(cv2.resize(f.image, (256, 256), interpolation=cv2.INTER_AREA))
        clips.append(out)
    (root / "list.csv").write_text(f"path,label\n# a comment line\n{clips[0].name},0\n{clips[1].name},1\n")
    torch.manual_seed(0)
    save_model(root / "model", build("lite").eval(),
               info={"coverage": 0.8, "size": 64, "identity_a": None, "identity_b": None, "step": 1})
    return root, clips


RUNS = {  # name -> (argv with {a}, {b}, {root}, {data}; a line the output must hold)
    "articulation": (["--real", "{data}/talking/retalking_face_2.mp4", "--fake", "{data}/talking/retalking_face_5.mp4",
                      "--jobs", "1"], "AUC (low articulation = lip-sync)"),  # two real speakers: a smoke run
    "detect_cnn_speed": (["--threads", "1", "--batch", "2"], "baseline)"),
    "detect_eval": (["{root}/list.csv", "--step", "4"], "baseline majority class"),
    "detect_heldout": (["--limit", "4", "--clips", "1", "--bootstrap", "20", str(ROOT / "src/doppel/detect/weights"),
                        str(ROOT / "src/doppel/detect/weights")],  # a folder against itself: no difference at all
                       "blend +0.000 [+0.000, +0.000]"),
    "detect_scale": (["--limit", "8", "--corpus", "6", "--coverages", "0.56", "--reenact"], ", reenact 0."),
    "detect_speed": (["--video", "{a}", "--repeat", "1", "--step", "4"], "baseline decode only"),
    "extract_speed": (["--clip", "{a}", "--repeat", "1"], "extract f/s"),
    "face_recall": (["--scenes", "2", "--faces", "2"], "false/100 fr"),
    "gan_compare": (["speed", "--batch", "2", "--steps", "1"], "ratio gan/plain"),
    "identity_check": (["--clips", "1", "--step", "50"], "called right at"),
    "lipsync_eval": (["--skip", "sync", "texture"], "mouth error / width"),
    "peak_memory": (["--lengths", "1", "--clip", "{a}", "--commands", "extract,detect", "--work", "{root}/pm"],
                    "| detect |"),
    "prior_quality": (["--out", "{root}/pq", "--init", "scratch", "--minutes", "0.05"], "dist_b"),
    "startup": (["--repeat", "1"], "doppel --help"),
    "scan_scaling": (["--files", "2", "--step", "25", "--store-rows", "20"], "cluster overhead per file"),
    "swap_quality": (["--model", "{root}/model", "--input", "{a}", "--b-video", "{b}", "--other-video", "{b}",
                      "--frames", "6", "--every", "3", "--settings", "hull:reinhard"], "stranger"),
    "swap_speed": (["--clip", "{a}", "--frames", "6", "--repeat", "1"], "floor (decode + encode"),
    "temporal_mouth": (["--train", "{a}", "--sel", "{b}", "--fakes", "{root}", "--cache", "{root}/tm", "-o", "{root}/tmo",
                        "--minutes", "0.05", "--eval-s", "5", "--batch", "4"], "selection AUC, baseline chance 0.5: own"),
    "train_quality": (["--minutes", "0.05", "--clips", "{a}", "{b}", "--batch", "2", "--workers", "0"], "SSIM"),
    "train_speed": (["--presets", "lite", "--batch", "2", "--steps", "1", "--layouts", "nchw"], "GFLOP/s"),
    "watermark": (["speed", "--frames", "4"], "embed"),
}


@pytest.mark.slow
def test_every_benchmark_has_a_smoke_run():
    assert sorted(RUNS) == SCRIPTS


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNS))
def test_benchmark_runs_on_a_tiny_input(name, tiny, data_dir):
    root, (a, b) = tiny
    argv, expect = RUNS[name]
    argv = [x.format(a=a, b=b, root=root, data=data_dir) for x in argv]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *argv], capture_output=True, text=True,
                       env=env, timeout=600, cwd=root)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    assert expect in r.stdout, r.stdout[-3000:]
