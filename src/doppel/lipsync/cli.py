"""Arguments of `doppel lipsync` and `doppel lipsync train`; dispatch only.

`doppel lipsync VIDEO AUDIO -m LIPMODEL -o OUTPUT` synthesizes;
`doppel lipsync train VIDEO... -o LIPMODEL` learns the audio-to-mouth model.
The first positional decides which, so both share one parser (a nested
subparser would force a sub-command word on the synthesis form).
"""
from __future__ import annotations

import argparse
import logging

from ..errors import DoppelError
from ..faces import detect
from . import model, synth, train
from .texture import TEXTURES, TextureConfig

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.usage = ("doppel lipsync VIDEO AUDIO -m LIPMODEL -o OUTPUT [options]\n"
               "       doppel lipsync train VIDEO [VIDEO ...] -o LIPMODEL [--steps N] [--minutes M]")
    p.add_argument("inputs", nargs="+", metavar="VIDEO AUDIO | train VIDEO...",
                   help="target video and speech audio (any audio or video file); or 'train' and speaker videos")
    p.add_argument("-o", "--output", required=True, help="output video (synthesis) or LIPMODEL file (train)")
    s = p.add_argument_group("synthesis")
    s.add_argument("-m", "--model", help="LIPMODEL made by 'doppel lipsync train'")
    s.add_argument("--texture", choices=list(TEXTURES), default="median",
                   help="mouth texture: weighted median of nearest target frames, or a decoder trained on them")
    s.add_argument("--candidates", type=int, default=TextureConfig.candidates, help="frames per median")
    s.add_argument("--retime", action="store_true", help="slow the target's playback in silences (head rests)")
    s.add_argument("--preview", metavar="PNG", help="also write a strip of frames with mouth landmarks drawn")
    s.add_argument("--crf", type=int, default=18, help="H.264 quality (lower is better)")
    detect.add_detect_arguments(p)
    t = p.add_argument_group("train")
    t.add_argument("--steps", type=int, default=train.TrainConfig.steps, help="optimizer steps in all")
    t.add_argument("--minutes", type=float, default=train.TrainConfig.minutes, help="time budget of this run")
    t.add_argument("--hidden", type=int, default=model.LipConfig.hidden, help="LSTM units")
    t.add_argument("--delay", type=int, default=model.LipConfig.delay, help="output delay, 10 ms frames")
    t.add_argument("--fresh", action="store_true", help="start over instead of resuming an existing LIPMODEL")


def run(args: argparse.Namespace) -> int:
    if args.inputs[0] == "train":
        return _train(args)
    if len(args.inputs) != 2:
        raise DoppelError(f"expected VIDEO AUDIO (or 'train VIDEO...'), got {len(args.inputs)} inputs")
    if args.candidates < 1:
        raise DoppelError(f"--candidates must be at least 1, got {args.candidates}")
    if not args.model:
        raise DoppelError("give the lip-sync model with -m LIPMODEL (made by 'doppel lipsync train')")
    cfg = synth.LipsyncConfig(texture=args.texture, retime=args.retime, crf=args.crf,
                              tex=TextureConfig(candidates=args.candidates), detect=detect.detect_config(args))
    r = synth.lipsync(args.inputs[0], args.inputs[1], args.model, args.output, cfg, args.preview)
    log.info("wrote %s: %d frames, %.1f s, %.2f s of video per s of compute",
             args.output, r["frames"], r["seconds"], r["speed"])
    return 0


def _train(args: argparse.Namespace) -> int:
    videos = args.inputs[1:]
    if args.steps < 1 or args.minutes <= 0:
        raise DoppelError("--steps must be at least 1 and --minutes positive")
    cfg = train.TrainConfig(steps=args.steps, minutes=args.minutes, detect=detect.detect_config(args))
    lip = model.LipConfig(hidden=args.hidden, delay=args.delay)
    ck = train.train(videos, args.output, cfg, lip, resume=not args.fresh)
    log.info("model %s: step %d, loss %.4f", args.output, ck.step, ck.meta.get("loss", float("nan")))
    return 0
