"""Measures of lip sync shared by training, the benchmark and the tests.

- mouth error and opening correlation of predicted against real mouth shapes;
- audio-video offset: the lag that best lines up a video's mouth opening with
  its audio's loudness, pooled over clips (z-scored per clip) because one 3 s
  clip is too short for a stable peak;
- texture: sharpness (variance of the 3x3 Laplacian, the detector's blur
  statistic, cues.laplacian_variance) of the mouth region, flicker (mean
  frame-to-frame change of the mouth region in the pose-free crop) and the
  lower-lip blur tell (log of face-above-mouth sharpness over lower-lip sharpness).
Shape vectors are (T, 40) in template units, centred on `mean` (40,) unless said.
"""
from __future__ import annotations

import numpy as np

from ..faces.landmarks import CHIN, OUTER_LIP_IN_MOUTH
from . import shapes

MAX_LAG = 8  # video frames searched either side for the audio-video offset


def mouth_error(pred: np.ndarray, real: np.ndarray, mean: np.ndarray) -> float:
    """Mean landmark distance over the mean mouth width of centred shape vectors (T, 40)."""
    p, r = shapes.unflat(pred + mean), shapes.unflat(real + mean)
    width = shapes.mouth_width(mean.reshape(1, -1, 2))[0]
    return float(np.linalg.norm(p - r, axis=2).mean() / width)


def opening(vec: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Inner-lip gap (T,) of shape vectors (T, 40), centred ones when `mean` is given."""
    return shapes.mouth_opening(shapes.unflat(vec if mean is None else vec + mean))


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation, nan when either side is constant."""
    if np.std(a) < 1e-12 or np.std(b) < 1e-12:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def opening_corr(pred: np.ndarray, real: np.ndarray, mean: np.ndarray) -> float:
    """Correlation of the predicted and real inner-lip gap of centred shape vectors (T, 40)."""
    return corr(opening(pred, mean), opening(real, mean))


def shuffled(x: np.ndarray) -> np.ndarray:
    """The shuffled-audio control: rows (T, ...) rolled by half their length, so speech and mouth no longer
    line up while the audio keeps its sounds and amount of speech (GRID sentences all start and end in
    silence, so another sentence's audio would still line up roughly)."""
    return np.roll(x, len(x) // 2, axis=0)


def chin_follow(landmarks: np.ndarray) -> float:
    """Correlation of the chin's drop (point 8, pose removed) with the inner-lip opening over (N, 68, 2) landmarks:
    about as high on a re-synthesised video as on the real one when the jaw moves with the mouth."""
    chin = np.array([(shapes.pose_matrix(lm) @ np.r_[lm[CHIN], 1])[1] for lm in landmarks])
    return corr(chin, shapes.mouth_opening(shapes.mouth_shapes(landmarks)))


def frame_loudness(samples: np.ndarray, rate: int, fps: float, n: int) -> np.ndarray:
    """Log RMS (n,) of one frame period of audio centred on each video frame's time i / fps."""
    hop = rate / fps
    out = np.empty(n)
    for i in range(n):
        seg = samples[max(0, int((i - 0.5) * hop)):max(0, int((i + 0.5) * hop))]
        out[i] = np.log(np.sqrt(np.mean(seg ** 2)) + 1e-6) if seg.size else np.log(1e-6)
    return out


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-9)


def lag_curve(openings: list[np.ndarray], loudness: list[np.ndarray], max_lag: int = MAX_LAG) -> np.ndarray:
    """Pooled correlation (2 * max_lag + 1,) of opening[t] with loudness[t - lag], lag = -max_lag..max_lag."""
    out = []
    for lag in range(-max_lag, max_lag + 1):
        num, cnt = 0.0, 0
        for op, ld in zip(openings, loudness):
            n = min(len(op), len(ld))
            a = op[max(lag, 0): n + min(lag, 0)]
            b = ld[max(-lag, 0): n - max(lag, 0)]
            if len(a) < 3:
                continue
            num += float((_z(a) * _z(b)).sum())
            cnt += len(a)
        out.append(num / max(cnt, 1))
    return np.array(out)


def av_offset(openings: list[np.ndarray], loudness: list[np.ndarray],
              max_lag: int = MAX_LAG) -> tuple[int, float]:
    """(lag in frames, > 0: the mouth moves after the sound; its pooled correlation)."""
    c = lag_curve(openings, loudness, max_lag)
    i = int(np.argmax(c))
    return i - max_lag, float(c[i])


def laplacian_variance(gray: np.ndarray, mask: np.ndarray) -> float:
    """The detector's sharpness statistic (cues.laplacian_variance) of luma over a boolean mask."""
    from ..detect import cues  # noqa: PLC0415 (keeps cv2 and the detector out of light imports)
    return cues.laplacian_variance(gray, mask)


def region_masks(size: int, shape_px: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks (size, size) in a canonical crop: mouth, lower lip, and the face band above the mouth."""
    import cv2  # noqa: PLC0415
    mouth = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mouth, [np.round(shape_px[OUTER_LIP_IN_MOUTH]).astype(np.int32)], 1)
    mouth = cv2.dilate(mouth, np.ones((5, 5), np.uint8)) > 0
    lower = np.zeros((size, size), np.uint8)
    lip = np.r_[shape_px[6:12], shape_px[[0, 12, 19, 18, 17, 16]]]  # outer lower lip 54..48, back along the inner
    cv2.fillPoly(lower, [np.round(lip).astype(np.int32)], 1)
    top = shape_px[:, 1].min()
    above = np.zeros((size, size), bool)
    x0, x1 = int(shape_px[:, 0].min()), int(shape_px[:, 0].max())
    above[max(0, int(top - 0.25 * size)):max(0, int(top - 0.04 * size)), max(0, x0):x1] = True
    return {"mouth": mouth, "lower_lip": lower > 0, "above": above}


def texture_stats(crops: np.ndarray, shape_px: np.ndarray) -> dict[str, float]:
    """Sharpness of the mouth, lower-lip blur tell and flicker of crops (N, S, S, 3) uint8 with mouths (N, 20, 2)."""
    size = crops.shape[1]
    sharp, tell = [], []
    gray = crops.astype(np.float32).mean(3)
    for g, px in zip(gray, shape_px):
        m = region_masks(size, px)
        sharp.append(laplacian_variance(g, m["mouth"]))
        tell.append(np.log((laplacian_variance(g, m["above"]) + 1e-6) / (laplacian_variance(g, m["lower_lip"]) + 1e-6)))
    box = region_masks(size, shape_px.mean(0))["mouth"]
    flick = np.abs(np.diff(gray[:, box], axis=0)).mean() if len(gray) > 1 else float("nan")
    return {"sharpness": float(np.mean(sharp)), "lower_lip_tell": float(np.mean(tell)), "flicker": float(flick)}
