"""Training the face CNN: Adam on blends, checkpoints with exact resume, validation as it goes.

The learning rate follows a cosine from `lr` to 0; the run's progress is the
larger of steps done / `steps` and seconds spent / `budget_s` (summed over
resumed runs), so a run that the time budget ends still finishes annealed.
Every `every_s` seconds (and at the end, and on Ctrl-C) the weights, the
optimizer, the step, the time spent and the validation history are written to
`state_dir` (doppel.checkpoint: safetensors, no pickle), and `resume=True`
continues from there batch for batch. At each checkpoint the CNN is scored on
the validation crops (held-out identities, real against blends); the weights
with the best validation AUC are what the run returns, so a run that stops
improving does not end on worse weights.

With `seg_weight` > 0 the batches carry a third array, each crop's change mask (the share of its pixels
a blend changed; 0 for a real face, NaN where unknown, as for a face of a fake video), and a 1x1
convolution on the CNN's last feature map learns to say where the face was changed (Face X-ray's and
multi-task detectors' auxiliary localisation target), its loss weighted by `seg_weight`. The head is
training-only: the saved CNN and the scan are those of a plain run.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .. import checkpoint
from ..errors import DoppelError
from . import detectors
from .config import TrainConfig

log = logging.getLogger(__name__)

STATE_FILE = "cnn_state.safetensors"
FORMAT = "doppel-detect-cnn-state/1"
PRETRAINED_LR_SCALE = TrainConfig.pretrained_lr_share  # default learning-rate share of a pretrained backbone (heads: 1)


@dataclass
class FitResult:
    losses: list[float]  # training loss per step of this run (a resumed run: its own steps only)
    steps: int  # steps done in all, resumed runs included
    seconds: float  # training seconds in all
    history: list[dict] = field(default_factory=list)  # per checkpoint: step, seconds, loss, val_auc
    best_step: int = 0  # step of the weights returned (best validation AUC; the last without validation)
    best_auc: float | None = None
    seg: nn.Module | None = None  # the change head as the run left it (with seg_weight; for inspection, not saved)


def val_auc(model: detectors.FaceCNN, val: tuple[np.ndarray, np.ndarray] | None) -> float | None:
    """AUC of the CNN's logits on validation (crops, labels); None without validation data."""
    if val is None or len(set(val[1].tolist())) < 2:
        return None
    from sklearn.metrics import roc_auc_score
    return round(float(roc_auc_score(val[1], detectors.cnn_logits(model, val[0]))), 4)


def _save(path: Path, model, best: dict, opt, step: int, seconds: float, budget_s: float, steps: int,
          history: list, best_step: int, best_auc, seg: nn.Module | None = None) -> None:
    opt_t, groups = checkpoint.optimizer_tensors(opt)
    rng_t, rng_meta = checkpoint.rng_state()
    tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()},
               **({f"seg.{k}": v for k, v in seg.state_dict().items()} if seg is not None else {}),
               **{f"best.{k}": v for k, v in best.items()}, **opt_t, **rng_t}
    header = {"cnn": asdict(model.cfg), "step": step, "seconds": round(seconds, 1), "budget_s": budget_s,
              "steps": steps, "param_groups": groups, "rng": rng_meta, "history": history,
              "best_step": best_step, "best_auc": best_auc, "seg": seg is not None}
    checkpoint.save_state(path, FORMAT, tensors, header)


def change_loss(seg: nn.Module, feats: torch.Tensor, change: np.ndarray) -> torch.Tensor:
    """BCE of the change head's per-cell logits on `feats` (N, C, h, w) against the share of each cell's
    pixels that `change` (N, S, S; NaN: unknown) marks as changed; crops with an unknown mask are left out
    (0 when every one is)."""
    c = torch.as_tensor(np.asarray(change, np.float32))
    known = ~torch.isnan(c).flatten(1).any(1)
    if not bool(known.any()):
        return feats.sum() * 0.0
    target = F.adaptive_avg_pool2d(c[known][:, None], feats.shape[2:])[:, 0]
    return F.binary_cross_entropy_with_logits(seg(feats[known])[:, 0], target)


