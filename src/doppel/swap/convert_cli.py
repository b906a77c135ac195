"""Arguments of `doppel swap`; dispatch only.

Imports only settings: the converter (torch, dlib) loads in `run`, so `doppel swap --help`
starts fast. swap.convert re-exports these names.
"""
from __future__ import annotations

import argparse

from ..errors import DoppelError
from ..faces.options import add_detect_arguments, detect_config
from .config import PEOPLE
from .convert_config import COLOR, MASKS, MaskConfig, SwapSettings


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = SwapSettings()
    p.add_argument("input", help="video (.mp4 etc.) or photo of person A")
    p.add_argument("-m", "--model", required=True, help="swap model folder (or its model.safetensors)")
    p.add_argument("-o", "--output", required=True, help="output .mp4 for a video, .png/.jpg for a photo")
    p.add_argument("--to", default=d.to, choices=PEOPLE, help="decoder that draws the new face")
    p.add_argument("--mask", default=d.mask.shape, choices=MASKS, help="mask shape")
    p.add_argument("--erode", type=float, default=d.mask.erode, help="shrink (>0) or grow (<0) the mask, fraction of face size")
    p.add_argument("--feather", type=float, default=d.mask.feather, help="Gaussian edge, fraction of face size")
    p.add_argument("--color", default=d.color, choices=list(COLOR), help="colour/tone matching")
    p.add_argument("--color-smooth", type=float, default=d.color_smooth, help="EMA weight of a new frame's colour statistics (1 = none)")
    p.add_argument("--seamless", action="store_true", help="Poisson (seamless) cloning before blending")
    p.add_argument("--sharpen", type=float, default=d.sharpen, help="unsharp-mask amount on the new face")
    p.add_argument("--batch", type=int, default=d.batch, help="frames per model batch")
    p.add_argument("--max-gap", type=int, default=d.max_gap, help="longest run of frames to interpolate")
    p.add_argument("--jump", type=float, default=d.jump, help="landmark jump (fraction of face size) that rejects a frame")
    p.add_argument("--cut", type=float, default=d.detect.cut, help="face-region change (0-255) that forces a fresh detection")
    p.add_argument("--smooth", type=float, default=d.smooth, help="landmark smoothing sigma in frames (0 = off)")
    p.add_argument("--match-distance", type=float, default=d.match_distance, help="max embedding distance to A")
    p.add_argument("--max-frames", type=int, default=None, help="only the first N frames")
    p.add_argument("--preview", default=None, help="write a PNG strip (input | swapped) of a few frames")
    p.add_argument("--crf", type=int, default=d.crf, help="H.264 quality (lower is better)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads for the model")
    p.add_argument("--cache-mb", type=int, default=d.cache_mb, help="keep decoded frames in memory up to this size")
    add_detect_arguments(p, d.detect)


def settings_from_args(args: argparse.Namespace) -> SwapSettings:
    for name in ("batch", "max_gap"):
        if getattr(args, name) < (1 if name == "batch" else 0):
            raise DoppelError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.max_frames is not None and args.max_frames < 1:
        raise DoppelError(f"--max-frames must be >= 1, got {args.max_frames}")
    return SwapSettings(
        to=args.to, mask=MaskConfig(args.mask, args.erode, args.feather), color=args.color,
        color_smooth=args.color_smooth, seamless=args.seamless, sharpen=args.sharpen, batch=args.batch,
        max_gap=args.max_gap, jump=args.jump, smooth=args.smooth, match_distance=args.match_distance,
        max_frames=args.max_frames, preview=args.preview, crf=args.crf, threads=max(1, args.threads), cache_mb=max(0, args.cache_mb),
        detect=detect_config(args, cut=args.cut))


def run(args: argparse.Namespace) -> int:
    from .convert import swap

    s = swap(args.input, args.model, args.output, settings_from_args(args))
    print(f"{s.output}: {s.frames} frames, {s.swapped} swapped ({s.interpolated} interpolated), "
          f"{s.passed_through} passed through ({s.rejected} rejected jumps, {s.frames_no_face} with no face found), "
          f"{s.faces_skipped} other faces left, "
          f"A picked by {s.identity}, {s.fps} fps")
    return 0
