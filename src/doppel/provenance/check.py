"""Read all three provenance signals of a file: metadata label, pixel watermark, C2PA manifest.

A found signal is evidence that doppel (or another generator, for C2PA) made the file; a
missing one is no evidence of anything: labels and manifests are stripped by any
re-encode, and a mark can be weakened by heavy processing.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from .. import media
from . import watermark
from .label import read_label

log = logging.getLogger(__name__)

MAX_FRAMES = 300  # frames read for the watermark: enough to vote, bounded for long videos


def keys_to_try(key: str | None = None) -> list[str]:
    """The given key (or $DOPPEL_WATERMARK_KEY), then the default, without repeats."""
    return list(dict.fromkeys([watermark.key_from_env(key), watermark.DEFAULT_KEY]))


def chance(z: float) -> float:
    """Bound on the chance that an unmarked file shows a sync peak this high and the tag (union bound)."""
    q = 0.5 * math.erfc(z / math.sqrt(2))
    return min(1.0, watermark.TILE ** 2 * len(watermark.SCALES) * q * 2.0 ** -16)


class MarkReader:
    """The watermark of a video (or a folder of frames) read from frames handed over as they are decoded.

    `wanted(index)` says which frames to hand over (every step-th, so at most about MAX_FRAMES);
    `result()` gives what `read_mark` gives. `doppel detect` feeds it from its own decode.
    """

    def __init__(self, info: media.VideoInfo, key: str | None = None):
        self.keys = keys_to_try(key)
        self.step = max(1, math.ceil((info.frame_count or 1) / MAX_FRAMES))
        self.reader = watermark.FrameReader(self.keys)

    def wanted(self, index: int) -> bool:
        return index % self.step == 0

    def add(self, image) -> None:
        self.reader.add(image)

    def result(self) -> dict:
        return _mark_result([(k, video, per) for k, (video, per) in zip(self.keys, self.reader.readings())])


def _mark_result(readings: list) -> dict:
    """The first key's reading that found a mark, else the strongest; readings: [(key, video, per-frame)]."""
    best = None
    for k, video, per in readings:
        n = len(per) if per else 1
        out = {"found": video.found, "z": round(video.z, 2), "chance_if_unmarked": chance(video.z) if video.found else None,
               "payload": f"{video.payload:012x}" if video.found else None, "run_id": video.run_id,
               "key": "default" if k == watermark.DEFAULT_KEY else "given", "frames_read": n,
               "frames_marked": sum(r.found for r in per) if per else int(video.found)}
        if video.found:
            return out
        best = best if best and best["z"] >= out["z"] else out
    best["key"] = "tried " + " and ".join("default" if k == watermark.DEFAULT_KEY else "given" for k, _, _ in readings)
    return best


def read_mark(path: str | os.PathLike, key: str | None = None) -> dict:
    """The watermark of a video or image, tried with the given key (or $DOPPEL_WATERMARK_KEY) and the default."""
    path = Path(path)
    info = media.probe(path)
    if info.is_image and not path.is_dir():
        image = media.read_image(path)
        return _mark_result([(k, watermark.read_image(image, k), None) for k in keys_to_try(key)])
    reader = MarkReader(info, key)
    for f in media.iter_frames(path, reader.step):
        reader.add(f.image)
    return reader.result()


def read_manifest(path: str | os.PathLike) -> dict | None:
    if Path(path).is_dir():  # a folder of frames has no manifest of its own
        return None
    try:
        from . import c2pa
        return c2pa.read(path)
    except ImportError as e:
        return {"state": "unreadable", "errors": [f"c2pa-python not usable here: {e}"]}


def check(path: str | os.PathLike, key: str | None = None, mark: dict | None = None) -> dict:
    """Label, watermark and manifest of a file, plus `evidence`: the signals that say it is synthetic.

    `mark`: the watermark already read (MarkReader.result()), so the file is not decoded again."""
    lab = read_label(path)
    mark = mark if mark is not None else read_mark(path, key)
    manifest = read_manifest(path)
    evidence = []
    if lab:
        evidence.append("doppel synthetic label")
    if mark["found"]:
        evidence.append(f"doppel watermark (run {mark['run_id']}, z {mark['z']:.1f})")
    if manifest and manifest["state"] in ("valid", "trusted"):
        from .c2pa import synthetic
        if synthetic(manifest):
            evidence.append(f"C2PA manifest ({manifest['state']}): made by a trained algorithm")
    if lab and mark["found"] and lab.get("watermark", {}).get("run_id") not in (None, mark["run_id"]):
        log.warning("%s: label run id %s differs from the watermark's %s", path,
                    lab["watermark"]["run_id"], mark["run_id"])
    return {"label": lab, "watermark": mark, "c2pa": manifest, "evidence": evidence}


def lines(result: dict) -> list[str]:
    """The findings in plain words, one line per signal."""
    lab, mark, man = result["label"], result["watermark"], result["c2pa"]
    out = [f"label: {'doppel synthetic label, kind ' + str(lab.get('kind')) if lab else 'none (metadata is easily stripped; not evidence of a real file)'}"]
    if mark["found"]:
        out.append(f"watermark: found, payload {mark['payload']} (run {mark['run_id']}), sync z {mark['z']:.1f}, "
                   f"chance if unmarked < {mark['chance_if_unmarked']:.1e}, {mark['frames_marked']}/{mark['frames_read']} frames alone")
    else:
        out.append(f"watermark: none found (sync z {mark['z']:.1f} < {watermark.Z_MIN}; key {mark['key']}); "
                   "not evidence of a real file")
    if man is None:
        out.append("c2pa: no manifest")
    else:
        what = ", ".join(f"{a['action']}" + (f" ({a['digitalSourceType']})" if a.get("digitalSourceType") else "")
                         for a in man.get("actions", []))
        state = {"valid": "valid (signed and intact; signer not in a trust list)", "trusted": "valid and trusted",
                 "invalid": "INVALID: the file or its manifest was altered after signing"}.get(man["state"], man["state"])
        out.append(f"c2pa: {state}; signer {man.get('signer')}; {what or 'no actions'}"
                   + (f"; errors {', '.join(man['errors'][:4])}" if man.get("errors") and man["state"] == "invalid" else ""))
    return out
