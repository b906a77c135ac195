"""`doppel lipsync train VIDEO... -o LIPMODEL`: learn audio -> mouth shape from footage of speakers.

Each video gives its speech features (100 fps) and its mouth shapes (tracked
landmarks, pose removed, interpolated to 100 Hz). Shapes are centred on each
speaker's own mean so several speakers can teach one model: the model predicts
how the mouth moves away from rest, and synthesis adds the target's mean back.
Training samples random windows, is bounded by --steps and --minutes, saves
atomically every few hundred steps and resumes from an existing LIPMODEL.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import audio
from ..errors import DoppelError
from ..faces import detect
from . import footage, model, shapes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 4000  # optimizer steps in all (a resumed run continues up to this)
    minutes: float = 10.0  # wall-clock budget for this run
    seq_len: int = 300  # window length in 10 ms frames
    batch: int = 16  # windows per step
    lr: float = 3e-3  # Adam learning rate (decays to 10% by the last step)
    noise: float = 0.6  # std of Gaussian noise added to the standardised features
    channel: float = 0.5  # per-window random scale (1 +- this) and offset of each feature: voice/mic variety
    save_every: int = 500  # steps between checkpoints
    seed: int = 0  # seed of window sampling and initial weights
    detect: detect.DetectConfig = detect.DetectConfig()  # face finder of the speaker videos


@dataclass
class Clip:
    name: str
    features: np.ndarray  # (T, 28) float32
    shapes: np.ndarray  # (T, 40) mouth shape vectors at 100 Hz, speaker mean subtracted
    mean: np.ndarray  # (40,) the speaker's mean mouth shape


def load_clip(path: str | os.PathLike, finder: detect.DetectConfig = detect.DetectConfig()) -> Clip:
    """Features and speaker-centred mouth shapes of one video, both at 100 Hz."""
    feats = audio.features(path)
    foot = footage.load(path, cfg=finder)
    vec = shapes.flat(shapes.mouth_shapes(foot.landmarks))
    vec = shapes.fill_missing(vec, foot.found)
    at100 = shapes.resample(foot.times, vec, len(feats), audio.FPS)
    mean = at100.mean(0)
    return Clip(Path(path).name, feats, at100 - mean, mean)


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
          lip: model.LipConfig = model.LipConfig(), resume: bool = True) -> model.Checkpoint:
    """Train (or continue training) the audio-to-mouth model; returns the saved checkpoint."""
    if not videos:
        raise DoppelError("give at least one video of a speaker to train on")
    clips = [load_clip(v, cfg.detect) for v in videos]
    if min(len(c.features) for c in clips) <= lip.delay + 10:
        raise DoppelError(f"clips must be longer than the {lip.delay * 10} ms delay")
    out = Path(out)
    ck, opt, rng = start(clips, out, cfg, lip, resume)
    ck.meta.update(clips=[c.name for c in clips], train_config=asdict(cfg))
    with model.torch_threads():
        _loop(clips, ck, opt, rng, cfg, out)
    return ck


def _loop(clips, ck, opt, rng, cfg: TrainConfig, out: Path) -> None:
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
    _save(ck, opt, rng, out)
    log.info("saved %s at step %d (loss %.4f)", out, ck.step, ck.meta.get("loss", float("nan")))


def _save(ck: model.Checkpoint, opt: torch.optim.Optimizer, rng: np.random.Generator, out: Path) -> None:
    ck.meta["rng"] = rng.bit_generator.state
    ck.optimizer_state = opt.state_dict()
    model.save(out, ck)
