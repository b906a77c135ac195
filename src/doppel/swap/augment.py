"""Training augmentation: the classic denoising random warp plus a random affine.

The autoencoder learns to undo a smooth local distortion: a 5x5 grid of points
over the crop is shifted by Gaussian noise, the input is the crop warped
through the shifted grid (offsets interpolated to dense maps, cv2.remap), and
the target is the same crop moved by the best similarity transform (Umeyama)
from the shifted grid to the regular one, so input and target differ only by
the non-rigid part of the warp. Before that a random rotation, zoom, shift and
horizontal flip move input and target alike.

Images here are float32 (S, S, C) in [0, 1]; channels past the first three
(a loss-weight map, a mask) follow the target warp, so they stay registered
with the target. All functions take an np.random.Generator and are pure.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

import torch

from .. import media
from ..errors import DoppelError
from ..faces import align
from ..faces.landmarks import LEFT_EYE, MOUTH, RIGHT_EYE
from ..faces.mask import fill_hull
from ..faceset import FaceSet

log = logging.getLogger(__name__)

GRID = 5  # points per side of the warp grid
# horizontal flip swaps left/right landmarks; only hull masks are drawn from them, so no re-indexing needed


@dataclass(frozen=True)
class AugmentConfig:
    warp_sigma: float = 0.125  # grid-point shift s.d. as a fraction of the grid spacing (classic: 5 px on a 40 px grid)
    rotation: float = 10.0  # max rotation, degrees (uniform in +-)
    zoom: float = 0.05  # max zoom, fraction (uniform in +-)
    shift: float = 0.05  # max shift, fraction of the crop side (uniform in +-)
    flip: float = 0.5  # probability of a horizontal flip


def _check(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[0] != image.shape[1] or image.dtype != np.float32:
        raise ValueError(f"expected (S, S, C) float32 image, got {image.shape} {image.dtype}")


def regular_grid(size: int) -> np.ndarray:
    """The (5, 5, 2) regular grid (x, y) in crop pixels: corner points sit on the crop's outer pixel edges."""
    g = np.linspace(0, size, GRID) - 0.5
    return np.stack(np.meshgrid(g, g), -1)


