"""Training speed of the swap model: the step alone, and the whole training loop, in faces/s.

    python benchmarks/train_speed.py [--presets lite original] [--batch 32] [--steps 3] [--threads N]
                                     [--layouts channels_last nchw]
    python benchmarks/train_speed.py --loop [--batches 16 32 64] [--loop-threads 1 2] [--loop-workers 0 1 2]
                                     [--seconds 20] [--facesets A B] [--json FILE]

Step alone (default): for each preset one full training step (both people's
batches through the shared encoder and their decoders, L1 + DSSIM loss,
backward, Adam) is timed on random faces. FLOPs are counted by
torch.utils.flop_counter.FlopCounterMode on the same step; the baseline is the
GFLOP/s of a 2048^3 fp32 matmul measured in the same run.

Whole loop (--loop, `lite`): for every (batch, torch threads, loader workers)
setting, `doppel.swap.train.train` itself runs for --seconds after a warm-up
(worker spawn, first batches): data loading, the random-warp augmentation in
the loader workers (or in the training process with 0 workers), the step,
logging. Faces/s comes from the run's own per-step log lines; CPU-seconds are
the training process's plus its workers' (psutil, sampled over the same
interval), so "faces per CPU-second" counts augmentation work too. Beside it,
the step alone on one real augmented batch of the same size and threads.
Face sets: --facesets, or the demo's two clips extracted once as
benchmarks/train_quality.py does (the first 90% of each clip's faces).
"""
from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from doppel.swap import augment, losses, train
from doppel.swap.model import PRESETS, build
from doppel.swap.train import Pair, train_step


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-`repeats` GFLOP/s of an (n x n) @ (n x n) fp32 matmul."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def fake_batch(batch: int, size: int, channels_last: bool) -> dict:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    one = lambda c: torch.rand(batch, c, size, size).contiguous(memory_format=fmt)
    return {p: {"input": one(3), "target": one(3), "parts": one(1), "mask": one(1)} for p in "ab"}


