"""Training fakes made from real faces only: self-blended images and face-X-ray blends.

Self-blended image (SBI, Shiohara & Yamasaki 2022): a real face is blended
into a colour- and geometry-jittered copy of itself through a deformed
landmark-hull mask, so the only evidence is the blending itself (boundary,
tone step, resampling). Face X-ray style (Li et al. 2020): the face of one real
image is aligned onto another real face by their landmarks and blended in.
Reenactment style: the mouth or lower face of the same person in another frame
(or photo) is aligned onto the face and blended in, a redrawn mouth of the
right person, as reenactment (Face2Face, NeuralTextures) and lip-sync make.
Generated style: the face redrawn by a small autoencoder (simulate.py) pasted back, so the
evidence is a generator's upsampling traces as well as the blend.

Images are (H, W, 3) uint8 RGB, landmarks (68, 2) float64 pixels, masks
(H, W) float32 in [0, 1]. Every function takes a numpy Generator for its
randomness, so a seed reproduces a data set.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..faces import align
from ..faces.landmarks import BROWS, JAW, LOWER_JAW, NOSE_BASE, OUTER_LIP
from . import augment, cues


FACE_SHAPES = ("hull", "inner", "ellipse")  # face-region shapes a swap pipeline pastes through
PART_SHAPES = ("lower", "mouth")  # regions that reenactment and lip-sync pipelines replace
PART_SHARE = 0.3  # share of blends through a part shape


def mask_points(landmarks: np.ndarray, shape: str) -> np.ndarray:
    """(N, 2) outline of one mask shape: the 68-point hull, the inner face (jaw and lowered brows),
    an ellipse fitted to the landmarks (as elliptical-mask swaps use), the lower face (jaw below
    the cheekbones up to the nostrils, as reenactment renders it) or the mouth (the outer lips
    grown 1.6x about their centre, as lip-sync pastes it)."""
    size = cues.face_scale(landmarks)
    if shape == "lower":
        return np.vstack([landmarks[LOWER_JAW], landmarks[NOSE_BASE] - [0, 0.02 * size]])
    if shape == "mouth":
        lips = landmarks[OUTER_LIP]
        c = lips.mean(0)
        return c + 1.6 * (lips - c)
    if shape == "inner":
        return np.vstack([landmarks[JAW[2:-2]], landmarks[BROWS] + [0, 0.03 * size]])
    if shape == "ellipse":
        (cx, cy), (w, h), a = cv2.fitEllipse(landmarks.astype(np.float32))
        t = np.linspace(0, 2 * np.pi, 36, endpoint=False)
        r = np.deg2rad(a)
        x, y = 0.5 * w * np.cos(t), 0.5 * h * np.sin(t)
        return np.stack([cx + x * np.cos(r) - y * np.sin(r), cy + x * np.sin(r) + y * np.cos(r)], 1)
    return landmarks.copy()


def deformed_mask(landmarks: np.ndarray, shape: tuple[int, int], rng: np.random.Generator,
                  shapes: tuple[str, ...] | None = None, part_share: float | None = None) -> np.ndarray:
    """A random mask shape (of `shapes`; by default a part with probability `part_share` (None: PART_SHARE),
    else a face shape), elastically deformed, grown or shrunk, feathered and scaled by a blend ratio: (H, W)
    float32 in [0, 1] (its maximum is the blend ratio, 1 half of the time)."""
    size = cues.face_scale(landmarks)
    if shapes is None:
        shapes = PART_SHAPES if rng.random() < (PART_SHARE if part_share is None else part_share) else FACE_SHAPES
    name = shapes[int(rng.integers(len(shapes)))]
    pts = mask_points(landmarks, name)
    pts = pts + rng.normal(0, 0.02 * size, pts.shape)
    m = cues.hull_mask(pts, shape).astype(np.float32)
    r = int(rng.uniform(0.0, 0.03 if name in PART_SHAPES else 0.08) * size) + 1  # parts are small: shrink less
    m = cues.morph(m, r, grow=rng.random() >= 0.6)
    m = cv2.GaussianBlur(m, (0, 0), rng.uniform(0.01, 0.06) * size)
    ratio = 1.0 if rng.random() < 0.5 else rng.uniform(0.5, 1.0)
    return ratio * np.clip(m / max(m.max(), 1e-6), 0, 1)


def color_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast, per-channel shift and hue-saturation change."""
    x = image.astype(np.float32)
    x = (x - x.mean()) * rng.uniform(0.8, 1.2) + x.mean() + rng.uniform(-25, 25)
    x = x + rng.uniform(-15, 15, 3)
    hsv = cv2.cvtColor(np.clip(x, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-6, 6)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.75, 1.25), 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def quality_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, sharpen or down-up resampling, as a generated face often differs in resolution."""
    choice = rng.integers(0, 3)
    if choice == 0:
        return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.8))
    if choice == 1:
        b = cv2.GaussianBlur(image, (0, 0), 1.0).astype(np.float32)
        return np.clip(image + rng.uniform(0.3, 1.0) * (image - b), 0, 255).astype(np.uint8)
    return augment.rescale(image, rng.uniform(0.35, 0.8))


def geometry_jitter(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small random scale and shift about the face centre (the pasted face sits slightly off)."""
    size = cues.face_scale(landmarks)
    c = landmarks.mean(0)
    s = rng.uniform(0.95, 1.05)
    t = rng.uniform(-0.03, 0.03, 2) * size
    m = np.array([[s, 0, (1 - s) * c[0] + t[0]], [0, s, (1 - s) * c[1] + t[1]]])
    return cv2.warpAffine(image, m, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT)