def shifted_grid(size: int, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """The regular grid with every point moved by N(0, (sigma * spacing)^2) in x and y."""
    spacing = size / (GRID - 1)
    return regular_grid(size) + rng.normal(0.0, sigma * spacing, (GRID, GRID, 2))


def dense_maps(grid: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear interpolation of (5, 5, 2) source points to (S, S) float32 remap maps.

    As in the classic code: resize the 5x5 grid to 5/4 of the crop and cut the
    middle, which puts grid node i at output pixel i * S/4 - 0.5.
    """
    big, pad = size * GRID // (GRID - 1), size // (2 * (GRID - 1))
    maps = [cv2.resize(grid[..., c].astype(np.float32), (big, big))[pad:pad + size, pad:pad + size]
            for c in (0, 1)]
    return maps[0], maps[1]


def warp_pair(image: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Input (first 3 channels, warped through `grid`) and target (all channels, best similarity).

    `grid` (5, 5, 2) holds for each regular grid node the source pixel it samples.
    """
    _check(image)
    size = image.shape[0]
    mx, my = dense_maps(grid, size)
    warped = cv2.remap(image[..., :3], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mat = align.umeyama(grid.reshape(-1, 2), regular_grid(size).reshape(-1, 2))[:2]
    target = cv2.warpAffine(image, mat, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped, target.reshape(size, size, image.shape[2])


def random_warp(image: np.ndarray, rng: np.random.Generator, sigma: float = 0.125) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) of the denoising warp for one (S, S, C) float32 image."""
    return warp_pair(image, shifted_grid(image.shape[0], rng, sigma))


def affine_matrix(size: int, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """A random 2x3 rotation + zoom + shift about the crop centre, with a horizontal flip half the time."""
    angle = rng.uniform(-cfg.rotation, cfg.rotation)
    scale = 1.0 + rng.uniform(-cfg.zoom, cfg.zoom)
    c = (size - 1) / 2
    mat = cv2.getRotationMatrix2D((c, c), angle, scale)
    mat[:, 2] += rng.uniform(-cfg.shift, cfg.shift, 2) * size
    if rng.random() < cfg.flip:
        mat[0] = -mat[0]
        mat[0, 2] += size - 1
    return mat


def random_transform(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Apply one random affine (rotation, zoom, shift, flip) to every channel of an (S, S, C) image."""
    _check(image)
    size = image.shape[0]
    out = cv2.warpAffine(image, affine_matrix(size, rng, cfg), (size, size),
                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(image.shape)


def augment(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()
            ) -> tuple[np.ndarray, np.ndarray]:
    """Random affine then random warp: (input (S, S, 3), target (S, S, C)), float32 in [0, 1]."""
    return random_warp(random_transform(image, rng, cfg), rng, cfg.warp_sigma)


def region_maps(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(S, S, 2) float32: channel 0 marks eyes and mouth (dilated hulls), channel 1 the face hull.

    `landmarks` are (68, 2) crop pixels (align.transform_points(record landmarks, record matrix)).
    """
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lm.shape}")
    parts = np.max([fill_hull(lm[sl], (size, size)) for sl in (RIGHT_EYE, LEFT_EYE, MOUTH)], axis=0)
    k = max(3, size // 16) | 1
    parts = cv2.dilate(parts, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    hull = fill_hull(lm, (size, size))
    return np.stack([parts, hull], -1).astype(np.float32)


@dataclass(frozen=True)
class FaceData:
    """A face set held in memory: crops (N, S, S, 3) uint8 and region maps (N, S, S, 2) uint8."""
    crops: np.ndarray
    regions: np.ndarray
    size: int
    coverage: float


def load_faces(faceset: FaceSet) -> FaceData:
    """Read every crop of a face set; an unreadable or wrong-sized crop is skipped with a warning."""
    crops, regions = [], []
    for rec in faceset.faces:
        try:
            crop = faceset.load_crop(rec)
        except media.MediaError as e:
            log.warning("skipping unreadable face %s: %s", rec.file, e)
            continue
        if crop.shape != (faceset.size, faceset.size, 3):
            log.warning("skipping face %s: shape %s, face set size is %d", rec.file, crop.shape, faceset.size)
            continue
        lm = align.transform_points(rec.landmarks_array, rec.matrix_array)
        crops.append(crop)
        regions.append(region_maps(lm, faceset.size).astype(np.uint8))
    if not crops:
        raise DoppelError(f"face set has no readable faces: {faceset.root}")
    return FaceData(np.stack(crops), np.stack(regions), faceset.size, faceset.coverage)


def batch_indices(n: int, batch: int, step: int, seed: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """Faces of one step: a fresh permutation each epoch, derived from (seed, epoch) alone.

    Positions run (step * world + rank) * batch onwards, so ranks take strided
    shares of each epoch and any step can be recomputed without the ones before.
    """
    pos = np.arange((step * world + rank) * batch, (step * world + rank + 1) * batch)
    epochs = pos // n
    out = np.empty(batch, np.int64)
    for e in np.unique(epochs):
        sel = epochs == e
        out[sel] = np.random.default_rng([seed, int(e)]).permutation(n)[pos[sel] % n]
    return out


def make_batch(data: FaceData, idx: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
               ) -> dict[str, torch.Tensor]:
    """Augmented batch: inputs (B, 3, S, S), targets (B, 3, S, S), weights and masks (B, 1, S, S), float32."""
    ins, tgts = [], []
    for i in idx:
        img = np.concatenate([data.crops[i], data.regions[i]], -1).astype(np.float32)
        img[..., :3] /= 255.0
        x, y = augment(img, rng, cfg)
        ins.append(x)
        tgts.append(y)
    x = torch.from_numpy(np.stack(ins)).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(np.stack(tgts)).permute(0, 3, 1, 2).contiguous()
    return {"input": x, "target": y[:, :3].contiguous(), "parts": y[:, 3:4].contiguous(),
            "mask": y[:, 4:5].contiguous()}


class StepBatches(torch.utils.data.Dataset):
    """Item `step` is that step's batch of both people: {"a": batch, "b": batch}.

    Faces and augmentation are drawn from (seed, person, step, rank) alone, so a
    resumed run, or one with a different number of loader workers, sees exactly
    the same data.
    """

    def __init__(self, a: FaceData, b: FaceData, batch: int, seed: int, rank: int = 0, world: int = 1,
                 cfg: AugmentConfig = AugmentConfig()):
        self.people = {"a": a, "b": b}
        self.batch, self.seed, self.rank, self.world, self.cfg = batch, seed, rank, world, cfg

    def __len__(self) -> int:
        return 2 ** 62  # indexed by step; the sampler decides which steps are drawn

    def __getitem__(self, step: int) -> dict[str, dict[str, torch.Tensor]]:
        out = {}
        for k, (who, data) in enumerate(self.people.items()):
            idx = batch_indices(len(data.crops), self.batch, step, self.seed + 7919 * k, self.rank, self.world)
            rng = np.random.default_rng([self.seed, k, step, self.rank])
            out[who] = make_batch(data, idx, rng, self.cfg)
        return out


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)  # workers run in parallel already; OpenCV's own pool would oversubscribe


def loader(dataset: StepBatches, start: int, stop: int, workers: int) -> torch.utils.data.DataLoader:
    """Batches for steps start..stop-1 in order, made by `workers` processes ahead of the training step.

    Workers are spawned, not forked: a fork inherits OpenCV's and OpenMP's thread
    pools mid-use (after face detection in the same process, say) and can hang.
    """
    extra = dict(worker_init_fn=_worker_init, prefetch_factor=2, multiprocessing_context="spawn") if workers else {}
    # its own generator: the loader draws a base seed per iterator, which must not move the global torch RNG
    return torch.utils.data.DataLoader(dataset, batch_size=None, sampler=range(start, stop), num_workers=workers,
                                       generator=torch.Generator().manual_seed(dataset.seed), **extra)
