"""Training speed of the swap model: faces/s, FLOPs per face and achieved GFLOP/s vs a large fp32 matmul.

    python benchmarks/train_speed.py [--presets lite original] [--batch 32] [--steps 3] [--threads N]
                                     [--layouts channels_last nchw]

For each preset: one full training step (both people's batches through the
shared encoder and their decoders, L1 + DSSIM loss, backward, Adam) is timed
on random faces; the data loader is left out (it runs in worker processes).
FLOPs are counted by torch.utils.flop_counter.FlopCounterMode on the same
step. The baseline is the GFLOP/s of a 2048^3 fp32 matmul measured in the
same run; the figure is the ratio of the two.
"""
from __future__ import annotations

import argparse
import itertools
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from doppel.swap import losses
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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["lite", "original"], choices=list(PRESETS))
    p.add_argument("--batch", type=int, default=32, help="faces per person per step")
    p.add_argument("--steps", type=int, default=3, help="timed steps per preset (median reported)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--layouts", nargs="+", default=["channels_last", "nchw"], choices=["channels_last", "nchw"],
                   help="memory layouts to time (each preset is timed in each)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} per person")
    mm = matmul_gflops()
    print(f"baseline: 2048^3 fp32 matmul {mm:.1f} GFLOP/s")
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