def blend(target: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Alpha blend: source where mask is 1, target where 0; uint8 RGB out."""
    a = mask[..., None]
    return np.clip(source.astype(np.float32) * a + target.astype(np.float32) * (1 - a), 0, 255).astype(np.uint8)


def self_blend(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
               part_share: float | None = None) -> np.ndarray:
    """A self-blended fake of `image`: its jittered copy pasted back through a deformed mask."""
    src = image
    if rng.random() < 0.8:
        src = color_jitter(src, rng)
    if rng.random() < 0.7:
        src = quality_jitter(src, rng)
    src = geometry_jitter(src, landmarks, rng)
    return blend(image, src, deformed_mask(landmarks, image.shape[:2], rng, part_share=part_share))


def match_colour(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift `source`'s Lab mean and std inside `mask` (bool) to `target`'s (Reinhard transfer)."""
    s, t = cues.lab(source), cues.lab(target)
    ms, ss = s[mask].mean(0), s[mask].std(0) + 1e-3
    mt, st = t[mask].mean(0), t[mask].std(0) + 1e-3
    out = (s - ms) / ss * st + mt
    rgb = cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(rgb * 255, 0, 255).astype(np.uint8)


def xray_blend(target: np.ndarray, t_landmarks: np.ndarray, source: np.ndarray, s_landmarks: np.ndarray,
               rng: np.random.Generator, part_share: float | None = None) -> np.ndarray:
    """Face X-ray style fake: `source`'s face aligned onto `target`'s landmarks and blended in."""
    m = align.umeyama(s_landmarks, t_landmarks)[:2]
    warped = cv2.warpAffine(source, m, target.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    hull = cues.hull_mask(t_landmarks, target.shape[:2]) > 0
    if rng.random() < 0.7:
        warped = match_colour(warped, target, hull)
    if rng.random() < 0.5:
        warped = quality_jitter(warped, rng)
    return blend(target, warped, deformed_mask(t_landmarks, target.shape[:2], rng, part_share=part_share))


def reenact_blend(target: np.ndarray, t_landmarks: np.ndarray, source: np.ndarray, s_landmarks: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Reenactment-style fake: the mouth or lower face of `source`, the same person in another frame or
    photo, aligned onto `target` by the lower face's landmarks (jaw, nose base, lips) and blended in
    through a part mask; colour-matched 70% of the time, softened (`quality_jitter`) half of it."""
    pts = np.r_[LOWER_JAW, NOSE_BASE, OUTER_LIP]
    m = align.umeyama(s_landmarks[pts], t_landmarks[pts])[:2]
    warped = cv2.warpAffine(source, m, target.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.7:
        warped = match_colour(warped, target, cues.hull_mask(t_landmarks, target.shape[:2]) > 0)
    if rng.random() < 0.5:
        warped = quality_jitter(warped, rng)
    return blend(target, warped, deformed_mask(t_landmarks, target.shape[:2], rng, PART_SHAPES))


GENERATED_WHOLE = 0.2  # share of generated fakes that are the whole redrawn crop (no seam: a generated frame)


def generated_blend(image: np.ndarray, landmarks: np.ndarray, redraw, rng: np.random.Generator,
                    part_share: float | None = None) -> np.ndarray:
    """Generated-style fake: `redraw(image)` (a simulate.Simulator's redraw: a generator's traces)
    blended back through a deformed mask, colour-jittered 30% of the time; `GENERATED_WHOLE` of the
    time the redrawn crop itself, as a talking-head generator draws the whole frame."""
    src = redraw(image)
    if rng.random() < GENERATED_WHOLE:
        return src
    if rng.random() < 0.3:
        src = color_jitter(src, rng)
    return blend(image, src, deformed_mask(landmarks, image.shape[:2], rng, part_share=part_share))
