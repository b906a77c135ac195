"""The doppel command: every stage is listed, and bad input is one line on stderr with exit code 2."""
import subprocess
import sys

import pytest

from doppel import cli

STAGES = ["extract", "faceset", "train", "swap", "lipsync", "detect"]


def test_help_lists_every_stage(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in STAGES:
        assert name in out


@pytest.mark.parametrize("argv", [
    ["extract", "no_such.mp4", "-o", "{tmp}/fs"],
    ["train", "{tmp}/nope_a", "{tmp}/nope_b", "-o", "{tmp}/m", "--steps", "1"],
    ["swap", "no_such.mp4", "-m", "{tmp}/nope", "-o", "{tmp}/o.mp4"],
    ["lipsync", "no_such.mp4", "no_such.wav", "-m", "{tmp}/nope.lip", "-o", "{tmp}/o.mp4"],
    ["detect", "no_such.mp4", "-o", "{tmp}/rep"],
])
def test_missing_input_is_one_line_and_exit_2(argv, tmp_path):
    argv = [a.format(tmp=tmp_path) for a in argv]
    r = subprocess.run([sys.executable, "-m", "doppel.cli", *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith(("INFO", "WARNING"))]
    assert lines[-1].startswith(f"doppel {argv[0]}: error: "), r.stderr[-2000:]
    # detect is a batch command: it reports each skipped file on its own line, then the error
    assert len(lines) == (2 if argv[0] == "detect" else 1), r.stderr[-2000:]
    assert not any(p.name.startswith(("o.", "m", "fs")) for p in tmp_path.iterdir())


HEAVY = ("torch", "cv2", "dlib")
# heavy modules a command's parser still loads, because a setting it shows lives in a module outside the stage's
# CLI that imports them; the test fails once one goes, so the entry goes with it
STILL_HEAVY = {
    "provenance": {"cv2"},  # provenance/cli imports media
}


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_building_a_commands_parser_loads_no_torch_cv2_or_dlib(name):
    code = (f"import sys; from doppel import cli; cli.build_parser([{name!r}]); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = set(filter(None, r.stdout.strip().split(",")))
    assert "torch" not in loaded
    assert loaded == STILL_HEAVY.get(name, set())
