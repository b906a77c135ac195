"""Class-neutral degradations of training images, as real-world video does to faces.

Applied alike to real faces and to doppel's blends (so none of them is a
label cue): JPEG at a random quality, an H.264 re-encode through PyAV,
downscale-then-upscale (a small face in a large frame, a resized upload),
blur and sensor-like noise. `degrade` applies one drawn set of operations to
several images (a frame and its previous frame), so the temporal cues see the
same processing on both. Images are (H, W, 3) uint8 RGB.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import av
import cv2
import numpy as np


@dataclass(frozen=True)
class DegradeConfig:
    p_rescale: float = 0.3  # chance of a downscale-upscale
    scale: tuple[float, float] = (0.35, 0.9)  # its range of scale factors
    p_h264: float = 0.2  # chance of an H.264 re-encode
    crf: tuple[int, int] = (20, 38)  # its range of constant rate factors (23 is FF++ c23's level)
    p_jpeg: float = 0.45  # chance of a JPEG re-compression (after the H.264 step, if any)
    quality: tuple[int, int] = (30, 96)  # its range of JPEG qualities
    p_blur: float = 0.15  # chance of a Gaussian blur
    p_noise: float = 0.15  # chance of Gaussian noise
    noise: tuple[float, float] = (1.0, 6.0)  # its range of standard deviations (grey levels)


def rescale(image: np.ndarray, s: float) -> np.ndarray:
    """Down by factor s (area), back up (bilinear): same shape, fewer real pixels."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(8, int(w * s)), max(8, int(h * s))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def h264(images: list[np.ndarray], crf: int) -> list[np.ndarray]:
    """The images as consecutive frames of an in-memory H.264 (yuv420p) clip, decoded back.

    Sides are padded to even sizes for 4:2:0 and cropped again; ~7 ms for a 160-pixel frame.
    """
    h, w = images[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
        s.options = {"crf": str(int(crf)), "preset": "veryfast", "tune": "zerolatency"}
        for img in images:
            pad = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pad), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    buf.seek(0)
    with av.open(buf) as c:
        out = [f.to_ndarray(format="rgb24")[:h, :w] for f in c.decode(video=0)]
    return out if len(out) == len(images) else list(images)


def degrade(images: list[np.ndarray], rng: np.random.Generator, cfg: DegradeConfig = DegradeConfig()) -> list[np.ndarray]:
    """One random chain of degradations applied alike to every image of the list."""
    out = list(images)
    if rng.random() < cfg.p_rescale:
        s = rng.uniform(*cfg.scale)
        out = [rescale(x, s) for x in out]
    if rng.random() < cfg.p_blur:
        sigma = rng.uniform(0.3, 1.2)
        out = [cv2.GaussianBlur(x, (0, 0), sigma) for x in out]
    if rng.random() < cfg.p_noise:
        sd = rng.uniform(*cfg.noise)  # fresh noise per frame, as a sensor makes it
        out = [np.clip(x + rng.normal(0, sd, x.shape), 0, 255).astype(np.uint8) for x in out]
    if rng.random() < cfg.p_h264:
        out = h264(out, int(rng.integers(cfg.crf[0], cfg.crf[1] + 1)))
    if rng.random() < cfg.p_jpeg:
        q = int(rng.integers(cfg.quality[0], cfg.quality[1] + 1))
        out = [jpeg(x, q) for x in out]
    return [np.ascontiguousarray(x) for x in out]
