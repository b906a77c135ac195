"""The face finder's settings and flags, the names of the mask shapes and colour transfers, the aligned
crop sizes and the quality thresholds: light to import (no OpenCV or dlib), so every command's `--help`
and argument parsing stay fast. `faces.finder`, `faces.mask`, `faces.blend`, `faces.align` and
`faces.quality` re-export these names."""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields, replace

from ..errors import DoppelError

DETECTORS = ("hog", "cnn")
MASKS = ("rect", "ellipse", "hull", "learned")  # mask shapes: faces.mask.SHAPES, then the model's own mask
COLORS = ("none", "avg", "reinhard", "hist")  # colour transfers: the keys of faces.blend.COLOR, in order


@dataclass(frozen=True)
class MaskConfig:
    shape: str = "hull"  # rect, ellipse, hull, or learned (the model's own mask)
    erode: float = 0.0  # shrink (> 0) or grow (< 0) by this fraction of the face size
    feather: float = 0.05  # Gaussian edge, sigma as a fraction of the face size


@dataclass(frozen=True)
class DetectConfig:
    detector: str = "hog"  # hog (fast) or cnn (dlib MMOD, slower, better on hard poses): fast pass and deep-pass check
    detect_size: int = 640  # fast pass: frames are downscaled so the longer side is at most this
    min_face: int = 24  # deep pass looks for faces down to this 68-point box width (px); 0 = no deep pass
    turns: bool = True  # when nothing is found upright, also try the frame turned 90 degrees either way
    dark: float = 70.0  # frames whose mean grey (0-255) is under this are brightened first; 0 = never
    upsample: int = 0  # dlib pyramid upsampling on the downscaled frame of the fast pass
    redetect_every: int = 8  # run the finder every N frames (keyframes); landmarks track faces in between
    deep_every: int = 4  # every Nth keyframe runs the deep pass even when the fast pass found faces; 0 = never
    track_iou: float = 0.5  # a tracked box must overlap its previous box this much, else re-detect
    cut: float = 30.0  # mean change (0-255) of a tracked face's box since the last frame that forces the detector

    def record(self) -> dict:
        """The settings as a JSON-able dict, for face sets and reports."""
        return asdict(self)



def add_detect_arguments(parser: argparse.ArgumentParser, defaults: DetectConfig = DetectConfig()) -> None:
    """The face-finder flags, with the same names and meaning in every command."""
    g = parser.add_argument_group("face finder")
    g.add_argument("--detector", choices=DETECTORS, default=defaults.detector,
                   help="dlib HOG (fast) or MMOD CNN (slower, better on turned faces), for the fast pass and "
                        "the deep pass's check")
    g.add_argument("--detect-size", type=int, default=defaults.detect_size, metavar="PX",
                   help="fast pass: longer side (px) frames are shrunk to; finds faces wider than ~80 px at "
                        "that size")
    g.add_argument("--min-face", type=int, default=defaults.min_face, metavar="PX",
                   help="deep pass (when the fast pass finds nothing or only small faces): smallest face width "
                        "to look for; 0 turns the deep pass off")
    g.add_argument("--no-turns", dest="turns", action="store_false", default=argparse.SUPPRESS,
                   help="do not look for faces lying sideways when none is found upright")
    g.add_argument("--dark", type=float, default=defaults.dark, metavar="GREY",
                   help="brighten frames whose mean grey (0-255) is under this before finding faces; 0 = never")
    g.add_argument("--redetect-every", type=int, default=defaults.redetect_every, metavar="N",
                   help="run the face finder every N frames (keyframes) and track landmarks in between")
    g.add_argument("--deep-every", type=int, default=defaults.deep_every, metavar="N",
                   help="every Nth keyframe runs the deep pass even when faces were found (small faces "
                        "beside big ones); 0 = only when the fast pass finds none")


def detect_config(args: argparse.Namespace, **extra) -> DetectConfig:
    """DetectConfig from the flags of add_detect_arguments (plus `extra` fields); DoppelError on bad values."""
    values = {f.name: getattr(args, f.name) for f in fields(DetectConfig) if hasattr(args, f.name)}
    cfg = replace(DetectConfig(), **{**values, **extra})
    if cfg.detect_size < 32:
        raise DoppelError(f"--detect-size must be at least 32, got {cfg.detect_size}")
    if cfg.min_face < 0 or 0 < cfg.min_face < 12:
        raise DoppelError(f"--min-face must be 0 (off) or at least 12, got {cfg.min_face}")
    if cfg.deep_every < 0:
        raise DoppelError(f"--deep-every must be 0 or more, got {cfg.deep_every}")
    if cfg.redetect_every < 1:
        raise DoppelError(f"--redetect-every must be at least 1, got {cfg.redetect_every}")
    if not 0 <= cfg.dark <= 255:
        raise DoppelError(f"--dark must be between 0 and 255, got {cfg.dark}")
    return cfg


# aligned crops (faces.align re-exports these)
DEFAULT_SIZE = 64
SIZES = (64, 128, 256)
DEFAULT_COVERAGE = 0.8  # template box spans 80% of the crop side, leaving a margin for warps


@dataclass(frozen=True)
class QualityConfig:
    max_people: int = field(default=1, metadata={"help": "drop every face of a frame holding more faces than this (0: no limit)"})
    min_size: float = field(default=40.0, metadata={"help": "drop faces narrower than this many frame pixels (68-point box)"})
    min_sharpness: float = field(default=0.1, metadata={"help": "drop blurred faces: Laplacian/intensity variance ratio on the face at 64 px"})
    min_brightness: float = field(default=40.0, metadata={"help": "drop faces whose mean grey level (0-255) is below this"})
    max_brightness: float = field(default=220.0, metadata={"help": "drop faces whose mean grey level is above this"})
    min_contrast: float = field(default=10.0, metadata={"help": "drop faces whose grey-level standard deviation is below this"})
    max_tint: float = field(default=45.0, metadata={"help": "drop faces whose mean colour is this far from grey in Lab (a, b), skin is ~10-30"})
    max_fit: float = field(default=0.15, metadata={"help": "drop faces whose eyes/nose disagree with dlib's 5-point model by this x eye distance"})
    max_yaw: float = field(default=45.0, metadata={"help": "drop faces turned further left/right than this (degrees)"})
    max_pitch: float = field(default=35.0, metadata={"help": "drop faces tilted further up/down than this (degrees)"})
    max_identity: float = field(default=0.6, metadata={"help": "with a reference photo: drop faces whose dlib embedding is farther than this"})
    min_shape_distance: float = field(default=0.002, metadata={"help": "drop near-duplicates: aligned shapes closer than this (RMS, crop units)"})
    max_faces: int = field(default=0, metadata={"help": "keep only the N most varied faces in pose and expression (0: all)"})
