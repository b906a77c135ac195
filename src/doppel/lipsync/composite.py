"""Put a synthesized lower face into a target frame, and choose which target frame shows when.

The canonical crop is warped to the frame's pose and blended through a
feathered lower-face mask by Laplacian-pyramid blending, after a colour
correction that is smoothed over time so the skin tone cannot flicker.
Which target frame backs each output frame: the video plays forward and
backward (ping-pong) so any length of audio is covered without a jump cut;
with `retime`, playback slows during silences so the head rests while the
speaker is quiet.
"""
from __future__ import annotations


import cv2
import numpy as np

from ..faces import align
from ..faces.landmarks import LOWER_JAW, NOSE_BASE
from . import texture
from .config import CompositeConfig  # noqa: F401 (re-exported)

CHIN_MARGIN = 0.05  # template units the mask extends below the jaw, room for a more open mouth
MASK_NARROW = 0.8  # the mask's width relative to the jaw: cheek edges show background when the head turns
REST_SPEED = 0.25  # playback speed of the target during silences with retime
SILENCE_DB = 25.0  # an output frame is silent when its audio is this far under the speech level


def lower_face_mask(size: int, feather: float) -> np.ndarray:
    """Feathered lower-face mask (size, size) float32 in [0, 1] in canonical crop pixels."""
    tpl = align.template()
    jaw = tpl[LOWER_JAW] + [0, CHIN_MARGIN]
    jaw[:, 0] = tpl[51, 0] + MASK_NARROW * (jaw[:, 0] - tpl[51, 0])
    top = tpl[NOSE_BASE][::-1] + [0, 0.02]  # the mask's top edge runs under the nose
    m = texture.template_to_crop(size)
    poly = np.concatenate([jaw, top]) @ m[:2, :2].T + m[:2, 2]
    mask = np.zeros((size, size), np.float32)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1.0)
    k = feather * size
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=max(1, int(k / 2)))
    return np.clip(cv2.GaussianBlur(mask, (0, 0), k / 2), 0, 1)


def laplacian_blend(a: np.ndarray, b: np.ndarray, mask: np.ndarray, levels: int) -> np.ndarray:
    """Blend (H, W, 3) images a (outside) and b (inside) through mask (H, W) in [0, 1]; float32 out."""
    ga, gb, gm = [a.astype(np.float32)], [b.astype(np.float32)], [mask.astype(np.float32)]
    for _ in range(levels):
        if min(ga[-1].shape[:2]) < 8:
            break
        ga.append(cv2.pyrDown(ga[-1]))
        gb.append(cv2.pyrDown(gb[-1]))
        gm.append(cv2.pyrDown(gm[-1]))
    out = gm[-1][..., None] * gb[-1] + (1 - gm[-1][..., None]) * ga[-1]
    for i in range(len(ga) - 2, -1, -1):
        size = ga[i].shape[1], ga[i].shape[0]
        la = ga[i] - cv2.pyrUp(ga[i + 1], dstsize=size)
        lb = gb[i] - cv2.pyrUp(gb[i + 1], dstsize=size)
        out = cv2.pyrUp(out, dstsize=size) + gm[i][..., None] * lb + (1 - gm[i][..., None]) * la
    return out


class Compositor:
    """Stateful per-video compositor (keeps the smoothed colour correction between frames)."""

    def __init__(self, size: int, cfg: CompositeConfig = CompositeConfig()):
        self.cfg = cfg
        self.mask = lower_face_mask(size, cfg.feather)
        self.shift: np.ndarray | None = None

    def colour(self, tex: np.ndarray, own: np.ndarray) -> np.ndarray:
        """Shift the texture's mean colour under the mask to the frame's own, smoothed over time."""
        w = self.mask[..., None]
        diff = ((own.astype(np.float32) - tex) * w).sum((0, 1)) / max(w.sum(), 1e-6)
        a = self.cfg.colour_smooth
        self.shift = diff if self.shift is None else a * self.shift + (1 - a) * diff
        return tex.astype(np.float32) + self.shift

    def __call__(self, frame: np.ndarray, tex: np.ndarray, own: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """Frame (H, W, 3) uint8 with crop `tex` (S, S, 3) blended in at frame->crop `matrix`."""
        size = self.mask.shape[0]
        x0, y0, x1, y1 = align.frame_box(matrix, (0, 0, size, size), frame.shape)
        if x1 - x0 < 4 or y1 - y0 < 4:
            return frame
        shifted = align.shift(matrix, x0, y0)  # crop <- region pixels
        region = frame[y0:y1, x0:x1]
        src = np.clip(self.colour(tex, own), 0, 255)
        warped = align.uncrop(src, shifted, region.shape)
        m = align.uncrop(self.mask, shifted, region.shape)
        out = frame.copy()
        out[y0:y1, x0:x1] = np.clip(laplacian_blend(region, warped, m, self.cfg.levels), 0, 255).astype(np.uint8)
        return out


def pingpong(positions: np.ndarray, n_src: int) -> np.ndarray:
    """Source frame index (int) for real playback positions, bouncing between the first and last frame."""
    if n_src == 1:
        return np.zeros(len(positions), int)
    period = 2 * (n_src - 1)
    q = np.mod(np.round(positions).astype(int), period)
    return np.where(q < n_src, q, period - q)


def playback(n_out: int, n_src: int, speech: np.ndarray | None = None) -> np.ndarray:
    """Target frame index per output frame; `speech` (n_out,) bool slows playback where False."""
    speed = np.ones(n_out) if speech is None else np.where(speech, 1.0, REST_SPEED)
    speed = np.convolve(np.pad(speed, 2, mode="edge"), np.ones(5) / 5, mode="valid")  # ease in and out
    pos = np.concatenate([[0.0], np.cumsum(speed)[:-1]])
    return pingpong(pos, n_src)


def speech_frames(samples: np.ndarray, rate: int, fps: float, n_out: int) -> np.ndarray:
    """(n_out,) bool: the audio under each output frame is within SILENCE_DB of the speech level."""
    hop = rate / fps
    rms = np.array([np.sqrt(np.mean(samples[int(i * hop):int((i + 1) * hop)] ** 2) + 1e-12)
                    for i in range(n_out)])
    db = 20 * np.log10(rms)
    return db > np.percentile(db, 90) - SILENCE_DB
