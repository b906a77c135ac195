"""The on-disk face set: aligned crops plus one alignments file.

    FACESET/faces/000000.png      kept crops (RGB PNG, size x size)
    FACESET/dropped/000000.png    crops dropped by a quality filter (for the contact sheet)
    FACESET/alignments.json       {"format", "size", "coverage", "faces": [record...], "dropped": [record...]}

A record (FaceRecord) is the one description of a face that travels through
every stage: where it came from, its box, 68 landmarks in frame pixels, the
2x3 frame->crop matrix and quality scores. alignments.json is rewritten
atomically, so an interrupted run leaves the last consistent state; crops not
named in it are ignored (and overwritten by the next run).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from . import media
from .errors import DoppelError

FORMAT = "doppel-faceset/1"
ALIGNMENTS = "alignments.json"


@dataclass
class FaceRecord:
    source: str  # media file the face came from
    frame_index: int  # 0-based frame number in the source
    timestamp: float  # seconds
    box: list[float]  # x0, y0, x1, y1 in frame pixels
    landmarks: list[list[float]]  # 68 x (x, y) in frame pixels
    matrix: list[list[float]]  # 2x3 frame -> crop
    scores: dict[str, float] = field(default_factory=dict)  # quality measures, by filter name
    file: str = ""  # crop path relative to the face set folder
    reason: str = ""  # why it was dropped ("" when kept)
    embedding: list[float] | None = None  # dlib 128-D descriptor when computed

    @property
    def landmarks_array(self) -> np.ndarray:
        return np.asarray(self.landmarks, np.float64)

    @property
    def matrix_array(self) -> np.ndarray:
        return np.asarray(self.matrix, np.float64)

    def to_json(self) -> dict:
        # A shallow copy: the fields are already JSON types, and asdict's deep copy
        # made saving a few thousand records take seconds.
        return dict(vars(self))

    @classmethod
    def from_json(cls, d: dict) -> "FaceRecord":
        return cls(**d)


class FaceSet:
    """A face set folder. Create with FaceSet.create, open with FaceSet.open."""

    def __init__(self, root: Path, size: int, coverage: float, faces: list[FaceRecord],
                 dropped: list[FaceRecord], meta: dict | None = None):
        self.root = Path(root)
        self.size = size
        self.coverage = coverage
        self.faces = faces
        self.dropped = dropped
        self.meta = meta or {}

    @classmethod
    def open(cls, root: str | os.PathLike) -> "FaceSet":
        root = Path(root)
        path = root / ALIGNMENTS
        if not path.is_file():
            raise DoppelError(f"not a face set (no {ALIGNMENTS}): {root}")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DoppelError(f"corrupt {path}: {e}") from None
        if d.get("format") != FORMAT:
            raise DoppelError(f"not a doppel face set ({path} has format {d.get('format')!r})")
        return cls(root, int(d["size"]), float(d["coverage"]),
                   [FaceRecord.from_json(r) for r in d.get("faces", [])],
                   [FaceRecord.from_json(r) for r in d.get("dropped", [])], d.get("meta", {}))

    @classmethod
    def create(cls, root: str | os.PathLike, size: int, coverage: float) -> "FaceSet":
        """Open an existing face set of the same size/coverage for extending, or start a new one."""
        root = Path(root)
        if (root / ALIGNMENTS).exists():
            fs = cls.open(root)
            if fs.size != size or abs(fs.coverage - coverage) > 1e-6:
                raise DoppelError(f"{root} holds a face set of size {fs.size}, coverage {fs.coverage}; "
                                  f"asked for size {size}, coverage {coverage}")
            return fs
        if root.exists() and any(root.iterdir()):
            raise DoppelError(f"output folder is not empty and is not a face set: {root}")
        return cls(root, size, coverage, [], [])

    def _next_name(self, folder: str) -> str:
        used = {r.file for r in self.faces + self.dropped}
        n = len(self.faces) + len(self.dropped)
        while f"{folder}/{n:06d}.png" in used:
            n += 1
        return f"{folder}/{n:06d}.png"

    def add(self, record: FaceRecord, crop: np.ndarray) -> FaceRecord:
        """Write the crop and append the record (to `dropped` when record.reason is set)."""
        if crop.shape != (self.size, self.size, 3):
            raise ValueError(f"crop must be ({self.size}, {self.size}, 3), got {crop.shape}")
        folder = "dropped" if record.reason else "faces"
        record.file = self._next_name(folder)
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        # Written in place, not through a temporary name: alignments.json names a crop only
        # after this returns, and a crop it does not name is ignored, so a torn write is
        # harmless, and the temporary file cost ~2 ms a face.
        if not cv2.imwrite(str(self.root / record.file), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)):
            raise media.MediaError(f"could not write {self.root / record.file}")
        (self.dropped if record.reason else self.faces).append(record)
        return record

    def save(self) -> None:
        """Rewrite alignments.json atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        d = {"format": FORMAT, "size": self.size, "coverage": self.coverage, "meta": self.meta,
             "faces": [r.to_json() for r in self.faces], "dropped": [r.to_json() for r in self.dropped]}
        with media.atomic_path(self.root / ALIGNMENTS) as tmp:
            tmp.write_text(json.dumps(d))

    def load_crop(self, record: FaceRecord) -> np.ndarray:
        return media.read_image(self.root / record.file)

    def iter_crops(self) -> Iterator[tuple[FaceRecord, np.ndarray]]:
        for r in self.faces:
            yield r, self.load_crop(r)

    def __len__(self) -> int:
        return len(self.faces)
