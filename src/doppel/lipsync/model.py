"""Audio-to-mouth network: a unidirectional LSTM with a time delay, and its checkpoint.

At feature frame t the network has heard audio up to t and outputs the mouth
shape of frame t - delay: the delay (200 ms by default) lets it hear a little
of what follows a sound, as the paper found necessary, without a bidirectional
net. A checkpoint is one safetensors file: weights, the PCA that turns
coefficients back into landmarks, and for resuming the Adam state and RNG
states; configs and counters live in its JSON metadata.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import checkpoint
from ..errors import DoppelError
from ..torchutil import torch_threads as _torch_threads
from .config import LipConfig  # noqa: F401 (re-exported)
from .shapes import MouthPCA

FORMAT = "doppel-lipsync/2"  # 2: the training record in "info" (1 kept it in "train")
BUNDLED = Path(__file__).parent / "weights"  # models shipped in the package, named by stem (-m grid_s1)
THREADS = 1  # torch CPU threads for the LSTM: its small sequential matmuls stall for seconds in
# OpenMP barriers when the cores are shared (measured here: 15 ms a step on 1 thread, 4-12 s on 2)


def torch_threads(n: int = THREADS):
    """Run a block with n torch CPU threads (one by default here), restoring the count after."""
    return _torch_threads(n)


class LipLSTM(nn.Module):
    """(B, T, n_features) float32 standardised features -> (B, T, n_coeffs) scaled PCA coefficients."""

    def __init__(self, cfg: LipConfig):
        super().__init__()
        self.cfg = cfg
        self.lstm = nn.LSTM(cfg.n_features, cfg.hidden, cfg.layers, batch_first=True)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, cfg.n_coeffs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)
        return self.head(self.drop(h))


@torch.no_grad()
def predict(model: LipLSTM, feats: np.ndarray) -> np.ndarray:
    """Mouth coefficients (T, K) aligned with features (T, F): pads `delay` zero frames, drops the lag."""
    d = model.cfg.delay
    x = np.concatenate([feats, np.zeros((d, feats.shape[1]), np.float32)])
    model.eval()
    with torch_threads():
        y = model(torch.from_numpy(x[None]).float())[0].numpy()
    return y[d:]


@dataclass
class Checkpoint:
    model: LipLSTM
    pca: MouthPCA
    step: int = 0  # optimizer steps taken
    meta: dict | None = None  # training config, clips, losses, RNG state
    optimizer_state: dict | None = None  # torch.optim state_dict, for resuming
    texture: dict | None = None  # autoencoder mouth texture: {"state": state_dict, "info": json-able dict}


def save(path: str | os.PathLike, ck: Checkpoint, keep_rng: bool = True) -> None:
    """Write a checkpoint atomically (a crash leaves the previous file intact), in doppel.checkpoint's layout:
    config LipConfig, info the training record (ck.meta), sections step, pca_scale, param_groups, texture."""
    tensors = {f"model.{k}": v for k, v in ck.model.state_dict().items()}
    tensors["pca.mean"] = torch.from_numpy(ck.pca.mean.copy())
    tensors["pca.components"] = torch.from_numpy(ck.pca.components.copy())
    groups = None
    if ck.optimizer_state is not None:
        opt_t, groups = checkpoint.state_dict_tensors(ck.optimizer_state)
        tensors.update(opt_t)
    if keep_rng:
        tensors["rng.torch"] = torch.get_rng_state()
    sections = {"step": int(ck.step), "pca_scale": float(ck.pca.scale), "param_groups": groups}
    if ck.texture is not None:
        tensors.update({f"tex.{k}": v for k, v in ck.texture["state"].items()})
        sections["texture"] = ck.texture["info"]
    info = {k: v for k, v in (ck.meta or {}).items() if not k.startswith("_")}
    checkpoint.write(path, FORMAT, tensors, ck.model.cfg, info, **sections)


def load(path: str | os.PathLike) -> Checkpoint:
    """Rebuild model, PCA and training state from a checkpoint file alone."""
    tensors, h = checkpoint.load(resolve(path), FORMAT, LipConfig, what="doppel lip-sync model")
    model = LipLSTM(h.config)
    model.load_state_dict({k[6:]: v.float() for k, v in tensors.items() if k.startswith("model.")})
    pca = MouthPCA(tensors["pca.mean"].numpy(), tensors["pca.components"].numpy(), float(h.sections["pca_scale"]))
    groups = h.sections.get("param_groups")
    opt = None if groups is None else checkpoint.state_dict_from(tensors, groups)
    train = dict(h.info or h.sections.get("train") or {})  # "train": where version 1 kept the record
    if "rng.torch" in tensors:
        train["_torch_rng"] = tensors["rng.torch"]
    tex = None
    if "texture" in h.sections:
        tex = {"state": {k[4:]: v.float() for k, v in tensors.items() if k.startswith("tex.")},
               "info": h.sections["texture"]}
    return Checkpoint(model, pca, int(h.sections.get("step", 0)), train, opt, tex)


def resolve(path: str | os.PathLike) -> Path:
    """A model file, or the bundled model of that name (see BUNDLED); DoppelError when neither exists."""
    p = Path(path)
    if p.is_file():
        return p
    bundled = BUNDLED / f"{p.name}.lip"
    if p.parent == Path(".") and bundled.is_file():
        return bundled
    names = ", ".join(sorted(f.stem for f in BUNDLED.glob("*.lip"))) or "none"
    raise DoppelError(f"no such lip-sync model: {p} (bundled models: {names})")


def export(src: str | os.PathLike, dst: str | os.PathLike, half: bool = True) -> None:
    """Copy a model for shipping: no optimizer or RNG state, weights in float16 when `half`."""
    ck = load(src)
    ck.optimizer_state = None
    ck.meta = {k: v for k, v in (ck.meta or {}).items() if k not in ("rng",) and not k.startswith("_")}
    if half:
        ck.model.half()
        if ck.texture is not None:
            ck.texture["state"] = {k: v.half() for k, v in ck.texture["state"].items()}
    save(dst, ck, keep_rng=False)
