"""The face-swap autoencoder: one shared encoder, one decoder per person.

Tensors are float32 (N, 3, S, S) RGB in [0, 1]; a decoder with `mask=True`
(the GAN variant, swap/gan.py) draws its colour through tanh (rescaled to
[0, 1]) and also returns a (N, 1, S, S) alpha mask through a sigmoid. A model file is a single
safetensors file whose metadata holds the config and facts about the training
data, so `load_model` rebuilds the model from the file alone (no pickle).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file, safe_open
from torch import nn

from .. import media
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
    """A model is a folder holding model.safetensors, or that file itself."""
    p = Path(path)
    return p / MODEL_FILE if p.is_dir() or p.suffix != ".safetensors" else p


def save_model(path: str | os.PathLike, model: SwapModel, info: dict | None = None) -> Path:
    """Write weights + config + info (JSON-able dict) to one safetensors file, atomically."""
    dest = model_path(path)
    meta = {"format": FORMAT, "config": json.dumps(asdict(model.cfg)), "info": json.dumps(info or {})}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with media.atomic_path(dest) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return dest


def read_header(path: str | os.PathLike) -> tuple[SwapConfig, dict]:
    """Config and info of a model file without loading its weights."""
    src = model_path(path)
    if not src.is_file():
        raise DoppelError(f"no swap model at {path} (expected {MODEL_FILE})")
    try:
        with safe_open(str(src), "pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for non-safetensors files
        raise DoppelError(f"not a doppel model: {src} ({e.__class__.__name__})") from None
    if meta.get("format") != FORMAT:
        raise DoppelError(f"not a doppel swap model: {src}")
    cfg = json.loads(meta["config"])
    cfg["enc_channels"], cfg["dec_channels"] = tuple(cfg["enc_channels"]), tuple(cfg["dec_channels"])
    return SwapConfig(**cfg), json.loads(meta.get("info", "{}"))


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[SwapModel, dict]:
    """Rebuild a model from its file; returns (model in eval mode, info dict)."""
    cfg, info = read_header(path)
    model = SwapModel(cfg)
    model.load_state_dict(load_file(str(model_path(path)), device=device))
    return model.to(device).eval(), info
