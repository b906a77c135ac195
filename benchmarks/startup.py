"""Start-up time of the `doppel` command: help texts and extracting one photo, against `python -c pass`.

Usage: python benchmarks/startup.py [--repeat K]
Each figure is the fastest of K runs of a fresh process (wall seconds), measured
in this run next to the baseline `python -c pass`. Aims (issue 11): `doppel --help`
and `doppel COMMAND --help` under 0.5 s, one photo extracted under 2.5 s.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from doppel.cli import COMMANDS

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DOPPEL = [sys.executable, "-m", "doppel.cli"]


def fastest(cmd, repeat: int) -> float:
    """Fastest wall time of `repeat` runs of cmd (a list, or a function of the run number giving one)."""
    best = float("inf")
    for i in range(repeat):
        cmd_i = cmd(i) if callable(cmd) else cmd
        t = time.perf_counter()
        r = subprocess.run(cmd_i, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        best = min(best, time.perf_counter() - t)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd_i)} failed: {r.stderr.strip().splitlines()[-1:]}")
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    base = fastest([sys.executable, "-c", "pass"], a.repeat)
    rows = [("python -c pass", base, None)]
    rows.append(("doppel --help", fastest(DOPPEL + ["--help"], a.repeat), 0.5))
    for name in COMMANDS:
        rows.append((f"doppel {name} --help", fastest(DOPPEL + [name, "--help"], a.repeat), 0.5))
    photo = next(iter(sorted((DATA / "images").glob("*.jpg"))), None)
    if photo is not None:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append((f"doppel extract {photo.name}", fastest(
                lambda i: DOPPEL + ["-q", "extract", str(photo), "-o", str(Path(tmp) / f"fs{i}")], a.repeat), 2.5))
    print(f"{'command':<34} {'seconds':>8} {'x pass':>8} {'aim':>6}")
    for name, t, aim in rows:
        ok = "" if aim is None else ("ok" if t < aim else "OVER")
        print(f"{name:<34} {t:8.2f} {t / base:8.1f} {'' if aim is None else f'<{aim:g}':>6} {ok}")


if __name__ == "__main__":
    main()
