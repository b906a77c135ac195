"""`doppel detect train`: learn the CNN, the Fourier model, the fusion and the calibration.

Only real faces are needed: fakes are self-blended or X-ray-blended on the fly
(detect/sbi.py). The sample clips are split by clip/identity into three disjoint
parts: training (CNN, Fourier), fusion (the logistic regression over all scores)
and calibration (Platt scaling and the validation figures in the model card).
data/deepfake/ is never used.
"""
from __future__ import annotations

import collections
import datetime as _dt
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from .. import media
from ..errors import DoppelError
from . import cues, dataset, models, sbi, scan

log = logging.getLogger(__name__)

FUSION_CLIPS = ("retalking_face_4", "driving_d18", "driving_d20", "iplap_129")  # fold A
CALIB_CLIPS = ("retalking_face_5", "driving_d19", "source_s20")  # fold B
CNN_SIDE = 160  # central part of the context window that the CNN crop (coverage 0.7) fits in
BATCH_TIMEOUT = 300  # seconds to wait for a batch from the worker before giving up


@dataclass(frozen=True)
class TrainConfig:
    minutes: float = 12.0  # wall-clock budget; the CNN gets what data gathering and fitting leave
    per_person: int = 60  # LFW photos per person
    video_every: int = 5  # frame spacing of faces taken from a clip
    video_limit: int = 30  # faces per clip
    batch: int = 64  # CNN batch (half real, half fake)
    max_steps: int = 4000  # CNN step cap; the time budget usually ends training first
    lr: float = 2e-3  # CNN peak learning rate (cosine decay)
    chunk: int = 5  # faces per pseudo-clip when calibrating the per-video score
    seed: int = 0  # seeds blends, batches and initialisation
    cnn: models.CNNConfig = models.CNNConfig()  # CNN shape
    fusion_clips: tuple[str, ...] = FUSION_CLIPS  # held out from CNN training, fit the fusion
    calib_clips: tuple[str, ...] = CALIB_CLIPS  # held out from everything else, calibrate and validate


@dataclass
class Split:
    train: list = field(default_factory=list)  # RealFace for the CNN and Fourier model
    fusion: list = field(default_factory=list)  # RealFace (with previous frames) for the fusion
    calib: list = field(default_factory=list)  # RealFace (with previous frames) for calibration


def gather(data_dir: Path, cfg: TrainConfig) -> Split:
    """Real faces of the sample media, split by clip and identity."""
    if not (Path(data_dir) / "faces").is_dir():
        raise DoppelError(f"not the sample media folder (no faces/ in it): {data_dir}")
    split = Split(train=dataset.faces_from_images(dataset.photos(data_dir, cfg.per_person), dataset.photo_group))
    for clip in tqdm(dataset.videos(data_dir), desc="clips", unit="clip"):
        faces = dataset.faces_from_video(clip, cfg.video_every, cfg.video_limit)
        part = split.fusion if clip.stem in cfg.fusion_clips else split.calib if clip.stem in cfg.calib_clips else split.train
        part.extend(faces)
    log.info("faces: %d train, %d fusion, %d calibration", len(split.train), len(split.fusion), len(split.calib))
    if not split.train or not split.fusion or not split.calib:
        raise DoppelError(f"too few faces found in {data_dir} to train")
    return split


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Class-neutral augmentation: JPEG re-compression and mild blur, applied to real and fake alike."""
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    if rng.random() < 0.2:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.0))
    return np.ascontiguousarray(image)


def sample(faces: list, rng: np.random.Generator, fake: bool) -> tuple[np.ndarray, np.ndarray]:
    """One (image, landmarks) training sample at context resolution: real, or a fresh fake."""
    f = faces[int(rng.integers(len(faces)))]
    img = dataset.make_fake(f, faces, rng)[0] if fake else f.image
    img = augment(img, rng)
    return img, f.landmarks


def make_batch(faces: list, cfg: TrainConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(crops (B, S, S, 3) uint8, labels (B,) float32): half fake, random flips."""
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    for j in range(cfg.batch):
        img, lm = sample(faces, rng, j % 2 == 1)
        c = models.cnn_crop(img, lm, cfg.cnn)
        crops.append(c[:, ::-1] if rng.random() < 0.5 else c)
        labels.append(j % 2)
    return np.ascontiguousarray(np.stack(crops)), np.array(labels, np.float32)


