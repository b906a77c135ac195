"""Model and training-state files: safetensors tensors plus a typed JSON header, no pickle.

Every model kind (the swap model and its face prior, the GAN critics, the lip-sync
model, the detector CNN) writes one layout through `write` and reads it back
through `read` / `load`:

    tensors (safetensors)      weights; optimizer and RNG tensors for exact resume
    metadata "format"          "<kind>/<version>", e.g. "doppel-swap/1"
    metadata "config"          the kind's config dataclass as JSON
    metadata "info"            free-form provenance: data, command, steps, figures
    metadata <section>         any other JSON the kind needs (optimizer groups, RNG, step)

`read` returns a `Header` (kind, version, the config rebuilt as its dataclass,
info, sections) and refuses in one line naming both a file of another kind or a
newer version than this doppel reads. Writes are atomic: a crash leaves the
previous file. The helpers below save and restore optimizer and RNG states.
"""
from __future__ import annotations

import dataclasses
import json
import random
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from . import media
from .errors import DoppelError


@dataclass(frozen=True)
class Header:
    """What a doppel model or state file says about itself."""
    kind: str  # e.g. "doppel-swap"
    version: int  # of the file layout this kind wrote
    config: Any = None  # the kind's config dataclass (a dict when read without its type; None when absent)
    info: dict = field(default_factory=dict)  # free-form provenance: data, command, steps, figures
    sections: dict = field(default_factory=dict)  # every other JSON entry, by name

    @property
    def format(self) -> str:
        return f"{self.kind}/{self.version}"


def write(path: str | Path, fmt: str, tensors: dict[str, torch.Tensor], config: Any = None,
          info: dict | None = None, **sections: Any) -> Path:
    """Write `tensors` with the header (format, config dataclass or dict, info, JSON sections) atomically."""
    meta = {"format": fmt}
    if config is not None:
        meta["config"] = json.dumps(dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config)
    meta["info"] = json.dumps(info or {})
    meta.update({k: json.dumps(v) for k, v in sections.items()})
    path = Path(path)
    with media.atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    return path


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:  # a plain string written by an older doppel
        return text


def read(path: str | Path, fmt: str, config_type: type | None = None, what: str = "doppel file") -> Header:
    """The header of a file of format `fmt` ("kind/version") without loading its tensors.

    Refused in one line (DoppelError) when the file is missing, damaged, of another kind, of a newer
    version than `fmt`, or its config does not fit `config_type`. `what` names the file in messages.
    """
    path = Path(path)
    if not path.is_file():
        raise DoppelError(f"no {what} at {path}")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for a damaged file
        raise DoppelError(f"not a readable {what}: {path} ({e.__class__.__name__})") from None
    fkind, fversion = check_format(meta.get("format", ""), fmt, path, what)
    config = _json(meta["config"]) if "config" in meta else None
    if config is not None and config_type is not None:
        config = config_from(config_type, config, path)
    sections = {k: _json(v) for k, v in meta.items() if k not in ("format", "config", "info")}
    return Header(fkind, fversion, config, _json(meta.get("info", "{}")) or {}, sections)


def check_format(found: str, fmt: str, path: str | Path, what: str = "doppel file") -> tuple[str, int]:
    """(kind, version) of a file whose format entry is `found`, readable as `fmt`; refused in one line naming
    both when it is another kind or a newer version."""
    kind, _, version = fmt.partition("/")
    fkind, _, fversion = str(found).partition("/")
    if fkind != kind:
        raise DoppelError(f"{path} holds '{found or 'unknown'}', not '{fmt}' (not a {what})")
    if not fversion.isdigit() or int(fversion) > int(version):
        raise DoppelError(f"{path} is '{found}', newer than the '{fmt}' this doppel reads; update doppel")
    return fkind, int(fversion)


def load(path: str | Path, fmt: str, config_type: type | None = None, what: str = "doppel file",
         device: str = "cpu") -> tuple[dict[str, torch.Tensor], Header]:
    """(tensors, header) of a file written by `write`, checked as `read` checks it."""
    header = read(path, fmt, config_type, what)
    return load_file(str(path), device=device), header


def config_from(cls: type, values: dict, path: str | Path = "") -> Any:
    """The dataclass `cls` from its JSON dict (lists back to tuples where the field is a tuple); a
    config that does not fit (unknown or missing fields) is refused in one line."""
    hints = typing.get_type_hints(cls)
    try:
        kwargs = {k: tuple(v) if isinstance(v, list) and "tuple" in str(hints.get(k, "")) else v
                  for k, v in values.items()}
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise DoppelError(f"{path}: its {cls.__name__} does not fit this doppel ({e})") from None


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    """The optimizer's per-parameter tensors ("opt.<param id>.<name>") and its parameter groups."""
    return state_dict_tensors(opt.state_dict())


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list) -> None:
    """Restore what optimizer_tensors saved (other keys of `tensors` are ignored)."""
    opt.load_state_dict(state_dict_from(tensors, groups))


def state_dict_tensors(sd: dict) -> tuple[dict[str, torch.Tensor], list]:
    """An optimizer state_dict as ("opt.<param id>.<name>" tensors, parameter groups), for `write`."""
    tensors = {f"opt.{pid}.{k}": torch.as_tensor(v).detach().cpu().contiguous()
               for pid, st in sd["state"].items() for k, v in st.items()}
    return tensors, sd["param_groups"]


def state_dict_from(tensors: dict[str, torch.Tensor], groups: list) -> dict:
    """The optimizer state_dict that state_dict_tensors split (other keys of `tensors` are ignored)."""
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    return {"state": state, "param_groups": groups}


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
    """Write tensors with `header` (a JSON dict) as the file's info, atomically (see `write`)."""
    write(path, fmt, tensors, info=header)


def read_header(path: str | Path, fmt: str) -> dict:
    """The info of a state file written by save_state, checked as `read` checks it."""
    return _state_info(read(path, fmt, what="doppel state file"))


def _state_info(header: Header) -> dict:
    return header.info or header.sections.get("header", {})  # "header": the layout before `write`


def load_state(path: str | Path, fmt: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, info) of a state file written by save_state, checked as `read` checks it."""
    tensors, header = load(path, fmt, what="doppel state file")
    return tensors, _state_info(header)
