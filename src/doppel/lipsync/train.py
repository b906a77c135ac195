"""`doppel lipsync train VIDEO... -o LIPMODEL`: learn audio -> mouth shape from footage of speakers.

Each video gives its speech features (100 fps) and its mouth shapes (tracked
landmarks, pose removed, interpolated to 100 Hz). Shapes are centred on each
speaker's own mean so several speakers can teach one model: the model predicts
how the mouth moves away from rest, and synthesis adds the target's mean back.
Training samples random windows, is bounded by --steps and --minutes, saves
atomically every few hundred steps and resumes from an existing LIPMODEL.
Clips are read through the per-clip disk cache (lipsync/cache.py), so hundreds
of clips are tracked once. Whole clips are held out (named by the user or a
fixed fraction picked by a hash of the name), never trained on, and their
loss and mouth error are reported and saved in the model's metadata.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import audio
from ..errors import DoppelError
from ..faces import finder
from . import cache, metrics, model, shapes
from .config import TrainConfig  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)


@dataclass
class Clip:
    name: str
    features: np.ndarray  # (T, 28) float32
    shapes: np.ndarray  # (T, 40) mouth shape vectors at 100 Hz, speaker mean subtracted
    mean: np.ndarray  # (40,) the speaker's mean mouth shape


def load_clip(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
              finder: finder.DetectConfig = finder.DetectConfig()) -> Clip:
    """Features and speaker-centred mouth shapes of one video, both at 100 Hz."""
    return to_clip(cache.load(path, cache_dir, finder))


def to_clip(data: cache.ClipData) -> Clip:
    vec = shapes.flat(shapes.mouth_shapes(data.landmarks))
    vec = shapes.fill_missing(vec, data.found)
    at100 = shapes.resample(data.times, vec, len(data.features), audio.FPS)
    mean = at100.mean(0)
    return Clip(data.name, data.features, at100 - mean, mean)


def load_clips(videos: list[str], cache_dir: str | os.PathLike | None,
               finder: finder.DetectConfig = finder.DetectConfig()) -> list[Clip]:
    """Clips of many videos with one progress bar; a clip without a usable face is skipped with a warning."""
    clips = []
    for v in tqdm(videos, desc="lipsync clips", unit="clip", disable=len(videos) < 3):
        try:
            clips.append(load_clip(v, cache_dir, finder))
        except DoppelError as e:
            log.warning("skipping %s: %s", v, e)
    if not clips:
        raise DoppelError("none of the videos gave speech and a tracked face to train on")
    return clips


def split(names: list[str], holdout: list[str] | None, fraction: float) -> set[str]:
    """Names of clips to hold out: those named (file name or stem), else a hash-picked fraction."""
    if holdout:
        wanted = set(holdout)
        picked = {n for n in names if n in wanted or Path(n).stem in wanted}
        missing = wanted - picked - {Path(n).stem for n in picked}
        if missing:
            raise DoppelError(f"held-out clips not among the videos: {', '.join(sorted(missing))}")
        return picked
    if fraction <= 0 or len(names) < 2:
        return set()
    k = min(len(names) - 1, max(1, math.ceil(fraction * len(names))))
    return set(sorted(names, key=lambda n: hashlib.sha1(n.encode()).hexdigest())[:k])


def window_batch(clips: list[Clip], pca: shapes.MouthPCA, cfg: TrainConfig,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: features (B, L, F) with noise, target coefficients (B, L, K)."""
    length = min(cfg.seq_len, min(len(c.features) for c in clips))
    xs, ys = [], []
    for _ in range(cfg.batch):
        c = clips[rng.integers(len(clips))]
        s = rng.integers(len(c.features) - length + 1)
        xs.append(c.features[s:s + length])
        ys.append(pca.encode(c.shapes[s:s + length]))
    x = np.stack(xs) + rng.normal(0, cfg.noise, (cfg.batch, length, xs[0].shape[1]))
    if cfg.channel > 0:
        dims = xs[0].shape[1]
        x = x * rng.uniform(1 - cfg.channel, 1 + cfg.channel, (cfg.batch, 1, dims)) \
            + rng.uniform(-cfg.channel, cfg.channel, (cfg.batch, 1, dims))
    return torch.from_numpy(x).float(), torch.from_numpy(np.stack(ys)).float()


