"""Mouth texture for a predicted mouth shape, drawn from the target video's own frames.

Every frame of the target is warped into a canonical lower-face crop (pose
taken out on the eyes and nose). For a predicted shape, the `candidates`
frames whose mouths are nearest are aligned on their mouth points and combined
by a per-pixel weighted median (weights fall with shape distance), which keeps
sharp edges where a mean would ghost. Teeth (bright pixels inside the inner
lip) and then the whole crop are sharpened. The autoencoder variant is
learnt once by `lipsync texture` on the target's frames and stored in the
lip-sync model: an encoder of the crop outside the mouth-and-chin region and a
decoder conditioned on the mouth shape; synthesis only runs the network.
Crops are (S, S, 3) uint8 RGB; shapes are (40,) vectors in template units.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from torch import nn
from tqdm import tqdm

from .. import media
from ..errors import DoppelError
from ..faces import align
from ..faces.landmarks import INNER_LIP_IN_MOUTH
from . import model as lipmodel
from . import shapes as S
from .config import TEXTURE_NAMES, TextureConfig  # noqa: F401 (re-exported)
from .footage import Footage

log = logging.getLogger(__name__)

CROP_CENTRE = np.array([0.52, 0.76])  # template point at the middle of the crop: mouth, a little below
CROP_SPAN = 0.9  # template units across the crop side: nose base to below the chin, jaw to jaw


def template_to_crop(size: int) -> np.ndarray:
    """3x3 matrix from template units to canonical crop pixels."""
    k = size / CROP_SPAN
    return np.array([[k, 0, size / 2 - k * CROP_CENTRE[0]], [0, k, size / 2 - k * CROP_CENTRE[1]], [0, 0, 1]])


def crop_matrices(landmarks: np.ndarray, size: int, smooth: float = 0.0) -> np.ndarray:
    """(N, 2, 3) frame -> crop matrices of landmarks (N, 68, 2), optionally smoothed over time."""
    t = template_to_crop(size)
    mats = np.stack([(t @ S.pose_matrix(lm))[:2] for lm in landmarks])
    return gaussian_filter1d(mats, smooth, axis=0, mode="nearest") if smooth > 0 and len(mats) > 1 else mats


def shape_to_crop(vector: np.ndarray, size: int) -> np.ndarray:
    """(40,) shape in template units -> (20, 2) crop pixels."""
    m = template_to_crop(size)
    return vector.reshape(-1, 2) @ m[:2, :2].T + m[:2, 2]


@dataclass
class Target:
    crops: np.ndarray  # (K, S, S, 3) uint8 canonical lower-face crops of the candidate frames
    shapes: np.ndarray  # (N, 40) mouth shapes in template units
    matrices: np.ndarray  # (N, 2, 3) frame -> crop, smoothed over time
    found: np.ndarray  # (N,) bool: the frame has a tracked face
    mean: np.ndarray  # (40,) the target speaker's mean mouth shape
    rows: np.ndarray | None = None  # (N,) row of each frame in `crops`, -1 when not kept; None: row = frame

    def __post_init__(self):
        if self.rows is None:
            self.rows = np.arange(len(self.shapes))

    def crop(self, j: int) -> np.ndarray:
        """The kept crop of frame j."""
        return self.crops[self.rows[j]]


def candidate_frames(found: np.ndarray, limit: int) -> np.ndarray:
    """Frames whose crops are kept: all when there are at most `limit`, else `limit` found ones spread evenly,
    so memory does not grow with the video's length."""
    if len(found) <= limit:
        return np.arange(len(found))
    idx = np.flatnonzero(found)
    return idx[np.unique(np.linspace(0, len(idx) - 1, limit).round().astype(int))]


def prepare(foot: Footage, cfg: TextureConfig = TextureConfig()) -> Target:
    """Canonical crops (of at most cfg.pool frames) and mouth shapes of every frame of a target video.

    The crops come from foot.frames when kept, else from a second decoding pass that keeps only them."""
    mats = crop_matrices(foot.landmarks, cfg.size, cfg.pose_smooth)
    keep = candidate_frames(foot.found, cfg.pool)
    rows = np.full(len(foot.found), -1)
    rows[keep] = np.arange(len(keep))
    if foot.frames is not None:
        images = ((j, foot.frames[j]) for j in keep)
    else:
        images = ((fr.index, fr.image) for fr in _frames_of(foot.path, len(rows)) if rows[fr.index] >= 0)
    # One block filled in place, not a list of small crops then np.stack: crops kept between the 6 MB
    # frame buffers pin malloc's heap, and the freed frames under them stayed resident (0.8 GB at 60 s).
    crops = np.empty((len(keep), cfg.size, cfg.size, 3), np.uint8)
    n = 0
    for j, image in images:
        crops[n] = align.crop(image, mats[j], cfg.size)
        n += 1
    if n != len(keep):
        raise DoppelError(f"{foot.path}: the video gave {n} of {len(keep)} frames on a second reading")
    vec = S.flat(S.mouth_shapes(foot.landmarks))
    return Target(crops, vec, mats, foot.found, vec[foot.found].mean(0), rows)


