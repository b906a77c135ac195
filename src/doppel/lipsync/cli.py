"""Arguments of `doppel lipsync` and `doppel lipsync train`; dispatch only.

`doppel lipsync VIDEO AUDIO -m LIPMODEL -o OUTPUT` synthesizes;
`doppel lipsync train VIDEO... -o LIPMODEL` learns the audio-to-mouth model;
`doppel lipsync texture VIDEO... -m LIPMODEL` learns the autoencoder mouth
texture of a target person and stores it in the model.
The first positional decides which, so all share one parser (a nested
subparser would force a sub-command word on the synthesis form).
Only settings are imported here; the stage's code (torch, dlib) loads in `run`.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import DoppelError
from ..faces.options import add_detect_arguments, detect_config
from .config import TEXTURE_NAMES, LipConfig, LipsyncConfig, TextureConfig, TrainConfig

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.usage = ("doppel lipsync VIDEO AUDIO -m LIPMODEL -o OUTPUT [options]\n"
               "       doppel lipsync train VIDEO [VIDEO ...] -o LIPMODEL [--steps N] [--minutes M] [--holdout ...]\n"
               "       doppel lipsync texture VIDEO [VIDEO ...] -m LIPMODEL [-o NEW_LIPMODEL] [--tex-steps N]")
    p.add_argument("inputs", nargs="+", metavar="VIDEO AUDIO | train VIDEO... | texture VIDEO...",
                   help="target video and speech audio (any audio or video file); or 'train' and speaker videos; "
                        "or 'texture' and videos of the target person")
    p.add_argument("-o", "--output", help="output video (synthesis) or LIPMODEL file (train; texture: "
                                          "default updates -m in place)")
    s = p.add_argument_group("synthesis")
    s.add_argument("-m", "--model", help="LIPMODEL made by 'doppel lipsync train'")
    s.add_argument("--texture", choices=list(TEXTURE_NAMES), default=LipsyncConfig.texture,
                   help="mouth texture: weighted median of nearest target frames, or a decoder trained on them")
    s.add_argument("--candidates", type=int, default=TextureConfig.candidates, help="frames per median")
    s.add_argument("--retime", action="store_true", help="slow the target's playback in silences (head rests)")
    s.add_argument("--preview", metavar="PNG", help="also write a strip of frames with mouth landmarks drawn")
    s.add_argument("--crf", type=int, default=LipsyncConfig.crf, help="H.264 quality (lower is better)")
    add_detect_arguments(p)
    t = p.add_argument_group("train")
    t.add_argument("--steps", type=int, default=TrainConfig.steps, help="optimizer steps in all")
    t.add_argument("--minutes", type=float, default=TrainConfig.minutes, help="time budget of this run")
    t.add_argument("--hidden", type=int, default=LipConfig.hidden, help="LSTM units")
    t.add_argument("--delay", type=int, default=LipConfig.delay, help="output delay, 10 ms frames")
    t.add_argument("--save-every", type=int, default=TrainConfig.save_every,
                   help="steps between checkpoints (a killed run resumes from the last one)")
    t.add_argument("--fresh", action="store_true", help="start over instead of resuming an existing LIPMODEL")
    t.add_argument("--holdout", nargs="+", metavar="CLIP",
                   help="clips (file names or stems) never trained on, reported at the end")
    t.add_argument("--holdout-fraction", type=float, default=TrainConfig.holdout_fraction,
                   help="without --holdout, hold out this share of the clips (picked by a hash of the name)")
    t.add_argument("--cache", metavar="DIR", default=None,
                   help="per-clip cache of features and landmarks (default $DOPPEL_LIPSYNC_CACHE or "
                        "~/.cache/doppel/lipsync); 'none' turns it off")
    x = p.add_argument_group("texture")
    x.add_argument("--tex-steps", type=int, default=TextureConfig.ae_steps, help="autoencoder training steps")
    x.add_argument("--tex-minutes", type=float, default=TextureConfig.ae_minutes, help="autoencoder time budget")
    x.add_argument("--tex-frames", type=int, default=TextureConfig.ae_frames,
                   help="at most this many target frames (spread over the videos) to learn from")


def run(args: argparse.Namespace) -> int:
    if args.inputs[0] == "train":
        return _train(args)
    if args.inputs[0] == "texture":
        return _texture(args)
    if not args.output:
        raise DoppelError("give the output video with -o OUTPUT")
    if len(args.inputs) != 2:
        raise DoppelError(f"expected VIDEO AUDIO (or 'train VIDEO...'), got {len(args.inputs)} inputs")
    if args.candidates < 1:
        raise DoppelError(f"--candidates must be at least 1, got {args.candidates}")
    if not args.model:
        raise DoppelError("give the lip-sync model with -m LIPMODEL (made by 'doppel lipsync train')")
    cfg = LipsyncConfig(texture=args.texture, retime=args.retime, crf=args.crf,
                        tex=TextureConfig(candidates=args.candidates), detect=detect_config(args))
    from .synth import lipsync  # noqa: PLC0415 (heavy: torch, dlib)
    r = lipsync(args.inputs[0], args.inputs[1], args.model, args.output, cfg, args.preview)
    log.info("wrote %s: %d frames, %.1f s, %.2f s of video per s of compute",
             args.output, r.frames, r.seconds, r.speed)
    return 0


def _cache_dir(args: argparse.Namespace):
    from . import cache  # noqa: PLC0415
    if args.cache is None:
        return cache.default_dir()
    return None if args.cache.lower() == "none" else args.cache


def _train(args: argparse.Namespace) -> int:
    videos = args.inputs[1:]
    if not args.output:
        raise DoppelError("give the LIPMODEL file to write with -o LIPMODEL")
    if args.steps < 1 or args.minutes <= 0 or args.save_every < 1:
        raise DoppelError("--steps and --save-every must be at least 1 and --minutes positive")
    if not 0 <= args.holdout_fraction < 1:
        raise DoppelError(f"--holdout-fraction must be in [0, 1), got {args.holdout_fraction}")
    cfg = TrainConfig(steps=args.steps, minutes=args.minutes, holdout_fraction=args.holdout_fraction,
                      save_every=args.save_every, detect=detect_config(args))
    lip = LipConfig(hidden=args.hidden, delay=args.delay)
    from .train import train  # noqa: PLC0415 (heavy: torch, dlib)
    ck = train(videos, args.output, cfg, lip, resume=not args.fresh, holdout=args.holdout,
               cache_dir=_cache_dir(args))
    log.info("model %s: step %d, loss %.4f; held out: %s", args.output, ck.step, ck.meta.get("loss", float("nan")),
             ", ".join(ck.meta.get("holdout", [])) or "none")
    return 0


def _texture(args: argparse.Namespace) -> int:
    from . import texture  # noqa: PLC0415
    videos = args.inputs[1:]
    if not videos or not args.model:
        raise DoppelError("usage: doppel lipsync texture VIDEO [VIDEO ...] -m LIPMODEL [-o NEW_LIPMODEL]")
    if not args.output and not Path(args.model).is_file():
        raise DoppelError(f"{args.model} is a bundled or missing model; write the result with -o NEW_LIPMODEL")
    if args.tex_steps < 1 or args.tex_minutes <= 0 or args.tex_frames < 2:
        raise DoppelError("--tex-steps must be at least 1, --tex-minutes positive and --tex-frames at least 2")
    cfg = TextureConfig(ae_steps=args.tex_steps, ae_minutes=args.tex_minutes, ae_frames=args.tex_frames)
    r = texture.train_autoencoder(videos, args.model, args.output or args.model, cfg, _cache_dir(args))
    log.info("texture autoencoder stored in %s: %d frames, %d steps, L1 %.4f",
             args.output or args.model, r["frames"], r["steps"], r["loss"])
    return 0
