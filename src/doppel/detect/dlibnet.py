"""dlib's face-recognition ResNet as a pretrained start for the face CNN (`detect train --cnn dlib`).

The face-recognition-models package ships `dlib_face_recognition_resnet_model_v1.dat` (Davis King, released
into the public domain): a 29-layer ResNet trained on about 3 million faces of 7,485 people (none of them
LFW's) to tell people apart. Its early and middle layers are face features learnt from far more faces than
doppel has; the detector starts from them instead of from noise. This module reads the weights out of dlib's own serialisation
(no dlib C++ tool, nothing downloaded) and builds the same net in PyTorch (`Backbone`); a test checks
that its descriptor equals dlib's `compute_face_descriptor` on real faces.

dlib's format, as far as this file needs it: integers are a byte whose low 4 bits give the count of
little-endian value bytes that follow (bit 7: negative); a tensor is a version integer, four shape
integers and raw float32s; a layer's details start with its length-prefixed name (`con_4`, `affine_`,
`fc_2`). Layers are written from the input up, in the order `Backbone` runs them.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DoppelError

FILE = "dlib_face_recognition_resnet_model_v1.dat"
MEAN_RGB = (122.782, 117.001, 104.298)  # dlib's input_rgb_image_sized subtracts these, then divides by 256
# (channels, blocks, first block halves the size) per level, from the input up (dlib's alevel4 .. alevel0)
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
CHIP = 150  # dlib's face chip side (get_face_chip(..., 150, 0.25)); about coverage 0.83 of doppel's alignment


def _int(buf: bytes, i: int) -> tuple[int, int]:
    head = buf[i]
    n = head & 0x0F
    v = int.from_bytes(buf[i + 1:i + 1 + n], "little")
    return (-v if head & 0x80 else v), i + 1 + n


def read_layers(path: str) -> list[tuple[str, np.ndarray, list[int]]]:
    """Every conv (`con_4`), affine (`affine_`) and fully connected (`fc_2`) layer of a dlib net file, from
    the input up: (name, its flat float32 parameters, for convs [filters, rows, cols, stride, stride,
    padding, padding])."""
    try:
        buf = Path(path).read_bytes()
    except OSError as e:
        raise DoppelError(f"cannot read dlib's face recognition model {path} ({e.strerror})") from None
    out = []
    for m in re.finditer(rb"(con_4|affine_|fc_2)", buf):
        name = m.group(1)
        if buf[m.start() - 1] != len(name):  # not a length-prefixed layer name (bytes inside the floats)
            continue
        i = m.end()
        if name == b"fc_2":  # num_outputs, num_inputs come before its parameters
            i = _int(buf, _int(buf, i)[1])[1]
        i = _int(buf, i)[1]  # tensor version
        shape = []
        for _ in range(4):
            v, i = _int(buf, i)
            shape.append(v)
        n = int(np.prod(shape))
        if i + 4 * n > len(buf):
            raise DoppelError(f"{path} is not a dlib face recognition model (a layer runs past the end)")
        w = np.frombuffer(buf, "<f4", n, i).copy()
        i += 4 * n
        geometry = []
        for _ in range(7 if name == b"con_4" else 0):
            v, i = _int(buf, i)
            geometry.append(v)
        out.append((name.decode(), w, geometry))
    return out


class Affine(nn.Module):
    """dlib's affine layer (a batch norm frozen into a per-channel scale and shift), kept learnable."""

    def __init__(self, c: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: tensors of different shapes are summed into the larger shape, the smaller one
    zero-padded (channels at the end, rows and columns at the bottom and right)."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:]))
    pad = lambda t: F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))  # noqa: E731
    return pad(a) + pad(b)


class Block(nn.Module):
    """dlib's ares / ares_down: conv-affine-relu-conv-affine, plus the input (2x2 average-pooled when the
    block halves the size; dlib's strided convs and pools have no padding), then relu."""

    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.down = down
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, 2 if down else 1, 0 if down else 1), Affine(cout),
                                  nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1), Affine(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(_add(self.body(x), F.avg_pool2d(x, 2, 2) if self.down else x))


class Input(nn.Module):
    """doppel's crop normalisation (detectors.to_tensor: (x / 255 - 0.5) / 0.25) turned into dlib's
    ((x - MEAN_RGB) / 256), so the pretrained first layer sees what it was trained on."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return ((t * 0.25 + 0.5) * 255.0 - self.mean) / 256.0


def layers(levels: int = len(LEVELS)) -> list[nn.Module]:
    """The net's modules up to and including the first `levels` of LEVELS (all five: dlib's whole
    backbone before its pooling and 128-d projection)."""
    out: list[nn.Module] = [Input(), nn.Conv2d(3, 32, 7, 2, 0), Affine(32), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2)]
    c = 32
    for width, blocks, down in LEVELS[:levels]:
        for j in range(blocks):
            out.append(Block(c, width, down and j == 0))
            c = width
    return out


def _assign(modules: list[nn.Module], params: list[tuple[str, np.ndarray, list[int]]]) -> None:
    """Copy dlib's parameters, in file order, into the convs and affines of `modules` (in run order)."""
    targets = [m for mod in modules for m in mod.modules() if isinstance(m, (nn.Conv2d, Affine))]
    if len(params) < len(targets):
        raise DoppelError(f"dlib's face recognition model does not have the expected layers ({len(params)} found)")
    for m, (name, w, geometry) in zip(targets, params):
        if isinstance(m, nn.Conv2d):
            nf, kh, kw, stride, _, pad, _ = geometry if name == "con_4" else [0] * 7
            if (nf, kh, kw, stride, pad) != (m.out_channels, *m.kernel_size, m.stride[0], m.padding[0]):
                raise DoppelError(f"dlib's face recognition model does not have the expected layers ({name} {geometry})")
            m.weight.data.copy_(torch.from_numpy(w[:-nf].reshape(m.weight.shape)))
            m.bias.data.copy_(torch.from_numpy(w[-nf:]))
        else:
            if name != "affine_" or w.size != 2 * m.weight.numel():
                raise DoppelError(f"dlib's face recognition model does not have the expected layers ({name})")
            m.weight.data.copy_(torch.from_numpy(w[:w.size // 2]))
            m.bias.data.copy_(torch.from_numpy(w[w.size // 2:]))


@lru_cache(maxsize=1)
def _params() -> tuple:
    from ..faces.finder import models_dir
    return tuple(read_layers(os.path.join(models_dir(), FILE)))


def load_into(modules: list[nn.Module]) -> None:
    """Fill `modules` (from `layers()`, any number of levels) with dlib's pretrained weights."""
    _assign(modules, list(_params()))


class Backbone(nn.Module):
    """dlib's whole face-recognition net: (N, 3, 150, 150) doppel-normalised crops -> (N, 128) descriptors
    (what dlib's compute_face_descriptor gives for a 150x150 chip)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*layers())
        load_into(list(self.features))
        fc = [w for name, w, _ in _params() if name == "fc_2"]
        if len(fc) != 1 or fc[0].size != 256 * 128:
            raise DoppelError("dlib's face recognition model does not have the expected layers (fc_2)")
        self.register_buffer("fc", torch.from_numpy(fc[0].reshape(256, 128)))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.features(t).mean((2, 3)) @ self.fc
