"""Generator simulators: small autoencoders that redraw a real face through an upsampling decoder.

A detector trained on one generator's fakes learns that generator (docs/detect.md: doppel's GAN swaps in
training taught the CNN the training GAN, not the test one). AutoGAN (Zhang, Karaman & Chang 2019)
trains a classifier on real images against the reconstructions of a small autoencoder: its decoder's
upsampling leaves the traces that GANs' decoders share, so no GAN is needed to learn them. Here a bank of
such autoencoders, each with another upsampling (transposed convolution, nearest or bilinear
interpolation, pixel shuffle), depth and width, is trained for seconds each on the training faces;
`sbi.generated_blend` pastes a face redrawn by one of them back into the face, so the CNN meets many
generators' traces and the blending at once, never one generator's look.

Images are (H, W, 3) uint8 RGB. The bank is training data, not part of a detector: it is written beside
the run's checkpoint (`BANK_FILE`) so a resumed run redraws with the same simulators, and removed with the
checkpoint when the run ends.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import checkpoint

log = logging.getLogger(__name__)

UPSAMPLERS = ("transpose", "nearest", "bilinear", "shuffle")
BANK_FILE = "simulators.safetensors"
BANK_FORMAT = "doppel-detect-simulators/1"
PATCH = 64  # training patches (pixels a side)


@dataclass(frozen=True)
class SimConfig:
    up: str = "transpose"  # one of UPSAMPLERS
    levels: int = 2  # stride-2 downsamplings, and as many upsamplings
    width: int = 16  # channels after the first convolution (doubled a level, capped at 2x)


def _up(kind: str, cin: int, cout: int) -> nn.Module:
    if kind == "transpose":
        return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
    if kind == "shuffle":
        return nn.Sequential(nn.Conv2d(cin, 4 * cout, 3, padding=1), nn.PixelShuffle(2))
    if kind in ("nearest", "bilinear"):
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=kind), nn.Conv2d(cin, cout, 3, padding=1))
    raise ValueError(f"unknown upsampler {kind!r} (known: {', '.join(UPSAMPLERS)})")


class Simulator(nn.Module):
    """Encoder of stride-2 convolutions, decoder of `cfg.up` upsamplings; input and output in [0, 1].

    The decoder adds its output to the input shrunk by the encoder's stride and enlarged again (bilinear):
    from the first step the redraw has the face's colours and shape, and training only adds the detail
    that the decoder's upsampling can draw, with its traces (seconds, not minutes, give a usable face). It also
    keeps a redraw within a few grey levels of the face: too faint for the CNN to learn in 45 CPU-minutes
    (docs/detect.md, "Generated blends"); a coarser simulator is the next thing to try."""

    def __init__(self, cfg: SimConfig):
        super().__init__()
        self.cfg = cfg
        widths = [min(cfg.width * 2 ** i, 2 * cfg.width) for i in range(cfg.levels + 1)]
        enc: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1), nn.LeakyReLU(0.1)]
        for a, b in zip(widths, widths[1:]):
            enc += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.LeakyReLU(0.1)]
        dec: list[nn.Module] = []
        for a, b in zip(widths[::-1], widths[::-1][1:]):
            dec += [_up(cfg.up, a, b), nn.LeakyReLU(0.1)]
        dec += [nn.Conv2d(widths[0], 3, 3, padding=1)]
        self.net = nn.Sequential(*enc, *dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = 2 ** self.cfg.levels
        base = F.interpolate(F.avg_pool2d(x, f), scale_factor=f, mode="bilinear", align_corners=False)
        return (base + self.net(x)).clamp(0, 1)

    def redraw(self, image: np.ndarray) -> np.ndarray:
        """`image` through the autoencoder (edges padded to a multiple of its stride): same shape, uint8."""
        h, w = image.shape[:2]
        m = 2 ** self.cfg.levels
        pad = np.pad(image, ((0, -h % m), (0, -w % m), (0, 0)), mode="reflect")
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(pad)).permute(2, 0, 1)[None].float() / 255
            y = self(x)[0].permute(1, 2, 0).numpy()
        return np.clip(y[:h, :w] * 255 + 0.5, 0, 255).astype(np.uint8)


def configs(k: int, seed: int) -> list[SimConfig]:
    """k simulator shapes: the upsamplers in turn, depth 1-2 and width 8 or 16 drawn."""
    rng = np.random.default_rng(seed)
    return [SimConfig(UPSAMPLERS[i % len(UPSAMPLERS)], int(rng.integers(1, 3)), int(rng.choice([8, 16])))
            for i in range(k)]


def _patches(images: list[np.ndarray], n: int, rng: np.random.Generator) -> torch.Tensor:
    out = []
    for _ in range(n):
        img = images[int(rng.integers(len(images)))]
        y = int(rng.integers(img.shape[0] - PATCH + 1))
        x = int(rng.integers(img.shape[1] - PATCH + 1))
        out.append(img[y:y + PATCH, x:x + PATCH])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def train_bank(images: list[np.ndarray], k: int, seconds: float, seed: int = 0,
               batch: int = 16) -> tuple[list[Simulator], list[float]]:
    """k simulators (`configs`), each trained `seconds` on random patches of `images` (L1, Adam): the
    bank and each one's L1 on 64 fresh patches (0-1 scale), so a log can say how close their redraws are."""
    if not images or min(min(i.shape[:2]) for i in images) < PATCH:
        raise ValueError(f"train_bank: needs images of at least {PATCH} pixels a side")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    bank, errors = [], []
    held = _patches(images, 64, np.random.default_rng(seed + 1))
    for cfg in configs(k, seed):
        sim = Simulator(cfg)
        opt = torch.optim.Adam(sim.parameters(), lr=3e-3)
        end, steps = time.monotonic() + seconds, 0
        while time.monotonic() < end or steps < 20:
            x = _patches(images, batch, rng)
            loss = (sim(x) - x).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
        sim.eval()
        with torch.no_grad():
            errors.append(float((sim(held) - held).abs().mean()))
        log.info("simulator %s: %d steps, held-out L1 %.4f", cfg, steps, errors[-1])
        bank.append(sim)
    return bank, errors


def save_bank(bank: list[Simulator], path: str | Path) -> None:
    """The bank as one doppel file (checkpoint.write, BANK_FORMAT: fp32 tensors, the shapes as a "configs" section)."""
    tensors = {f"{i}.{k}": v for i, sim in enumerate(bank) for k, v in sim.state_dict().items()}
    checkpoint.write(path, BANK_FORMAT, tensors, configs=[asdict(s.cfg) for s in bank])


def load_bank(path: str | Path) -> list[Simulator]:
    """The bank `save_bank` wrote, each simulator in eval mode; a file of another kind is refused in one line."""
    tensors, header = checkpoint.load(path, BANK_FORMAT, what="simulator bank")
    bank = []
    for i, c in enumerate(header.sections["configs"]):
        sim = Simulator(SimConfig(**c))
        sim.load_state_dict({k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == str(i)})
        bank.append(sim.eval())
    return bank


_LOADED: dict[str, list[Simulator]] = {}


def bank_at(path: str) -> list[Simulator]:
    """The bank of `path`, loaded once a process (the batch workers each load it on first use)."""
    if path not in _LOADED:
        _LOADED[path] = load_bank(path)
    return _LOADED[path]