_WORKER: dict = {}  # the batch-making process's faces and config (set once by its initializer)


def _init_worker(faces: list, cfg: TrainConfig) -> None:
    torch.set_num_threads(1)
    _WORKER.update(faces=faces, cfg=cfg)


def _worker_batch(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return make_batch(_WORKER["faces"], _WORKER["cfg"], seed)


def batches(faces: list, cfg: TrainConfig, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless batches, made in a second process when there is a second core."""
    faces = [dataset.centre(f, CNN_SIDE) for f in faces]
    seeds = (seed * 1_000_003 + i for i in itertools.count())
    if (os.cpu_count() or 1) < 2:
        yield from (make_batch(faces, cfg, s) for s in seeds)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1, _init_worker, (faces, cfg)) as pool:
        ahead = collections.deque(pool.apply_async(_worker_batch, (next(seeds),)) for _ in range(3))
        while True:  # keep three batches in flight: the worker never runs far ahead of training
            ahead.append(pool.apply_async(_worker_batch, (next(seeds),)))
            yield ahead.popleft().get(timeout=BATCH_TIMEOUT)


def fit_fourier(faces: list, n: int, rng: np.random.Generator) -> models.Linear:
    """Logistic regression on spectra of n real and n fake training faces."""
    x, y = [], []
    for j in tqdm(range(2 * n), desc="spectra", unit="face", leave=False):
        img, lm = sample(faces, rng, j % 2 == 1)
        x.append(models.spectrum(img, lm))
        y.append(j % 2)
    names = [f"r{k + 1}" for k in range(len(x[0]))]
    return models.Linear.fit(np.array(x), np.array(y), names, c=0.1)


def features(det: models.Detectors, faces: list, rng: np.random.Generator, desc: str) -> tuple[np.ndarray, np.ndarray, list]:
    """Fusion features (F columns) of every face as real (0) and as a fresh fake (1), and groups."""
    rows, labels, groups = [], [], []
    for f in tqdm(faces, desc=desc, unit="face", leave=False):
        fake, fake_prev = dataset.make_fake(f, [d for d in faces if d.group != f.group], rng)
        # landmarks of real and fake refitted alike, in one box for both frames as scan does
        box = dataset.refit_box(f.landmarks)
        for img, prev, y in ((f.image, f.prev_image, 0), (fake, fake_prev, 1)):
            feats, _ = scan.face_scores(det, img, dataset.refit(img, box), prev, dataset.refit(prev, box))
            rows.append(scan.feature_row(feats)[0])
            labels.append(y)
            groups.append(f.group)
    return np.array(rows), np.array(labels), groups


def pseudo_clips(scores: np.ndarray, labels: np.ndarray, groups: list, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean score of runs of `chunk` consecutive faces of one clip and one class (a stand-in for videos)."""
    out, out_y = [], []
    for g in dict.fromkeys(groups):
        for y in (0, 1):
            s = scores[(np.array(groups) == g) & (labels == y)]
            for i in range(0, len(s) - chunk + 1, chunk):
                out.append(s[i:i + chunk].mean())
                out_y.append(y)
    return np.array(out), np.array(out_y)


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    ok = np.isfinite(s)
    if len(set(y[ok])) < 2:
        return None
    return round(float(roc_auc_score(y[ok], s[ok])), 4)


def validation(det: models.Detectors, x: np.ndarray, y: np.ndarray, groups: list, cfg: TrainConfig,
               sc: scan.ScanConfig = scan.ScanConfig()) -> dict:
    """Frame-level AUC of every score and cue, and pseudo-clip accuracy of the verdict bands."""
    fused = det.fusion.logit(x)
    auc = {name: _auc(y, x[:, k]) for k, name in enumerate(scan.FUSION_FEATURES)}
    auc["fused"] = _auc(y, fused)
    clip_s, clip_y = pseudo_clips(fused, y, groups, cfg.chunk)
    p = det.platt.prob(clip_s)
    decided = (p >= sc.fake_at) | (p <= sc.real_at)
    correct = ((p >= sc.fake_at) & (clip_y == 1)) | ((p <= sc.real_at) & (clip_y == 0))
    share = lambda m: round(float(m.mean()), 4) if m.size else None  # noqa: E731
    return {"frame_auc": auc, "pseudo_clips": int(len(clip_y)),
            "clip_accuracy_at_0.5": share((p >= 0.5) == clip_y), "clip_decided_share": share(decided),
            "clip_accuracy_when_decided": share(correct[decided])}


def train(data_dir: str | Path, out_dir: str | Path = models.WEIGHTS_DIR, cfg: TrainConfig = TrainConfig(),
          command: str = "") -> models.Detectors:
    """Reproduce every detector from the sample media and write weights + MODEL_CARD.md to `out_dir`."""
    torch.set_num_threads(1)  # measured: 2 threads on 2 busy cores run this small CNN 3x slower
    t0 = time.monotonic()
    deadline = t0 + cfg.minutes * 60
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    split = gather(Path(data_dir), cfg)
    t_gather = time.monotonic() - t0
    # what is left after gathering: CNN ~70%, spectra + fusion + calibration the rest
    cnn_deadline = time.monotonic() + 0.7 * max(deadline - time.monotonic(), 10)
    cnn = models.FaceCNN(cfg.cnn)
    losses = models.train_cnn(cnn, batches(split.train, cfg, cfg.seed), cfg.max_steps, cfg.lr, cnn_deadline)
    log.info("CNN: %d steps, final loss %.3f", len(losses), np.mean(losses[-20:]))
    fourier = fit_fourier(split.train, 300, rng)
    blank = models.Linear(scan.FUSION_FEATURES, [0.0] * 10, [1.0] * 10, [0.0] * 10, 0.0)
    det = models.Detectors(cnn, fourier, blank, models.Platt(1.0, 0.0))
    xa, ya, _ = features(det, split.fusion, rng, "fusion features")
    det.fusion = models.Linear.fit(xa, ya, scan.FUSION_FEATURES, c=0.05)
    xb, yb, gb = features(det, split.calib, rng, "calibration features")
    # Platt on single faces, applied to a video's mean: conservative on purpose. Fitted on
    # pseudo-clip means of our own blends it came out ~3.5x steeper, i.e. sure of itself on
    # exactly the kind of fake it was calibrated on and overconfident on any other.
    det.platt = models.Platt.fit(det.fusion.logit(xb), yb)
    det.meta = _meta(cfg, split, losses, validation(det, xb, yb, gb, cfg), command, time.monotonic() - t0, t_gather)
    det.save(out_dir)
    det.meta["version"] = _version(Path(out_dir))
    det.save(out_dir)
    write_card(Path(out_dir), det)
    return det


def _version(folder: Path) -> str:
    digest = hashlib.sha256((folder / models.CNN_FILE).read_bytes()).hexdigest()[:10]
    return f"detect-{digest}"


def _meta(cfg: TrainConfig, split: Split, losses: list, val: dict, command: str, seconds: float, t_gather: float) -> dict:
    groups = lambda faces: sorted({f.group for f in faces})  # noqa: E731
    return {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command, "config": json.loads(json.dumps(asdict(cfg))),
            "data": {"train_faces": len(split.train), "train_groups": groups(split.train),
                     "fusion_faces": len(split.fusion), "fusion_groups": groups(split.fusion),
                     "calib_faces": len(split.calib), "calib_groups": groups(split.calib)},
            "cnn_steps": len(losses), "cnn_final_loss": round(float(np.mean(losses[-50:])), 4),
            "cnn_params": int(sum(p.numel() for p in models.FaceCNN(cfg.cnn).parameters())),
            "seconds": round(seconds, 1), "gather_seconds": round(t_gather, 1), "validation": val,
            "torch_threads": torch.get_num_threads()}


def write_card(folder: Path, det: models.Detectors) -> None:
    """MODEL_CARD.md beside the weights: data, parameters, validation, the command."""
    m = det.meta
    v = m["validation"]
    aucs = "\n".join(f"| {k} | {a if a is not None else 'n/a'} |" for k, a in v["frame_auc"].items())
    fusion = "\n".join(f"| {n} | {c:+.3f} |" for n, c in zip(det.fusion.names, det.fusion.coef))
    text = CARD.format(m=m, d=m["data"], v=v, aucs=aucs, fusion=fusion, platt=det.platt,
                       cfg=json.dumps(m["config"], indent=1), size=_size(folder))
    with media.atomic_path(folder / "MODEL_CARD.md") as tmp:
        tmp.write_text(text)


def _size(folder: Path) -> str:
    return f"{sum(p.stat().st_size for p in folder.glob('*') if p.is_file()) / 1024:.0f} KiB"


CARD = """# doppel detect: model card

Version `{m[version]}`, made {m[created]} by

    {m[command]}

in {m[seconds]} s ({m[gather_seconds]} s of it finding faces), torch threads: {m[torch_threads]}.
Files: `cnn.safetensors` (CNN weights, config in its metadata) and `models.json`
(CNN config, Fourier and fusion logistic regressions, Platt calibration, this
metadata); {size} in all, no pickle.

## Models
- **Face CNN**: {m[cnn_params]} parameters, 4 conv stages on a 64x64 aligned RGB face crop
  (landmark box = 70% of the crop), one logit. {m[cnn_steps]} Adam steps of 64 crops
  (half fake), final training loss {m[cnn_final_loss]}.
- **Fourier model**: logistic regression on the azimuthally averaged log power
  spectrum (32 radii) of the 64x64 grey inner-face crop.
- **Fusion**: logistic regression over the two model logits and the cues
  (standardised; coefficients below), fitted on the fusion clips.
- **Calibration**: Platt scaling p = sigmoid({platt.a:.3f} * score + {platt.b:.3f}), fitted on
  single-face fused logits of the calibration clips (real and blended) and applied to
  the per-video score (mean over frames of the most suspicious face's fused logit).
  A mean over many frames varies less than one face, so video probabilities are
  conservative: deliberately, since the fakes calibrated on are only doppel's own.

## Data (real faces only; `data/deepfake/` is never used)
- Training: {d[train_faces]} faces from {d[train_groups]}.
- Fusion: {d[fusion_faces]} faces (with their previous frames) from {d[fusion_groups]}.
- Calibration and validation: {d[calib_faces]} faces from {d[calib_groups]}.

Every fake in training, fusion and calibration is made by doppel from those real
faces: a self-blended image (the face blended into a colour-, quality- and
geometry-jittered copy of itself through a deformed landmark-hull mask) or, for
30%, a face-X-ray-style blend of another real face aligned by landmarks. Both
classes get the same JPEG and blur augmentation.

## Validation (calibration clips, never seen in training or fusion)
Frame-level AUC, real faces against doppel's own blends of the same faces:

| score | AUC |
|---|---|
{aucs}

Pseudo-clips ({v[pseudo_clips]}, runs of {m[config][chunk]} faces of one calibration clip, real or all blended): accuracy at p = 0.5: {v[clip_accuracy_at_0.5]}; share outside the
UNCERTAIN band: {v[clip_decided_share]}; accuracy of those: {v[clip_accuracy_when_decided]}.

## Fusion coefficients (per standardised feature; positive = evidence of a fake)
| feature | coefficient |
|---|---|
{fusion}

## Honest limits
- The calibration set holds only doppel's own blends and real clips; the
  probabilities are calibrated for *that* kind of fake. On other
  manipulations (GAN face swaps, reenactment, diffusion) expect them to be
  over- or under-confident: read UNCERTAIN as "look yourself".
- Few identities (5 LFW people, ~20 clips); the models are small and will
  miss well-made fakes. Run `benchmarks/detect_eval.py` on your own labelled
  videos before trusting a figure.

## Configuration
```
{cfg}
```
"""