def bench_preset(preset: str, batch: int, steps: int, channels_last: bool) -> dict:
    torch.manual_seed(0)
    model = build(preset)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net, opt = Pair(model), torch.optim.Adam(model.parameters(), 5e-5, betas=(0.5, 0.999))
    lcfg, window, dev = losses.LossConfig(), losses.gaussian_window(), torch.device("cpu")
    data = fake_batch(batch, model.cfg.size, channels_last)
    step = lambda: train_step(net, opt, data, lcfg, window, dev, channels_last)
    with FlopCounterMode(display=False) as fc:
        step()
    train_flops = fc.get_total_flops() / (2 * batch)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(data["a"]["input"], "a")
    step()
    secs = sorted(_timed(step) for _ in range(steps))[len(range(steps)) // 2]  # median step time
    faces = 2 * batch / secs
    return {"preset": preset, "faces_s": faces, "fwd_gflop": fc.get_total_flops() / batch / 1e9,
            "train_gflop": train_flops / 1e9, "gflops": faces * train_flops / 1e9, "step_s": secs}


# ---------------------------------------------------------------- the whole loop

class CpuSampler(threading.Thread):
    """(wall time, CPU-seconds of this process + its live children) every `every` s, until stopped."""

    def __init__(self, every: float = 0.25):
        super().__init__(daemon=True)
        import psutil  # a dev tool here; not a doppel dependency

        self.me, self.every, self.samples, self.halt = psutil.Process(), every, [], threading.Event()

    def cpu(self) -> float:
        total = sum(self.me.cpu_times()[:2])  # user + system of all this process's threads
        for c in self.me.children(recursive=True):
            try:
                total += sum(c.cpu_times()[:2])
            except Exception:  # a worker that just exited
                pass
        return total

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append((time.time(), self.cpu()))
            self.halt.wait(self.every)

    def at(self, t: float) -> float:
        """CPU-seconds at wall time t, interpolated between samples."""
        ts, cs = zip(*self.samples)
        return float(np.interp(t, ts, cs))

    def stop(self) -> None:
        self.samples.append((time.time(), self.cpu()))
        self.halt.set()
        self.join()


def demo_facesets(folder: Path) -> tuple[Path, Path]:
    """The demo pair's training faces (as benchmarks/train_quality.py prepares them), made once into `folder`."""
    import train_quality as tq  # the benchmark beside this one

    roots = tuple(folder / f"faces_{who}" for who in "ab")
    for root, clip in zip(roots, tq.CLIPS):
        if not (root / "alignments.json").is_file():
            tq.split_faceset(tq.extract(tq.DATA / clip), root, 0.1)
    return roots


def bench_loop(facesets, out: Path, batch: int, threads: int, workers: int, seconds: float,
               warmup: float) -> dict:
    """Faces/s and faces per CPU-second of `train.train` (lite, from scratch) after `warmup` s of steps."""
    torch.set_num_threads(threads)
    cfg = train.TrainConfig(preset="lite", minutes=(warmup + seconds + 8) / 60, batch=batch, lr=5e-4,
                            workers=workers, init="scratch", preview_every=0, save_every=10 ** 9, log_every=1)
    sampler = CpuSampler()
    t_call = time.time()
    sampler.start()
    try:
        train.train(*facesets, out, cfg)
    finally:
        sampler.stop()
    lines = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    first = next(l for l in lines if l["time"] >= lines[0]["time"] + warmup)
    last = lines[-1]
    wall, steps = last["time"] - first["time"], last["step"] - first["step"]
    cpu = sampler.at(last["time"]) - sampler.at(first["time"])
    faces = 2 * batch * steps
    return {"batch": batch, "threads": threads, "workers": workers, "steps": steps, "seconds": wall,
            "faces_s": faces / wall, "cpu_s": cpu, "cores": cpu / wall, "faces_cpu_s": faces / cpu,
            "startup_s": lines[0]["time"] - t_call}


def bench_real_step(data_a, data_b, batch: int, threads: int, seconds: float) -> dict:
    """The step alone on one real augmented batch: faces/s (median step) and faces per CPU-second."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build("lite")
    net, opt = Pair(model), torch.optim.Adam(model.parameters(), 5e-4, betas=(0.5, 0.999))
    lcfg, window, dev = losses.LossConfig(), losses.gaussian_window(), torch.device("cpu")
    data = augment.StepBatches(data_a, data_b, batch, 0)[0]
    step = lambda: train_step(net, opt, data, lcfg, window, dev, False)
    step()
    times, c0, t0 = [], time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds or len(times) < 3:
        times.append(_timed(step))
    cpu = time.process_time() - c0
    return {"step_faces_s": 2 * batch / sorted(times)[len(times) // 2],
            "step_faces_cpu_s": 2 * batch * len(times) / cpu}


def loop_table(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = tuple(args.facesets) if args.facesets else demo_facesets(Path(args.faces_dir or tmp))
        from doppel.faceset import FaceSet
        datas = [augment.load_faces(FaceSet.open(p)) for p in sets]
        print(f"faces: {len(datas[0].crops)} of A, {len(datas[1].crops)} of B; {args.seconds:g} s per setting "
              f"after {args.warmup:g} s of warm-up")
        print(f"{'batch':>5s} {'thr':>3s} {'wrk':>3s} {'step f/s':>9s} {'step f/CPU-s':>13s} {'loop f/s':>9s} "
              f"{'cores':>6s} {'loop f/CPU-s':>13s} {'steps':>6s} {'startup s':>10s}")
        for batch, threads in itertools.product(args.batches, args.loop_threads):
            st = bench_real_step(*datas, batch, threads, args.step_seconds)
            for workers in args.loop_workers:
                r = {**bench_loop(sets, Path(tmp) / f"m{batch}_{threads}_{workers}", batch, threads, workers,
                                  args.seconds, args.warmup), **st}
                rows.append(r)
                print(f"{batch:5d} {threads:3d} {workers:3d} {r['step_faces_s']:9.1f} {r['step_faces_cpu_s']:13.1f} "
                      f"{r['faces_s']:9.1f} {r['cores']:6.2f} {r['faces_cpu_s']:13.1f} {r['steps']:6d} "
                      f"{r['startup_s']:10.1f}", flush=True)
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["lite", "original"], choices=list(PRESETS))
    p.add_argument("--batch", type=int, default=32, help="faces per person per step")
    p.add_argument("--steps", type=int, default=3, help="timed steps per preset (median reported)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--layouts", nargs="+", default=["channels_last", "nchw"], choices=["channels_last", "nchw"],
                   help="memory layouts to time (each preset is timed in each)")
    p.add_argument("--loop", action="store_true", help="time the whole training loop over the settings below")
    p.add_argument("--batches", nargs="+", type=int, default=[16, 32, 64], help="--loop: faces per person per step")
    p.add_argument("--loop-threads", nargs="+", type=int, default=[1, 2], help="--loop: torch threads")
    p.add_argument("--loop-workers", nargs="+", type=int, default=[0, 1, 2], help="--loop: loader workers")
    p.add_argument("--seconds", type=float, default=20.0, help="--loop: timed seconds per setting")
    p.add_argument("--warmup", type=float, default=4.0, help="--loop: seconds of steps before timing")
    p.add_argument("--step-seconds", type=float, default=6.0, help="--loop: seconds of the step alone")
    p.add_argument("--facesets", nargs=2, metavar=("A", "B"), help="--loop: face sets (default: the demo pair)")
    p.add_argument("--faces-dir", help="--loop: keep the demo pair's face sets here (made once)")
    p.add_argument("--json", help="--loop: also write the rows to this JSON file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads0, mm = torch.get_num_threads(), matmul_gflops()
    print(f"torch {torch.__version__}; baseline: 2048^3 fp32 matmul {mm:.1f} GFLOP/s "
          f"({torch.get_num_threads()} threads)")
    if args.loop:
        rows = loop_table(args)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        torch.set_num_threads(threads0)  # the baseline again with the same threads as at the start
        print(f"baseline again at the end: {matmul_gflops():.1f} GFLOP/s")
        return
    print(f"{torch.get_num_threads()} threads, batch {args.batch} per person")
    print(f"{'preset':10s} {'layout':14s} {'faces/s':>8s} {'step s':>7s} {'fwd GFLOP/face':>15s} "
          f"{'train GFLOP/face':>17s} {'GFLOP/s':>8s} {'ratio':>6s}")
    for preset, layout in itertools.product(args.presets, args.layouts):
        r = bench_preset(preset, args.batch, args.steps, layout == "channels_last")
        print(f"{preset:10s} {layout:14s} {r['faces_s']:8.1f} {r['step_s']:7.2f} {r['fwd_gflop']:15.3f} "
              f"{r['train_gflop']:17.3f} {r['gflops']:8.1f} {r['gflops'] / mm:6.2f}")
    mm2 = matmul_gflops()
    print(f"baseline again at the end: {mm2:.1f} GFLOP/s (a big change means the CPU was busy with other work)")


if __name__ == "__main__":
    main()