def delayed_loss(net: model.LipLSTM, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MSE between output at t and target at t - delay."""
    d = net.cfg.delay
    out = net(x)
    return ((out[:, d:] - y[:, : y.shape[1] - d]) ** 2).mean()


def start(clips: list[Clip], out: Path, cfg: TrainConfig, lip: model.LipConfig,
          resume: bool) -> tuple[model.Checkpoint, torch.optim.Optimizer, np.random.Generator]:
    """A fresh model with PCA fitted on the clips, or the state saved in `out`."""
    if resume and out.exists():
        ck = model.load(out)
        log.info("resuming %s at step %d", out, ck.step)
    else:
        torch.manual_seed(cfg.seed)
        pca = shapes.MouthPCA.fit(np.concatenate([c.shapes for c in clips]), lip.n_coeffs)
        ck = model.Checkpoint(model.LipLSTM(lip), pca, 0, {})
    opt = torch.optim.Adam(ck.model.parameters(), lr=cfg.lr)
    if ck.optimizer_state is not None:
        opt.load_state_dict(ck.optimizer_state)
    rng = np.random.default_rng(cfg.seed)
    if "rng" in ck.meta:
        rng.bit_generator.state = ck.meta["rng"]
    if "_torch_rng" in ck.meta:
        torch.set_rng_state(ck.meta.pop("_torch_rng"))
    return ck, opt, rng


def train(videos: list[str], out: str | os.PathLike, cfg: TrainConfig = TrainConfig(),
          lip: model.LipConfig = model.LipConfig(), resume: bool = True, holdout: list[str] | None = None,
          cache_dir: str | os.PathLike | None = None) -> model.Checkpoint:
    """Train (or continue training) the audio-to-mouth model; returns the saved checkpoint.

    A resumed run keeps the held-out clips saved in the model unless others are named.
    """
    if not videos:
        raise DoppelError("give at least one video of a speaker to train on")
    out = Path(out)
    clips = load_clips(videos, cache_dir, cfg.detect)
    if resume and out.exists() and not holdout:
        holdout = model.load(out).meta.get("holdout") or None
    held = split([c.name for c in clips], holdout, cfg.holdout_fraction)
    test = [c for c in clips if c.name in held]
    clips = [c for c in clips if c.name not in held]
    if not clips:
        raise DoppelError("every clip is held out; nothing is left to train on")
    if min(len(c.features) for c in clips) <= lip.delay + 10:
        raise DoppelError(f"clips must be longer than the {lip.delay * 10} ms delay")
    log.info("training on %d clips (%.1f min of speech); holding out %d: %s", len(clips),
             sum(len(c.features) for c in clips) / audio.FPS / 60, len(test), ", ".join(sorted(held)) or "none")
    ck, opt, rng = start(clips, out, cfg, lip, resume)
    ck.meta.update(clips=[c.name for c in clips], holdout=sorted(held), train_config=asdict(cfg))
    with model.torch_threads():
        _loop(clips, ck, opt, rng, cfg, out, test)
    return ck


def heldout_report(ck: model.Checkpoint, test: list[Clip]) -> dict:
    """Loss and mouth error (in mouth widths) of the model on held-out clips, vs the mean-shape baseline."""
    losses, errs, base, corrs = [], [], [], []
    for c in test:
        pred = model.predict(ck.model, c.features)
        losses.append(float(((pred - ck.pca.encode(c.shapes)) ** 2).mean()))
        vec = ck.pca.decode(pred)
        errs.append(metrics.mouth_error(vec, c.shapes, c.mean))
        base.append(metrics.mouth_error(np.zeros_like(c.shapes), c.shapes, c.mean))
        corrs.append(metrics.opening_corr(vec, c.shapes, c.mean))
    return {"holdout_loss": float(np.mean(losses)), "holdout_error": float(np.mean(errs)),
            "holdout_error_mean_shape": float(np.mean(base)), "holdout_opening_corr": float(np.nanmean(corrs))}


def _loop(clips, ck, opt, rng, cfg: TrainConfig, out: Path, test: list[Clip]) -> None:
    deadline = time.monotonic() + cfg.minutes * 60
    sched = lambda step: cfg.lr * (1 - 0.9 * min(step / max(cfg.steps, 1), 1.0))  # noqa: E731
    bar = tqdm(total=cfg.steps, initial=min(ck.step, cfg.steps), desc="lipsync train", unit="step")
    ck.model.train()
    while ck.step < cfg.steps and time.monotonic() < deadline:
        for g in opt.param_groups:
            g["lr"] = sched(ck.step)
        loss = delayed_loss(ck.model, *window_batch(clips, ck.pca, cfg, rng))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ck.model.parameters(), 1.0)
        opt.step()
        ck.step += 1
        ck.meta["loss"] = loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{ck.meta['loss']:.3f}")
        if ck.step % cfg.save_every == 0:
            _save(ck, opt, rng, out)
    bar.close()
    if test:
        ck.meta.update(heldout_report(ck, test))
        log.info("held out %d clips: loss %.3f, mouth error %.4f mouth widths (mean shape %.4f), "
                 "opening corr %.3f", len(test), ck.meta["holdout_loss"], ck.meta["holdout_error"],
                 ck.meta["holdout_error_mean_shape"], ck.meta["holdout_opening_corr"])
    _save(ck, opt, rng, out)
    log.info("saved %s at step %d (loss %.4f)", out, ck.step, ck.meta.get("loss", float("nan")))


def _save(ck: model.Checkpoint, opt: torch.optim.Optimizer, rng: np.random.Generator, out: Path) -> None:
    ck.meta["rng"] = rng.bit_generator.state
    ck.optimizer_state = opt.state_dict()
    model.save(out, ck)
