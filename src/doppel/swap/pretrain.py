"""Stage `doppel pretrain`: faces of many people -> a face prior (shared encoder + one generic decoder).

The prior is the swap autoencoder trained on thousands of identities with the
same random warp and augmentation as `doppel train`, but with one decoder for
everybody. `doppel train A B` then starts from it (encoder from the prior, both
decoders from the generic decoder), so a few CPU-minutes of fine-tuning have a
face to specialise instead of a blank network.

PRIOR/ holds
    prior.safetensors        encoder.* and decoder.* weights + SwapConfig + info (what `train --init` reads)
    train_state.safetensors  optimizer, step and RNG states for `--resume` (as in `doppel train`)
    previews/step_NNNNNN.png held-out faces and their reconstructions (labelled synthetic)
    log.jsonl                loss every few steps, held-out SSIM every --val-every steps

Validation holds out whole identities (see `identity_key`), never single images.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from .. import interrupt

log = logging.getLogger(__name__)

PRIOR_FILE = "prior.safetensors"
PRIOR_FORMAT = "doppel-prior/1"
STATE_FORMAT = "doppel-prior-state/1"
STATE_FILE = "train_state.safetensors"
WEIGHTS_DIR = Path(__file__).with_name("weights")  # shipped priors: prior_<preset>.safetensors
VAL_FACES = 256  # held-out faces scored at each validation
PREVIEW_FACES = 8


@dataclass(frozen=True)
class PretrainConfig:
    preset: str = "lite"  # model preset, a key of model.PRESETS
    steps: int | None = None  # stop at this step count (None: use minutes, or 20000)
    minutes: float | None = None  # stop after this many minutes of this run
    batch: int = 32  # faces per step
    lr: float = 5e-4  # Adam learning rate (betas 0.5, 0.999 as in train)
    dssim: float = 1.0  # weight of the DSSIM term beside L1
    hold_out: float = 0.02  # share of identities held out for validation
    save_every: int = 250  # checkpoint every N steps (also on Ctrl-C and at the end)
    val_every: int = 500  # held-out SSIM and a preview every N steps
    log_every: int = 10  # log.jsonl loss line every N steps
    resume: bool = False  # continue the run in the output folder
    device: str = "cpu"  # cpu or cuda
    workers: int = 1  # augmentation processes (0: in the training process)
    seed: int = 0  # seeds weights, split, data order and augmentation


def identity_key(source: str) -> str:
    """Who a face belongs to, from its source file: LFW's `Name_0001.jpg` -> `Name`; otherwise the file.

    A video is one identity; a photo folder without numbered names counts each photo as
    its own person (true for UTKFace's mostly-one-per-person crops).
    """
    stem = Path(source).name.split(".")[0]
    return re.sub(r"_\d{4}$", "", stem)


def held_out(key: str, share: float, seed: int) -> bool:
    """Stable hash split of identities: the same key always lands on the same side."""
    h = int.from_bytes(hashlib.sha1(f"{seed}:{key}".encode()).digest()[:8], "big")
    return h / 2 ** 64 < share


# ---------------------------------------------------------------- data

def load_corpus(paths: list[str | os.PathLike], share: float, seed: int):
    """(train FaceData, held-out crops (N, S, S, 3) uint8, facts) from face sets, split by identity."""
    import numpy as np

    from ..errors import DoppelError
    from ..faces import align
    from . import augment

    sets = [_open(p) for p in paths]
    size, coverage = sets[0].size, sets[0].coverage
    for fs in sets[1:]:
        if fs.size != size or abs(fs.coverage - coverage) > 1e-6:
            raise DoppelError(f"face sets differ: {sets[0].root} is {size} px / coverage {coverage}, "
                              f"{fs.root} is {fs.size} px / coverage {fs.coverage}")
    crops, regions, val, ids, val_ids, listings = [], [], [], set(), set(), {}
    for fs in sets:
        for rec in fs.faces:
            try:
                crop = fs.load_crop(rec)
            except Exception as e:  # one unreadable crop must not stop hours of training
                log.warning("skipping unreadable face %s/%s: %s", fs.root, rec.file, e)
                continue
            if crop.shape != (size, size, 3):
                continue
            key = f"{fs.root.name}:{identity_key(_source_file(rec, listings))}"
            if held_out(key, share, seed):
                val.append(crop)
                val_ids.add(key)
                continue
            ids.add(key)
            crops.append(crop)
            lm = align.transform_points(rec.landmarks_array, rec.matrix_array)
            regions.append(augment.region_maps(lm, size).astype(np.uint8))
    if not crops:
        raise DoppelError("no readable training faces in " + ", ".join(str(p) for p in paths))
    if not val:
        raise DoppelError(f"--hold-out {share} held out no identity; raise it")
    facts = {"facesets": [str(fs.root) for fs in sets], "faces": len(crops), "identities": len(ids),
             "val_faces": len(val), "val_identities": len(val_ids), "size": size, "coverage": coverage}
    data = augment.FaceData(np.stack(crops), np.stack(regions), size, coverage)
    return data, np.stack(val), facts


def _source_file(rec, listings: dict) -> str:
    """The photo a record came from: a folder source is indexed by frame number in sorted order."""
    from .. import media

    src = Path(rec.source)
    if src.suffix:  # a video or a single photo
        return rec.source
    if rec.source not in listings:
        listings[rec.source] = media.image_files(src) if src.is_dir() else []
    files = listings[rec.source]
    return str(files[rec.frame_index]) if rec.frame_index < len(files) else f"{rec.source}#{rec.frame_index}"


def _open(path):
    from ..errors import DoppelError
    from ..faceset import ALIGNMENTS, FaceSet

    p = Path(path)
    if not (p / ALIGNMENTS).is_file():
        raise DoppelError(f"not a face set: {p} (run `doppel extract {p} -o FACESET` first)")
    fs = FaceSet.open(p)
    if not len(fs):
        raise DoppelError(f"face set is empty: {p}")
    return fs


class PriorBatches:
    """Item `step` is that step's augmented batch of the whole corpus, drawn from (seed, step) alone.

    A plain map-style dataset (DataLoader needs only __getitem__/__len__), defined at module
    level so spawned loader workers can unpickle it.
    """

    def __init__(self, data, batch: int, seed: int):
        self.data, self.batch, self.seed = data, batch, seed

    def __len__(self) -> int:
        return 2 ** 62

    def __getitem__(self, step: int):
        import numpy as np

        from . import augment

        idx = augment.batch_indices(len(self.data.crops), self.batch, step, self.seed)
        return augment.make_batch(self.data, idx, np.random.default_rng([self.seed, step]), augment.AugmentConfig())


# ---------------------------------------------------------------- prior files

def save_prior(path: Path, model, info: dict) -> Path:
    """encoder.* + decoder.* (the generic decoder, stored as decoder "a") with config and info, atomically."""
    from .. import checkpoint

    tensors = {f"encoder.{k}": v for k, v in model.encoder.state_dict().items()}
    tensors.update({f"decoder.{k}": v for k, v in model.decoders["a"].state_dict().items()})
    return checkpoint.write(path, PRIOR_FORMAT, tensors, model.cfg, info)


def prior_path(spec: str | os.PathLike) -> Path:
    p = Path(spec)
    return p / PRIOR_FILE if p.is_dir() else p


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file: names the exact prior weights a model started from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shipped_prior(preset: str) -> Path | None:
    p = WEIGHTS_DIR / f"prior_{preset}.safetensors"
    return p if p.is_file() else None


def read_prior(path: str | os.PathLike):
    """(SwapConfig, info, tensors) of a prior file; DoppelError for anything else."""
    from .. import checkpoint
    from ..errors import DoppelError
    from .model import SwapConfig

    src = prior_path(path)
    if not src.is_file():
        raise DoppelError(f"no face prior at {path} (expected {PRIOR_FILE})")
    tensors, header = checkpoint.load(src, PRIOR_FORMAT, SwapConfig, what="doppel face prior")
    return header.config, header.info, tensors


def init_from_prior(model, path: str | os.PathLike) -> dict:
    """Load a prior into a SwapModel: encoder as is, every decoder a copy of the generic one.

    The prior must match the model's architecture except for the decoders' output layer,
    which may differ in channels (a model that also draws a mask): that layer's colour
    channels are copied and the rest keep their fresh initialisation. Returns the prior's info.
    """
    import torch

    from ..errors import DoppelError

    cfg, info, tensors = read_prior(path)
    mine = model.cfg
    arch = ("size", "enc_channels", "latent", "bottleneck", "up_channels", "dec_channels")
    if any(getattr(cfg, k) != getattr(mine, k) for k in arch):
        raise DoppelError(f"prior {path} is for preset {cfg.preset} ({cfg.size} px); the model is preset "
                          f"{mine.preset} ({mine.size} px)")
    model.encoder.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")})
    dec = {k[8:]: v.float() for k, v in tensors.items() if k.startswith("decoder.")}
    for d in model.decoders.values():
        own = d.state_dict()
        with torch.no_grad():
            for k, v in dec.items():
                if own[k].shape == v.shape:
                    own[k].copy_(v)
                else:  # output conv with a mask channel: colour is (tanh(y) + 1) / 2 = sigmoid(2y) there,
                    own[k][: v.shape[0]].copy_(v / 2)  # so halved colour weights draw the prior's colours
    return info


# ---------------------------------------------------------------- the run

def pretrain(facesets: list[str | os.PathLike], output: str | os.PathLike,
             cfg: PretrainConfig = PretrainConfig()) -> dict:
    """Train a face prior on `facesets` into the folder `output`; returns a summary dict."""
    import torch

    from ..errors import DoppelError
    from . import augment, losses, train
    from .model import build

    out = Path(output)
    train.check_preset(cfg.preset, _open(facesets[0]).size)
    if not cfg.resume and (out / PRIOR_FILE).exists():
        raise DoppelError(f"{out} already holds a prior; pass --resume to continue it, or choose another folder")
    data, val, facts = load_corpus(facesets, cfg.hold_out, cfg.seed)
    log.info("prior data: %d faces of %d identities for training, %d faces of %d identities held out",
             facts["faces"], facts["identities"], facts["val_faces"], facts["val_identities"])
    _, _, device = train._distributed(cfg.device)
    torch.manual_seed(cfg.seed)
    model = build(cfg.preset).to(device)
    params = list(model.encoder.parameters()) + list(model.decoders["a"].parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.5, 0.999))
    start = _resume(out, model, opt) if cfg.resume else 0
    (out / "previews").mkdir(parents=True, exist_ok=True)  # after the checks: a refused resume writes nothing
    run = _PriorRun(out, model, opt, data, val, facts, cfg, device, start)
    return run.loop(augment, losses)


def _resume(out: Path, model, opt) -> int:
    from .. import checkpoint
    from ..errors import DoppelError

    if not (out / PRIOR_FILE).is_file() or not (out / STATE_FILE).is_file():
        raise DoppelError(f"nothing to resume in {out} (need {PRIOR_FILE} and {STATE_FILE})")
    cfg, info, tensors = read_prior(out / PRIOR_FILE)
    if cfg != model.cfg:
        raise DoppelError(f"{out} holds a {cfg.preset} prior; cannot resume it as {model.cfg.preset}")
    state, header = checkpoint.load(out / STATE_FILE, STATE_FORMAT, what="face prior train state")
    if int(header.sections.get("step", -1)) != int(info.get("step", -2)):
        raise DoppelError(f"train state in {out} is not at the prior's step; cannot resume exactly")
    model.encoder.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")})
    model.decoders["a"].load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("decoder.")})
    checkpoint.load_optimizer(opt, state, header.sections["param_groups"])
    checkpoint.set_rng_state(state, header.sections["rng"])
    return int(info["step"])


class _PriorRun:
    """Loop, validation, previews and checkpoints of one pretraining run."""

    def __init__(self, out, model, opt, data, val, facts, cfg, device, start):
        import torch

        self.out, self.model, self.opt, self.cfg, self.device = out, model, opt, cfg, device
        self.data, self.facts, self.start = data, facts, start
        rng = __import__("numpy").random.default_rng(cfg.seed)
        pick = rng.choice(len(val), min(VAL_FACES, len(val)), replace=False)
        self.val = torch.from_numpy(val[pick]).permute(0, 3, 1, 2).float().div(255)
        self.mean_ssim = None
        self.t0 = time.monotonic()
        self.history = self._history()

    def _history(self) -> dict:
        p = self.out / PRIOR_FILE
        if self.cfg.resume and p.is_file():
            return read_prior(p)[1].get("history", {})
        return {}

    def loop(self, augment, losses) -> dict:
        from tqdm import tqdm

        cfg = self.cfg
        stop = cfg.steps if cfg.steps is not None else (2 ** 62 if cfg.minutes is not None else 20000)
        deadline = time.monotonic() + 60 * cfg.minutes if cfg.minutes is not None else None
        lcfg = losses.LossConfig("l1", cfg.dssim)
        window = losses.gaussian_window(lcfg.window, lcfg.sigma).to(self.device)
        ds = PriorBatches(self.data, cfg.batch, cfg.seed)
        batches = augment.loader(ds, self.start, stop, cfg.workers)
        bar = tqdm(total=None if stop >= 2 ** 62 else stop, initial=self.start, unit="step", desc="pretrain")
        logf = open(self.out / "log.jsonl", "a")
        step, loss, seen = self.start, float("nan"), 0
        enc, dec = self.model.encoder, self.model.decoders["a"]
        try:
            for batch in batches:
                x = batch["input"].to(self.device)
                pred, _ = dec(enc(x))
                l = losses.reconstruction_loss(pred, {k: v.to(self.device) for k, v in batch.items()}, lcfg, window)
                self.opt.zero_grad(set_to_none=True)
                l.backward()
                self.opt.step()
                step, loss, seen = step + 1, l.item(), seen + len(x)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", faces_s=f"{seen / (time.monotonic() - self.t0):.1f}")
                if step % cfg.log_every == 0:
                    logf.write(json.dumps({"step": step, "time": round(time.time(), 3), "loss": loss}) + "\n")
                    logf.flush()
                if cfg.val_every and step % cfg.val_every == 0:
                    self.validate(step, logf)
                if cfg.save_every and step % cfg.save_every == 0:
                    self.checkpoint(step)
                interrupt.check()  # a stop whose KeyboardInterrupt was lost in a finalizer
                if step >= stop or (deadline is not None and time.monotonic() > deadline):
                    break
        except KeyboardInterrupt:
            log.warning("interrupted at step %d; saving a checkpoint", step)
            self.checkpoint(step)
            raise
        finally:
            bar.close()
        ssim = self.validate(step, logf)
        logf.close()
        self.checkpoint(step)
        secs = time.monotonic() - self.t0
        return {"output": str(self.out), "step": step, "steps_run": step - self.start, "seconds": round(secs, 1),
                "loss": loss, "val_ssim": ssim, "mean_face_ssim": self.mean_ssim,
                "faces_per_s": seen / secs if secs > 0 else 0.0, **self.facts}

    def validate(self, step: int, logf) -> float:
        """SSIM of held-out identities' faces rebuilt by the prior; a preview; a log line."""
        import numpy as np
        import torch

        from .. import provenance
        from . import losses

        with torch.no_grad():
            rebuilt = self.model.decoders["a"](self.model.encoder(self.val.to(self.device)))[0].cpu()
        ssim = losses.ssim(rebuilt, self.val).mean().item()
        if self.mean_ssim is None:
            mean = torch.from_numpy(self.data.crops.mean(0)).permute(2, 0, 1)[None].float().div(255)
            self.mean_ssim = losses.ssim(mean.expand_as(self.val), self.val).mean().item()
        self.history[str(step)] = round(ssim, 4)
        logf.write(json.dumps({"step": step, "time": round(time.time(), 3), "val_ssim": ssim,
                               "mean_face_ssim": self.mean_ssim}) + "\n")
        logf.flush()
        log.info("step %d: held-out SSIM %.3f (mean face %.3f)", step, ssim, self.mean_ssim)
        n = PREVIEW_FACES
        tiles = [(t[:n].clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy() for t in (self.val, rebuilt)]
        img = np.concatenate([np.concatenate(list(t), 1) for t in tiles], 0)
        provenance.write_labeled_image(self.out / "previews" / f"step_{step:06d}.png", img, "prior-preview", step=step)
        return ssim

    def checkpoint(self, step: int) -> None:
        from .. import checkpoint

        info = {**self.facts, "step": step, "seed": self.cfg.seed, "batch": self.cfg.batch, "lr": self.cfg.lr,
                "hold_out": self.cfg.hold_out, "history": self.history,
                "seconds": round(time.monotonic() - self.t0, 1) + float(self._prev_seconds())}
        tmp_s = self.out / f".train_state.{os.getpid()}.safetensors"
        try:
            opt_t, groups = checkpoint.optimizer_tensors(self.opt)
            rng_t, rng_meta = checkpoint.rng_state()
            checkpoint.write(tmp_s, STATE_FORMAT, {**opt_t, **rng_t}, step=step, param_groups=groups, rng=rng_meta)
            save_prior(self.out / PRIOR_FILE, self.model, info)  # the prior first: resume checks the steps match
            os.replace(tmp_s, self.out / STATE_FILE)
        finally:
            tmp_s.unlink(missing_ok=True)

    def _prev_seconds(self) -> float:
        if not hasattr(self, "_prev"):
            p = self.out / PRIOR_FILE
            self._prev = read_prior(p)[1].get("seconds", 0.0) if self.cfg.resume and p.is_file() else 0.0
        return self._prev


# ---------------------------------------------------------------- fp16 export

def export(src: str | os.PathLike, dest: str | os.PathLike, half: bool = True) -> Path:
    """Copy a prior's weights (fp16 when `half`) and header, without the train state."""
    from .. import checkpoint

    cfg, info, tensors = read_prior(src)
    out = {k: v.half() if half and v.is_floating_point() else v for k, v in tensors.items()}
    return checkpoint.write(dest, PRIOR_FORMAT, out, cfg, {**info, "fp16": half})


# ---------------------------------------------------------------- CLI

def add_arguments(p: argparse.ArgumentParser) -> None:
    d = PretrainConfig()
    p.add_argument("facesets", nargs="+", metavar="FACESET",
                   help="face sets of many people (make them with `doppel extract PHOTOS_OR_VIDEOS -o FACESET`)")
    p.add_argument("-o", "--output", required=True, metavar="PRIOR", help="prior folder to write")
    p.add_argument("--preset", default=d.preset, help="model preset (lite, original, hires)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="train until this step count (default 20000 without --minutes)")
    g.add_argument("--minutes", type=float, help="train for this many minutes")
    p.add_argument("--batch", type=int, default=d.batch, help="faces per step")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--hold-out", type=float, default=d.hold_out, help="share of identities held out for validation")
    p.add_argument("--save-every", type=int, default=d.save_every, help="checkpoint every N steps")
    p.add_argument("--val-every", type=int, default=d.val_every, help="held-out SSIM and preview every N steps")
    p.add_argument("--resume", action="store_true", help="continue the run in PRIOR")
    p.add_argument("--device", default=d.device, choices=["cpu", "cuda"], help="where to train")
    p.add_argument("--workers", type=int, default=d.workers, help="augmentation processes")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for weights, split, order and augmentation")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--export", metavar="FILE", help="instead of training: write PRIOR's weights as fp16 to FILE")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import DoppelError

    if args.export:
        print(export(args.output, args.export))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    interrupt.install(also=(signal.SIGTERM,))  # `kill` saves a checkpoint like Ctrl-C (background jobs ignore SIGINT)
    if args.batch < 1 or not 0 < args.hold_out < 1:
        raise DoppelError("--batch must be positive and --hold-out between 0 and 1")
    cfg = PretrainConfig(preset=args.preset, steps=args.steps, minutes=args.minutes, batch=args.batch, lr=args.lr,
                         hold_out=args.hold_out, save_every=args.save_every, val_every=args.val_every,
                         resume=args.resume, device=args.device, workers=args.workers, seed=args.seed)
    s = pretrain(args.facesets, args.output, cfg)
    print(f"prior at step {s['step']} ({s['steps_run']} steps, {s['seconds']:.0f} s, {s['faces_per_s']:.1f} faces/s); "
          f"held-out SSIM {s['val_ssim']:.3f} (mean face {s['mean_face_ssim']:.3f}); {args.output}/{PRIOR_FILE}")
    return 0
