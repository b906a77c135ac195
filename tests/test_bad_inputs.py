"""The malformed-input corpus (tests/data/bad/, made by tests/data/make_bad.py) through every command
that reads media: one line on stderr, exit code 2, no traceback, nothing written where the output goes."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from doppel import cli
from doppel.detect import scan

BAD = Path(__file__).resolve().parent / "data" / "bad"
_spec = importlib.util.spec_from_file_location("make_bad", BAD.parent / "make_bad.py")
make_bad = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_bad)
NAMES = sorted(make_bad.corpus())
VIDEO = "talking/retalking_face_5.mp4"
SPEECH = "speech/retalking_audio_1.wav"

# command -> argv with {bad}, {out} (where its output would go), {model}, {lip}, {video}, {speech}
COMMANDS = {
    "extract": ["extract", "{bad}", "-o", "{out}"],
    "faceset": ["faceset", "sheet", "{bad}", "-o", "{out}.png"],
    "train": ["train", "{bad}", "{bad}", "-o", "{out}", "--steps", "1"],
    "swap": ["swap", "{bad}", "-m", "{model}", "-o", "{out}.mp4"],
    "lipsync-video": ["lipsync", "{bad}", "{speech}", "-m", "{lip}", "-o", "{out}.mp4"],
    "lipsync-audio": ["lipsync", "{video}", "{bad}", "-m", "{lip}", "-o", "{out}.mp4"],
    "lipsync-train": ["lipsync", "train", "{bad}", "-o", "{out}.lip", "--steps", "1"],
    "detect": ["detect", "{bad}", "-o", "{out}"],
    "pretrain": ["pretrain", "{bad}", "{bad}", "-o", "{out}", "--steps", "1"],  # a file where a face set goes
    "lipsync-texture": ["lipsync", "texture", "{bad}", "-m", "{lip}", "-o", "{out}.lip", "--tex-steps", "1",
                        "--cache", "none"],
    "provenance": ["provenance", "check", "{bad}"],
    "scan": ["scan", "{bad}", "--store", "{out}.sqlite", "--local-workers", "1"],
    "detect-train": ["detect", "train", "--data", "{bad}", "-o", "{out}"],  # a file where the media folder goes
}
# sound without pictures is good speech for lipsync: that pair is no malformed input
VALID = {("lipsync-audio", "audio_only.mp4")}
# detect reads these to the end (or to the damage) and finds no face: a report saying so, exit 0
DECODABLE = {"png.mp4", "corrupted.mp4", "tiny_2x2.mp4"}
# scan's store is its output: it records the failed file (an error row), so it is the one thing left
STORE = "result.sqlite"


def _shown(err: str) -> list[str]:
    """stderr lines as a terminal shows them (progress bars redraw with \\r), minus log lines."""
    lines = [l.rsplit("\r", 1)[-1].strip() for l in err.split("\n")]  # splitlines() also splits at \r
    return [l for l in lines if l and not l.startswith(("INFO", "WARNING"))]


def test_the_committed_corpus_is_the_generated_one():
    assert sorted(p.name for p in BAD.iterdir()) == NAMES
    assert all(p.stat().st_size < 8192 for p in BAD.iterdir())  # a few KB each
    gen = make_bad.corpus()
    for name in ("empty.mp4", "text.mp4", "png.mp4"):  # not encoder-dependent: byte-identical
        assert (BAD / name).read_bytes() == gen[name]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """An untrained swap model and an untrained lip model: valid files, so only the bad input can fail."""
    import numpy as np
    import torch
    from doppel.lipsync import model as lipmodel, shapes
    from doppel.swap.model import build, save_model
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_model(root / "swap", build("lite").eval(),
               info={"coverage": 0.8, "size": 64, "identity_a": None, "identity_b": None, "step": 1})
    pca = shapes.MouthPCA(np.zeros(40), np.eye(3, 40), 1.0)
    lipmodel.save(root / "m.lip", lipmodel.Checkpoint(lipmodel.LipLSTM(lipmodel.LipConfig(hidden=4, n_coeffs=3)), pca))
    return root / "swap", root / "m.lip"


DEFAULT = {"text.mp4", "truncated.mp4", "tiny_2x2.mp4"}  # every command on these by default; all with -m slow
SLOW_COMMANDS = {"scan"}  # starts a Dask cluster (seconds a case): only with -m slow
CASES = [pytest.param(c, n, marks=() if n in DEFAULT and c not in SLOW_COMMANDS else pytest.mark.slow)
         for c in COMMANDS for n in NAMES if (c, n) not in VALID]


@pytest.mark.parametrize("command, name", CASES)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(command, name, models, data_dir, tmp_path, capfd):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    fields = dict(bad=BAD / name, out=out_dir / "result", model=models[0], lip=models[1],
                  video=data_dir / VIDEO, speech=data_dir / SPEECH)
    argv = [a.format(**fields) for a in COMMANDS[command]]
    capfd.readouterr()
    rc = cli.main(argv)
    err = capfd.readouterr().err
    lines = _shown(err)
    assert "Traceback" not in err, err[-3000:]
    if command in ("provenance", "scan") and name in DECODABLE:  # readable pictures: checked, no face / no mark
        assert rc == 0, (rc, err[-2000:])
        assert sorted(p.name for p in out_dir.iterdir()) == ([STORE] if command == "scan" else [])
        return
    if command == "detect" and name in DECODABLE:
        summary = json.loads((out_dir / "result" / "summary.json").read_text())
        assert rc == 0 and [r["label"] for r in summary] == [scan.NO_FACE], summary
        stem = Path(name).stem
        want = sorted(["index.html", "summary.json", f"{stem}.html", f"{stem}.json"])
        assert sorted(p.name for p in (out_dir / "result").iterdir()) == want  # complete, nothing temporary
        return
    assert rc == 2, (rc, err[-2000:])
    assert lines and lines[-1].startswith(f"doppel {argv[0]}: error: "), err[-2000:]
    # detect and provenance check are batch commands: a line for each skipped file, then the error; scan
    # says its plan ("1 file(s), 1 distinct, ...") and leaves its finished progress bar; the rest say one line
    assert len(lines) == {"detect": 2, "provenance": 2, "scan": 3}.get(command, 1), err[-2000:]
    if command == "scan":
        assert lines[0].startswith("1 file(s)") and "errors=1" in lines[1], lines
    left = sorted(p.name for p in out_dir.iterdir())
    assert left == ([STORE] if command == "scan" else []), left
