"""Training-step and scoring time of candidate detector CNNs on this machine, against the old plain CNN.

Usage: python benchmarks/detect_cnn_speed.py [--threads 1 2] [--batch 64]
Prints per shape: parameters, seconds per Adam step of a batch, milliseconds to
score one face (batches of 8, eval mode), and both as a ratio to the plain 64 px
CNN measured in the same run (the baseline). Random inputs: speed only.
"""
from __future__ import annotations

import argparse
import time

import torch

from doppel.detect import detectors

SHAPES = {
    "plain 64 px (old shipped, baseline)": detectors.CNNConfig(),
    "resnet 128 px (shipped)": detectors.RESNET,
    "resnet 112 px": detectors.CNNConfig(112, 0.6, (32, 64, 128, 256), "resnet"),
    "resnet 128 px, narrower": detectors.CNNConfig(128, 0.6, (24, 48, 96, 192), "resnet"),
}


def measure(cfg: detectors.CNNConfig, batch: int) -> tuple[int, float, float]:
    torch.manual_seed(0)
    m = detectors.FaceCNN(cfg)
    opt = torch.optim.Adam(m.parameters())
    x, y = torch.randn(batch, 3, cfg.size, cfg.size), torch.rand(batch)
    lossf = torch.nn.BCEWithLogitsLoss()
    times = []
    for _ in range(4):
        t = time.perf_counter()
        loss = lossf(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    m.eval()
    xi = torch.randn(8, 3, cfg.size, cfg.size)
    with torch.no_grad():
        m(xi)
        t = time.perf_counter()
        for _ in range(5):
            m(xi)
    infer = (time.perf_counter() - t) / 40
    return sum(p.numel() for p in m.parameters()), min(times[1:]), infer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    for n in a.threads:
        torch.set_num_threads(n)
        print(f"{n} torch thread(s), batch {a.batch}")
        base = None
        for name, cfg in SHAPES.items():
            params, step, infer = measure(cfg, a.batch)
            base = base or (step, infer)
            print(f"  {name:<38} {params / 1e6:5.2f} M  step {step:5.2f} s ({step / base[0]:4.1f}x)  "
                  f"score {1000 * infer:5.1f} ms/face ({infer / base[1]:4.1f}x)")


if __name__ == "__main__":
    main()
