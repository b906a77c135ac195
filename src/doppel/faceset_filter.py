"""Filtering a face set as a whole: re-apply the quality thresholds to the stored scores, drop
near-duplicates and keep the most varied faces, and the set's identity embedding.

Used by the extract stage at the end of a run and by `doppel faceset refilter`; it moves crops
between faces/ and dropped/ so that an interruption leaves a JSON whose files all exist.
"""
from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .faces import quality
from .faces.quality import QualityConfig
from .faceset import FaceRecord, FaceSet

IDENTITY_FACES = 16  # meta["identity"] averages the embeddings of up to this many faces spread over the set


def rounded(a) -> list[float]:
    """An array as a flat list of floats rounded to 5 decimals (for the face set's JSON)."""
    return [round(float(v), 5) for v in np.asarray(a).ravel()]


def refilter(fs: FaceSet, cfg: QualityConfig, save: bool = True) -> Counter:
    """Re-apply every threshold to the stored scores and move crops between faces/ and dropped/.

    Per-face filters first, then near-duplicates and --max-faces over the faces
    still kept, in source and frame order. Returns the count of faces per reason.
    """
    records = sorted(fs.faces + fs.dropped, key=lambda r: (r.source, r.frame_index, r.file))
    reasons = [quality.drop_reason(r.scores, cfg) for r in records]
    alive = [i for i, why in enumerate(reasons) if not why]
    shapes = _shapes_of(records, alive, fs.size)
    duplicate = quality.near_duplicates(shapes, cfg.min_shape_distance)
    for i, dup in zip(alive, duplicate):
        reasons[i] = "duplicate" if dup else ""
    alive = [i for i in alive if not reasons[i]]
    if cfg.max_faces and len(alive) > cfg.max_faces:
        keep = set(quality.most_varied(shapes[~duplicate], cfg.max_faces).tolist())
        for k, i in enumerate(alive):
            if k not in keep:
                reasons[i] = "max-faces"
    _move(fs, records, reasons)
    if save:
        fs.save()
    return Counter(r.reason for r in fs.dropped)


def _shapes_of(records: list[FaceRecord], index: list[int], size: int) -> np.ndarray:
    return np.array([quality.aligned_shape(records[i].landmarks_array, records[i].matrix_array, size)
                     for i in index]).reshape(-1, 68, 2)


def _move(fs: FaceSet, records: list[FaceRecord], reasons: list[str]) -> None:
    """File each record under faces/ or dropped/ by its new reason (saving the JSON when a crop moved).

    New names are hard-linked (or copied) first, alignments.json is saved, and
    only then are the old names removed, so an interruption anywhere leaves a
    JSON whose files all exist.
    """
    stale = []
    for record, why in zip(records, reasons):
        folder = "dropped" if why else "faces"
        target = f"{folder}/{Path(record.file).name}"
        if target != record.file:
            (fs.root / folder).mkdir(exist_ok=True)
            _link(fs.root / record.file, fs.root / target)
            stale.append(fs.root / record.file)
            record.file = target
        record.reason = why
    fs.faces = [r for r in records if not r.reason]
    fs.dropped = [r for r in records if r.reason]
    if stale:
        fs.save()
    for path in stale:
        path.unlink(missing_ok=True)


def _link(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def spread(items: list, count: int) -> list:
    """Up to `count` items evenly spaced over the list (all of them when count <= 0)."""
    if count <= 0 or len(items) <= count:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def identity(fs: FaceSet, count: int = IDENTITY_FACES) -> list[float] | None:
    """Mean embedding of up to `count` faces spread over the set that passed the per-face filters."""
    good = [r for r in fs.faces + fs.dropped
            if r.embedding is not None and r.reason in ("",) + quality.SET_REASONS]
    if not good:
        return None
    good.sort(key=lambda r: (r.source, r.frame_index))
    return rounded(np.mean([r.embedding for r in spread(good, count)], axis=0))


def apply_filters(fs: FaceSet, cfg: QualityConfig) -> Counter:
    """Record `cfg` in the set, re-apply it to every face (refilter), refresh meta["identity"] and save;
    returns the count of dropped faces per reason."""
    fs.meta["quality"] = asdict(cfg)
    counts = refilter(fs, cfg, save=False)
    ident = identity(fs)
    if ident is not None:
        fs.meta["identity"] = ident
    fs.save()
    return counts
