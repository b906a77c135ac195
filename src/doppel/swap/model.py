"""The face-swap autoencoder: one shared encoder, one decoder per person.

Tensors are float32 (N, 3, S, S) RGB in [0, 1]; a decoder with `mask=True`
(the GAN variant, swap/gan.py) draws its colour through tanh (rescaled to
[0, 1]) and also returns a (N, 1, S, S) alpha mask through a sigmoid. A model file is a single
safetensors file in doppel.checkpoint's layout: weights, the SwapConfig and
what training recorded (`info`; `ModelFacts` is the part `doppel swap` relies
on), so `load_model` rebuilds the model from the file alone (no pickle).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import checkpoint
from ..errors import DoppelError
from .config import PEOPLE, PRESETS, SwapConfig  # noqa: F401 (re-exported)

MODEL_FILE = "model.safetensors"
FORMAT = "doppel-swap/1"


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 5, stride, 2), nn.LeakyReLU(0.1, inplace=True))


class Upscale(nn.Sequential):
    """3x3 convolution to 4x the channels, then pixel shuffle: (C, H, W) -> (cout, 2H, 2W)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout * 4, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True), nn.PixelShuffle(2))


class Encoder(nn.Module):
    def __init__(self, cfg: SwapConfig):
        super().__init__()
        chans = (3, *cfg.enc_channels)
        self.convs = nn.Sequential(*[conv(chans[i], chans[i + 1], 2) for i in range(5)])
        self.side = cfg.size // 32
        self.dense1 = nn.Linear(cfg.enc_channels[-1] * self.side ** 2, cfg.latent)
        self.dense2 = nn.Linear(cfg.latent, cfg.bottleneck * self.side ** 2)
        self.bottleneck = cfg.bottleneck
        self.up = Upscale(cfg.bottleneck, cfg.up_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x).flatten(1)
        h = self.dense2(self.dense1(h))
        return self.up(h.view(-1, self.bottleneck, self.side, self.side))


class Decoder(nn.Module):
    def __init__(self, cfg: SwapConfig):
        super().__init__()
        chans = (cfg.up_channels, *cfg.dec_channels)
        self.ups = nn.Sequential(*[Upscale(chans[i], chans[i + 1]) for i in range(4)])
        self.mask = cfg.mask
        self.out = nn.Conv2d(chans[-1], 4 if cfg.mask else 3, 5, 1, 2)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        y = self.out(self.ups(z))
        if not self.mask:
            return torch.sigmoid(y), None
        return (torch.tanh(y[:, :3]) + 1) / 2, torch.sigmoid(y[:, 3:])


class SwapModel(nn.Module):
    def __init__(self, cfg: SwapConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoders = nn.ModuleDict({p: Decoder(cfg) for p in PEOPLE})

    def forward(self, x: torch.Tensor, who: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encode faces x (N, 3, S, S) in [0, 1] and draw them with person `who`'s decoder."""
        if x.ndim != 4 or x.shape[1:] != (3, self.cfg.size, self.cfg.size):
            raise ValueError(f"expected (N, 3, {self.cfg.size}, {self.cfg.size}) faces, got {tuple(x.shape)}")
        return self.decoders[who](self.encoder(x))

    @torch.no_grad()
    def convert(self, x: torch.Tensor, to: str = "b") -> tuple[torch.Tensor, torch.Tensor | None]:
        """Inference: faces of the other person drawn as `to`."""
        return self(x, to)


def build(preset: str = "lite", **overrides) -> SwapModel:
    if preset not in PRESETS:
        raise DoppelError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    cfg = PRESETS[preset]
    if overrides:
        cfg = SwapConfig(**{**asdict(cfg), **overrides})
    return SwapModel(cfg)


def model_path(path: str | os.PathLike) -> Path:
    """A model is a folder holding model.safetensors, or a file itself (then read, and refused if another kind)."""
    p = Path(path)
    return p if not p.is_dir() and (p.is_file() or p.suffix == ".safetensors") else p / MODEL_FILE


def save_model(path: str | os.PathLike, model: SwapModel, info: dict | None = None) -> Path:
    """Write weights + config + info (JSON-able dict, what training recorded) to one file, atomically."""
    state = {k: v.detach() for k, v in model.state_dict().items()}
    return checkpoint.write(model_path(path), FORMAT, state, model.cfg, info)


def read_header(path: str | os.PathLike) -> checkpoint.Header:
    """The file's header (config as a SwapConfig, info) without loading its weights."""
    return checkpoint.read(model_path(path), FORMAT, SwapConfig, what="doppel swap model")


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[SwapModel, checkpoint.Header]:
    """Rebuild a model from its file (the header read once); returns (model in eval mode, header)."""
    state, header = checkpoint.load(model_path(path), FORMAT, SwapConfig, "doppel swap model", device)
    model = SwapModel(header.config)
    model.load_state_dict(state)
    return model.to(device).eval(), header


@dataclass(frozen=True)
class ModelFacts:
    """What training recorded about the faces a model learnt from, and `doppel swap` relies on."""
    coverage: float  # share of the crop the faces' landmark box covered (how to cut a face for the model)
    identity_a: tuple[float, ...] | None  # A's mean face embedding (128-D): which face in a video is A
    step: int | None  # training steps taken

    @classmethod
    def of(cls, header: checkpoint.Header, path: str | os.PathLike = "") -> "ModelFacts":
        """The facts in a model's header; DoppelError in one line when they are missing or inconsistent."""
        info = header.info
        if "coverage" not in info:
            raise DoppelError(f"{path}: the model does not record the face coverage it was trained on "
                              "(not written by `doppel train`)")
        if info.get("size") not in (None, header.config.size):
            raise DoppelError(f"model crop size mismatch: its config says {header.config.size}, its data {info['size']}")
        ident = info.get("identity_a")
        if ident is not None:
            vec = np.asarray(ident, np.float32).reshape(-1)
            if vec.shape != (128,):
                raise DoppelError(f"model identity_a must be a 128-D embedding, got {vec.shape}")
            ident = tuple(float(v) for v in vec)
        step = info.get("step")
        return cls(float(info["coverage"]), ident, None if step is None else int(step))