def _frames_of(path: str, n: int):
    frames = media.iter_frames(path)
    for fr in tqdm(frames, total=n, desc="mouth candidates", unit="frame", leave=False):
        if fr.index >= n:
            return
        yield fr


def weighted_median(cands: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-pixel weighted median of candidates (n, H, W, C) uint8/float with weights (n,) >= 0.

    Pixels are ordered by luminance (channel mean) and whole colours are picked,
    so the result never mixes channels of different candidates. Same dtype out.
    """
    if cands.ndim != 4 or len(weights) != len(cands):
        raise ValueError(f"expected (n, H, W, C) candidates and n weights, got {cands.shape}, {np.shape(weights)}")
    w = np.asarray(weights, np.float64)
    order = np.argsort(cands.mean(axis=3), axis=0, kind="stable")  # (n, H, W)
    cum = np.cumsum(w[order], axis=0)
    pick = (cum < 0.5 * w.sum()).sum(axis=0)  # first index whose cumulative weight reaches half
    idx = np.take_along_axis(order, pick[None], axis=0)[0]  # (H, W) candidate per pixel
    return np.take_along_axis(cands, idx[None, :, :, None], axis=0)[0]


def shape_weights(dists: np.ndarray) -> np.ndarray:
    """Gaussian weights (n,) of shape distances (n,), width set by the spread of the nearest ones."""
    sigma = max(float(np.median(dists)), 1e-6)
    return np.exp(-0.5 * (dists / sigma) ** 2) + 1e-6


def align_candidate(crop: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Warp a crop (S, S, 3) by the least-squares affine taking mouth points src (20, 2) onto dst."""
    a = np.c_[src, np.ones(len(src))]
    m, *_ = np.linalg.lstsq(a, dst, rcond=None)
    size = crop.shape[1], crop.shape[0]
    return cv2.warpAffine(crop, m.T, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def unsharp(image: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    """Unsharp mask of (H, W, 3) float32 0-255: image + amount * (image - blur)."""
    return image + amount * (image - cv2.GaussianBlur(image, (0, 0), sigma))


def enhance(tex: np.ndarray, shape_px: np.ndarray, cfg: TextureConfig) -> np.ndarray:
    """Teeth enhancement then overall sharpening of a crop (S, S, 3) uint8; shape_px (20, 2) crop pixels."""
    img = tex.astype(np.float32)
    inner = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(shape_px[INNER_LIP_IN_MOUTH]).astype(np.int32)], 1)
    lum = img.mean(2)
    if inner.sum() > 4:
        bright = (inner > 0) & (lum > np.percentile(lum[inner > 0], 50))
        soft = cv2.GaussianBlur(bright.astype(np.float32), (0, 0), 1.0)[..., None]
        img = img + soft * (unsharp(img, cfg.teeth) - img)
    img = unsharp(img, cfg.sharpen)
    return np.clip(img, 0, 255).astype(np.uint8)


class MedianTexture:
    """Candidate-frame weighted-median texture (the paper's method)."""

    def __init__(self, target: Target, cfg: TextureConfig = TextureConfig(), stored: dict | None = None):
        self.t, self.cfg = target, cfg
        self.pool = np.flatnonzero(target.found & (target.rows >= 0))

    def __call__(self, shape: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
        """Crop (S, S, 3) uint8 whose mouth has `shape` (40,) in template units (`own` is not used)."""
        d = np.linalg.norm(self.t.shapes[self.pool] - shape, axis=1)
        near = np.argsort(d)[: self.cfg.candidates]
        dst = shape_to_crop(shape, self.cfg.size)
        cands = np.stack([align_candidate(self.t.crop(self.pool[j]), shape_to_crop(self.t.shapes[self.pool[j]],
                                          self.cfg.size), dst) for j in near])
        return enhance(weighted_median(cands, shape_weights(d[near])), dst, self.cfg)


class MouthAutoencoder(nn.Module):
    """Encoder of the crop outside the lower-face mask + decoder conditioned on the mouth shape.

    The encoder sees the crop with the mouth-and-chin region (the compositor's
    mask) greyed out, so its latent carries light, skin and pose residue but
    not the mouth; the decoder draws the whole crop (B, 3, s, s) in [0, 1]
    from that latent and the normalised mouth shape (B, 40), channels halving
    per upsampling step. Training reconstructs the real crop, mostly inside the mask.
    """

    def __init__(self, size: int = 64, latent: int = 16, width: int = 64):
        super().__init__()
        ups = int(np.log2(size // 4))
        enc: list[nn.Module] = []
        c = 3
        for i in range(ups):
            enc += [nn.Conv2d(c, min(16 * 2 ** i, width), 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c = min(16 * 2 ** i, width)
        self.enc = nn.Sequential(*enc, nn.Flatten(), nn.Linear(c * 16, latent))
        self.fc = nn.Sequential(nn.Linear(2 * S.N_POINTS + latent, 256), nn.ReLU(), nn.Linear(256, width * 16),
                                nn.ReLU())
        dec: list[nn.Module] = []
        c = width
        for _ in range(ups):
            dec += [nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(c, max(c // 2, 16), 3, padding=1),
                    nn.ReLU()]
            c = max(c // 2, 16)
        self.dec = nn.Sequential(*dec, nn.Conv2d(c, 3, 3, padding=1), nn.Sigmoid())
        self.width, self.size, self.latent = width, size, latent

    def forward(self, context: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        z = self.enc(context)
        return self.dec(self.fc(torch.cat([shape, z], 1)).view(len(shape), self.width, 4, 4))


def context_mask(size: int) -> np.ndarray:
    """(size, size) float32 weight of the region the encoder must not see (and the decoder must draw)."""
    from .composite import CompositeConfig, lower_face_mask  # noqa: PLC0415 (composite imports this module)
    return np.clip(lower_face_mask(size, CompositeConfig.feather) * 1.5, 0, 1)


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    """(N, s, s, 3) uint8 -> (N, 3, s, s) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255


def masked_context(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Crops (N, 3, s, s) with the mouth-and-chin region set to mid grey."""
    return x * (1 - mask) + 0.5 * mask


def _gradient_l1(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """L1 of the difference of horizontal and vertical image gradients, weighted by w (1, 1, s, s)."""
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    return ((dx(a) - dx(b)).abs() * w[..., :, 1:]).mean() + ((dy(a) - dy(b)).abs() * w[..., 1:, :]).mean()


def collect(videos: list[str], cfg: TextureConfig, cache_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """Shapes (N, 40) and ae_size crops (N, s, s, 3) of up to ae_frames tracked frames spread over the videos."""
    from . import cache  # noqa: PLC0415
    with tqdm(videos, desc="texture clips", unit="clip", leave=False) as bar:  # closed before an error prints
        datas = [cache.load(v, cache_dir) for v in bar]
    total = sum(int(d.found.sum()) for d in datas)
    chosen = set(np.linspace(0, total - 1, min(cfg.ae_frames, total)).round().astype(int).tolist())
    vecs, crops, seen = [], [], -1
    for v, d in zip(videos, datas):
        mats = crop_matrices(d.landmarks, cfg.size, cfg.pose_smooth)
        vec = S.flat(S.mouth_shapes(d.landmarks))
        for fr in media.iter_frames(v):
            i = fr.index
            if i >= len(d.found) or not d.found[i]:
                continue
            seen += 1
            if seen not in chosen:
                continue
            big = align.crop(fr.image, mats[i], cfg.size)
            crops.append(cv2.resize(big, (cfg.ae_size, cfg.ae_size), interpolation=cv2.INTER_AREA))
            vecs.append(vec[i])
    if len(crops) < 2:
        raise DoppelError("the texture videos show too few tracked faces to learn a mouth texture from")
    return np.array(vecs), np.stack(crops)


def train_autoencoder(videos: list[str], model_path, out, cfg: TextureConfig = TextureConfig(),
                      cache_dir=None) -> dict:
    """Learn the target's mouth autoencoder and store it in the lip-sync model file; returns a summary."""
    ck = lipmodel.load(model_path)
    vecs, crops = collect(videos, cfg, cache_dir)
    mean = vecs.mean(0)
    scale = float((vecs - mean).std() + 1e-9)
    torch.manual_seed(cfg.seed)
    net = MouthAutoencoder(cfg.ae_size, cfg.ae_latent)
    with lipmodel.torch_threads(cfg.ae_threads):
        loss, steps = _fit(net, to_tensor(crops), torch.from_numpy((vecs - mean) / scale).float(), cfg)
    ck.texture = {"state": {k: v.detach().clone() for k, v in net.state_dict().items()},
                  "info": {"size": cfg.ae_size, "latent": cfg.ae_latent, "width": net.width, "mean": mean.tolist(), "scale": scale,
                           "frames": len(crops), "steps": steps, "loss": loss,
                           "videos": [Path(v).name for v in videos]}}
    lipmodel.save(out, ck)
    return {"frames": len(crops), "steps": steps, "loss": loss}


def _fit(net: MouthAutoencoder, y: torch.Tensor, x: torch.Tensor, cfg: TextureConfig) -> tuple[float, int]:
    """Adam on masked L1 + gradient L1 (edges keep the lips sharp), bounded by ae_steps and ae_minutes."""
    mask = torch.from_numpy(context_mask(cfg.ae_size))[None, None]
    w = 0.1 + mask  # the decoder's output only shows inside the mask; outside it still anchors colour
    opt = torch.optim.Adam(net.parameters(), lr=cfg.ae_lr)
    rng = np.random.default_rng(cfg.seed)
    deadline = time.monotonic() + cfg.ae_minutes * 60
    bar = tqdm(total=cfg.ae_steps, desc="texture autoencoder", unit="step")
    net.train()
    step, loss = 0, torch.tensor(float("nan"))
    while step < cfg.ae_steps and time.monotonic() < deadline:
        for g in opt.param_groups:
            g["lr"] = cfg.ae_lr * (1 - 0.9 * step / cfg.ae_steps)
        b = torch.from_numpy(rng.integers(len(y), size=min(cfg.ae_batch, len(y))))
        yb = y[b]
        out = net(masked_context(yb, mask), x[b])
        loss = ((out - yb).abs() * w).mean() + cfg.ae_edge * _gradient_l1(out, yb, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    bar.close()
    log.info("texture autoencoder: loss %.4f after %d steps on %d crops", loss.item(), step, len(y))
    return float(loss.item()), step


class AutoencoderTexture:
    """The stored autoencoder draws the mouth and chin for a shape, in the context of the backing frame's crop."""

    def __init__(self, target: Target, cfg: TextureConfig = TextureConfig(), stored: dict | None = None):
        if not stored:
            raise DoppelError("this lip-sync model has no autoencoder texture; make one with "
                              "'doppel lipsync texture TARGET.mp4 -m LIPMODEL' or use --texture median")
        info = stored["info"]
        self.cfg, self.size = cfg, int(info["size"])
        self.mean, self.scale = np.array(info["mean"]), float(info["scale"])
        self.net = MouthAutoencoder(self.size, int(info["latent"]), int(info["width"]))
        self.net.load_state_dict(stored["state"])
        self.net.eval()
        self.mask = torch.from_numpy(context_mask(self.size))[None, None]
        self.nearest = MedianTexture(target, TextureConfig(size=cfg.size, candidates=1)) if cfg.ae_detail else None

    def detail(self, shape: np.ndarray) -> np.ndarray:
        """High-pass (S, S, 3) float32 of the target frame whose mouth is nearest `shape`, aligned on the mouth:
        the 64 px decoder cannot draw pores and lip lines, and without them its mouth is the blur tell."""
        t = self.nearest.t
        d = np.linalg.norm(t.shapes[self.nearest.pool] - shape, axis=1)
        j = self.nearest.pool[int(np.argmin(d))]
        img = align_candidate(t.crop(j), shape_to_crop(t.shapes[j], self.cfg.size),
                              shape_to_crop(shape, self.cfg.size)).astype(np.float32)
        return img - cv2.GaussianBlur(img, (0, 0), 2.0)

    @torch.no_grad()
    def __call__(self, shape: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
        """Crop (S, S, 3) uint8 drawn for `shape` (40,) in template units, in the context of crop `own`."""
        if own is None:
            raise ValueError("the autoencoder texture needs the backing frame's crop")
        small = cv2.resize(own, (self.size, self.size), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy((np.atleast_2d(shape) - self.mean) / self.scale).float()
        with lipmodel.torch_threads():
            img = self.net(masked_context(to_tensor(small[None]), self.mask), x)[0]
        img = (img.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        img = cv2.resize(img, (self.cfg.size, self.cfg.size), interpolation=cv2.INTER_CUBIC)
        if self.nearest is not None:
            img = np.clip(img + self.cfg.ae_detail * self.detail(shape), 0, 255).astype(np.uint8)
        return enhance(img, shape_to_crop(shape, self.cfg.size), self.cfg)


TEXTURES = {"median": MedianTexture, "autoencoder": AutoencoderTexture}
