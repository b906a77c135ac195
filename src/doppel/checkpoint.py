"""Training state on disk: safetensors tensors plus a JSON header, no pickle.

What every model kind's exact resume needs (the swap model, the face prior, the
GAN critics, the detector CNN): the optimizer's tensors and parameter groups,
the torch / numpy / Python RNG states, and a header naming the format, so a
file of another kind or a newer version is refused in one line naming both.
Writes are atomic: a crash leaves the previous file.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from . import media
from .errors import DoppelError


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    """The optimizer's per-parameter tensors ("opt.<param id>.<name>") and its parameter groups."""
    sd = opt.state_dict()
    tensors = {f"opt.{pid}.{k}": v.detach().cpu().contiguous()
               for pid, st in sd["state"].items() for k, v in st.items()}
    return tensors, sd["param_groups"]


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list) -> None:
    """Restore what optimizer_tensors saved (other keys of `tensors` are ignored)."""
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": groups})


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """The torch, numpy and Python global RNG states as (tensors, JSON-able metadata)."""
    np_state = np.random.get_state()
    tensors = {"rng.torch": torch.get_rng_state(), "rng.numpy": torch.from_numpy(np_state[1].astype(np.int64))}
    meta = {"numpy": [np_state[0], *map(float, np_state[2:])], "python": random.getstate()}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    name, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), int(pos), int(has_gauss), gauss))
    v, st, g = meta["python"]
    random.setstate((v, tuple(st), g))


def save_state(path: str | Path, fmt: str, tensors: dict[str, torch.Tensor], header: dict) -> None:
    """Write tensors with {"format": fmt, "header": JSON of `header`} atomically."""
    with media.atomic_path(Path(path)) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"format": fmt, "header": json.dumps(header)})


def read_header(path: str | Path, fmt: str) -> dict:
    """The header of a state file of format `fmt` ("name/version"); refused in one line when the file is
    missing, damaged, of another kind, or of a newer version than this doppel reads."""
    path = Path(path)
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for a damaged file
        raise DoppelError(f"not a readable doppel state file: {path} ({e})") from None
    found = meta.get("format", "")
    name, _, version = fmt.partition("/")
    fname, _, fversion = found.partition("/")
    if fname != name:
        raise DoppelError(f"{path} holds '{found or 'unknown'}', not '{fmt}'")
    if not fversion.isdigit() or int(fversion) > int(version):
        raise DoppelError(f"{path} is '{found}', newer than the '{fmt}' this doppel reads; update doppel")
    return json.loads(meta.get("header", "{}"))


def load_state(path: str | Path, fmt: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, header) of a state file written by save_state, checked as read_header checks it."""
    header = read_header(path, fmt)
    return load_file(str(path)), header