def fit(model: detectors.FaceCNN, batches: Callable[[int], Iterator[tuple[np.ndarray, ...]]], steps: int,
        lr: float, budget_s: float | None = None, state_dir: str | Path | None = None,
        val: tuple[np.ndarray, np.ndarray] | None = None, every_s: float = 300.0, resume: bool = False,
        seg_weight: float = 0.0, pretrained_lr_share: float = PRETRAINED_LR_SCALE) -> FitResult:
    """Train `model` in place on `batches(first_step)` ((crops uint8, labels 0/1[, change masks]) each) and
    return the run's figures; the model ends holding the best-validated weights (eval mode)."""
    seg = nn.Conv2d(model.head.in_features, 1, 1) if seg_weight > 0 else None
    heads = list(model.head.parameters()) + (list(seg.parameters()) if seg is not None else [])
    # a pretrained backbone (dlib's) learns at `pretrained_lr_share` of `lr`: Adam moves every weight by about the
    # learning rate a step, and dlib's conv weights are ~0.003-0.01, so at the head's rate they were overwritten
    # within a few hundred steps (a first run with every weight at 4e-4 ended at a constant logit by step 380)
    scale = pretrained_lr_share if model.cfg.arch == "dlib" else 1.0
    opt = torch.optim.Adam([{"params": list(model.features.parameters()), "lr_scale": scale},
                            {"params": heads, "lr_scale": 1.0}], lr=lr, weight_decay=1e-4)
    lossf = nn.BCEWithLogitsLoss()
    path = Path(state_dir) / STATE_FILE if state_dir else None
    start, spent, history, best_step, best_auc = 0, 0.0, [], 0, None
    if resume and path is not None and path.is_file():
        tensors, h = checkpoint.load_state(path, FORMAT)
        if detectors.CNNConfig.from_dict(h["cnn"]) != model.cfg:
            raise DoppelError(f"{path} holds a CNN of another shape ({h['cnn']}); cannot resume it as {asdict(model.cfg)}")
        if bool(h.get("seg", False)) != (seg is not None):
            raise DoppelError(f"{path} was trained {'with' if h.get('seg') else 'without'} the change head "
                              "(--seg-weight); resume it the same way")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        if seg is not None:
            seg.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("seg.")})
        checkpoint.load_optimizer(opt, tensors, h["param_groups"])
        checkpoint.set_rng_state(tensors, h["rng"])
        start, spent, budget_s, steps = int(h["step"]), float(h["seconds"]), h["budget_s"], int(h["steps"])
        history, best_step, best_auc = h["history"], int(h["best_step"]), h["best_auc"]
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        log.info("CNN resumed at step %d (%.0f s spent)", start, spent)
    else:
        best = copy.deepcopy(model.state_dict())
    losses: list[float] = []
    t0 = last = time.monotonic()

    def elapsed() -> float:
        return spent + time.monotonic() - t0

    def check(step: int) -> None:
        nonlocal best, best_step, best_auc, last
        auc = val_auc(model, val)
        model.train()
        history.append({"step": step, "seconds": round(elapsed(), 1),
                        "loss": round(float(np.mean(losses[-100:])), 4) if losses else None, "val_auc": auc})
        if auc is None or best_auc is None or auc >= best_auc:
            best, best_step, best_auc = copy.deepcopy(model.state_dict()), step, auc
        if path is not None:
            _save(path, model, best, opt, step, elapsed(), budget_s, steps, history, best_step, best_auc, seg)
        log.info("CNN step %d, loss %s, validation AUC %s (best %s at step %d)", step, history[-1]["loss"], auc,
                 best_auc, best_step)
        last = time.monotonic()

    model.train()
    step = start
    bar = tqdm(total=steps, initial=start, desc="CNN", unit="step", leave=False)
    try:
        for batch in batches(start):
            done = max(step / max(1, steps), elapsed() / budget_s if budget_s else 0.0)
            if step >= steps or (done >= 1.0 and step > start):
                break
            for g in opt.param_groups:
                g["lr"] = 0.5 * lr * g["lr_scale"] * (1 + np.cos(np.pi * min(done, 1.0)))
            crops, labels = batch[0], torch.as_tensor(batch[1], dtype=torch.float32)
            if seg is None:
                loss = lossf(model(detectors.to_tensor(crops)), labels)
            else:  # FaceCNN.forward with the feature map kept for the change head
                feats = model.features(detectors.to_tensor(crops))
                loss = lossf(model.logit(feats), labels) + seg_weight * change_loss(seg, feats, batch[2])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
            if path is not None and time.monotonic() - last >= every_s:
                check(step)
    except KeyboardInterrupt:
        if path is not None and step > start:
            check(step)
        raise
    finally:
        bar.close()
    if not history or history[-1]["step"] != step:
        check(step)
    model.load_state_dict(best)
    model.eval()
    return FitResult(losses, step, round(elapsed(), 1), history, best_step, best_auc, seg)


def validation_crops(faces: list, cfg: detectors.CNNConfig, seed: int,
                     part_share: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """CNN crops of every face (dataset.RealFace) as it is and as a fresh blend (self-blended or X-ray
    from another validation face), both through the same kind of random degradations: (crops, labels),
    drawn from `seed` alone, so every checkpoint is scored on the same inputs; blends through a part mask
    as often as `part_share` says (None: sbi's default). None without faces."""
    from . import augment, dataset
    if not faces:
        return None
    rng = np.random.default_rng([seed, 17])
    crops, labels = [], []
    for f in faces:
        fake = dataset.make_fake(f, [d for d in faces if d.group != f.group], rng, part_share=part_share)[0]
        for y, img in ((0, f.image), (1, fake)):
            crops.append(detectors.cnn_crop(augment.degrade([img], rng)[0], f.landmarks, cfg))
            labels.append(y)
    return np.stack(crops), np.array(labels)
