"""Arguments of `doppel train` (and its --gan flags); dispatch only.

Imports only argparse-level things: torch and the training code load in `run`,
so `doppel train --help` starts fast. swap.train and swap.gan re-export these names.
"""
from __future__ import annotations

import argparse
import logging

from ..errors import DoppelError
from .config import DEFAULT_STEPS, PIXEL_LOSSES, PRESETS, GanConfig, TrainConfig

log = logging.getLogger("doppel.swap.train")  # the training stage's name, as before its CLI moved here


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("faceset_a", metavar="FACESET_A", help="face set of person A (the face to replace)")
    p.add_argument("faceset_b", metavar="FACESET_B", help="face set of person B (the face drawn in)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="model folder to write")
    p.add_argument("--preset", default=d.preset, choices=list(PRESETS), help="model size")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="train until this step count")
    g.add_argument("--minutes", type=float, help="train for this many minutes instead")
    p.add_argument("--batch", type=int, default=d.batch, help="faces of each person per step (per process)")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--loss", default=d.loss, choices=list(PIXEL_LOSSES), help="pixel loss beside DSSIM")
    p.add_argument("--dssim", type=float, default=d.dssim, help="weight of the DSSIM loss")
    p.add_argument("--eye-mouth-weight", type=float, default=d.eye_mouth_weight,
                   help="extra loss weight on eyes and mouth (2: three times the rest)")
    p.add_argument("--save-every", type=int, default=d.save_every, help="checkpoint every N steps")
    p.add_argument("--preview-every", type=int, default=d.preview_every, help="preview PNG every N steps (0: never)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in MODEL")
    p.add_argument("--device", default=d.device, choices=["cpu", "cuda"], help="where to train")
    p.add_argument("--workers", type=int, default=d.workers,
                   help="data-loader processes for augmentation (default: 0 on the CPU, 2 with --device cuda)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for weights, data order and augmentation")
    p.add_argument("--init", default=d.init, metavar="prior|scratch|FILE",
                   help="start from the shipped face prior of the preset, from scratch, or from a prior file "
                        "(`doppel pretrain`); ignored with --resume")
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads (0: torch's default; 1 is often faster on a busy CPU)")
    add_gan_arguments(p)


def add_gan_arguments(p: argparse.ArgumentParser) -> None:
    d = GanConfig()
    g = p.add_argument_group("GAN variant (--gan)")
    g.add_argument("--gan", action="store_true",
                   help="masked decoders, per-person PatchGAN critics, edge and feature-matching losses")
    g.add_argument("--gan-lr-g", type=float, default=d.lr_g, help="generator learning rate (GAN)")
    g.add_argument("--gan-lr-d", type=float, default=d.lr_d, help="discriminator learning rate (GAN)")
    g.add_argument("--gan-schedule", type=int, default=None, metavar="STEPS",
                   help="steps the loss and learning-rate schedule spans (default: --steps)")
    g.add_argument("--gan-occlude", type=float, default=d.occlude,
                   help="probability of an occluding ellipse on a training face (GAN)")


def gan_config_from_args(args: argparse.Namespace) -> GanConfig:
    if args.gan_schedule is not None and args.gan_schedule < 1:
        raise DoppelError("--gan-schedule must be positive")
    if not 0 <= args.gan_occlude <= 1:
        raise DoppelError("--gan-occlude must be in [0, 1]")
    return GanConfig(lr_g=args.gan_lr_g, lr_d=args.gan_lr_d, total=args.gan_schedule, occlude=args.gan_occlude)


def run(args: argparse.Namespace) -> int:
    import torch

    from .train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("batch", "save_every", "workers"):
        if getattr(args, name) is not None and getattr(args, name) < (1 if name == "batch" else 0):
            raise DoppelError(f"--{name.replace('_', '-')} must be {'positive' if name == 'batch' else '>= 0'}")
    steps = None if args.minutes is not None else args.steps
    cfg = TrainConfig(preset=args.preset, steps=steps, minutes=args.minutes, batch=args.batch, lr=args.lr,
                      loss=args.loss, dssim=args.dssim, eye_mouth_weight=args.eye_mouth_weight,
                      save_every=args.save_every, preview_every=args.preview_every, resume=args.resume,
                      device=args.device, workers=args.workers, seed=args.seed, init=args.init,
                      gan=args.gan, gan_cfg=gan_config_from_args(args))
    s = train(args.faceset_a, args.faceset_b, args.output, cfg)
    if s.rank == 0:
        log.info("trained to step %d (%d steps, %.0f s, %.1f faces/s); loss A %.4f, loss B %.4f; model in %s",
                 s.step, s.steps_run, s.seconds, s.faces_per_s, s.loss_a, s.loss_b, s.output)
    return 0
