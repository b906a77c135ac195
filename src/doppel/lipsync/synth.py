"""`doppel lipsync VIDEO AUDIO -m LIPMODEL -o OUTPUT`: the target video, its mouth following new speech.

Steps: speech features -> LSTM mouth shapes at 100 Hz (plus the target's own
mean shape) -> for each output frame a lower-face texture for that shape ->
composite into the target frame -> H.264 with the new audio, labelled
synthetic. Output length follows the audio: a shorter audio cuts the video, a
longer one plays the video forward and backward (ping-pong) as long as needed.
Memory does not grow with the target's length: tracking keeps landmarks only,
the texture keeps crops of at most TextureConfig.pool frames, and compositing
reads the target's frames again through a bounded footage.FrameReader.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d
from tqdm import tqdm

from .. import audio, interrupt, media, provenance
from ..errors import DoppelError
from ..faces import align
from ..faces.landmarks import MOUTH
from . import composite, footage, model
from . import texture as texmod
from .config import LipsyncConfig  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class LipsyncResult:
    """What `lipsync` wrote; `to_json()` leaves out the per-frame arrays."""
    output: str
    frames: int  # output frames
    fps: float
    seconds: float  # of output video (the speech's length)
    compute_s: float  # wall time
    speed: float  # seconds of video per second of compute
    source_frames: np.ndarray  # (frames,) the target frame each output frame was drawn on
    mouths: np.ndarray  # (frames, 40) the mouth shape drawn on each output frame (flattened landmarks)

    def to_json(self) -> dict:
        return {"output": self.output, "frames": self.frames, "fps": round(self.fps, 3),
                "seconds": round(self.seconds, 3), "compute_s": round(self.compute_s, 2), "speed": round(self.speed, 3)}
AUDIO_OUT_RATE = 48000  # the new audio is muxed at this rate, from the original file
PREVIEW_FRAMES = 6  # frames in the --preview strip
PREVIEW_HEIGHT = 256  # pixels, each preview tile


def predict_shapes(ck: model.Checkpoint, feats: np.ndarray, smooth: float) -> np.ndarray:
    """Speaker-centred mouth shape vectors (T, 40) at 100 Hz for features (T, 28)."""
    vec = ck.pca.decode(model.predict(ck.model, feats))
    return gaussian_filter1d(vec, smooth, axis=0, mode="nearest") if smooth > 0 else vec


def output_shapes(pred100: np.ndarray, mean: np.ndarray, n_out: int, fps: float) -> np.ndarray:
    """Mouth shape (n_out, 40) in template units for each output frame (time i / fps)."""
    k = np.minimum(np.round(np.arange(n_out) / fps * audio.FPS).astype(int), len(pred100) - 1)
    return pred100[k] + mean


def lipsync(video: str | os.PathLike, speech_path: str | os.PathLike, model_path: str | os.PathLike,
            out: str | os.PathLike, cfg: LipsyncConfig = LipsyncConfig(),
            preview: str | os.PathLike | None = None) -> LipsyncResult:
    """Write the lip-synced video; returns counts, timings and what was drawn."""
    if cfg.texture not in texmod.TEXTURES:
        raise DoppelError(f"unknown texture {cfg.texture!r}; choose from {', '.join(texmod.TEXTURES)}")
    t0 = time.monotonic()
    speech = audio.load_speech(speech_path)
    ck = model.load(model_path)
    foot = footage.load(video, cfg=cfg.detect)
    target = texmod.prepare(foot, cfg.tex)
    seconds = len(speech) / audio.SAMPLE_RATE
    n_out = math.ceil(seconds * foot.fps - 1e-6)
    talking = composite.speech_frames(speech, audio.SAMPLE_RATE, foot.fps, n_out) if cfg.retime else None
    src = composite.playback(n_out, len(foot.found), talking)
    mouths = output_shapes(predict_shapes(ck, audio.features_from_samples(speech), cfg.shape_smooth),
                           target.mean, n_out, foot.fps)
    draw = texmod.TEXTURES[cfg.texture](target, cfg.tex, ck.texture)
    keep = preview_indices(n_out) if preview else []
    shown = _write(out, foot, target, src, mouths, draw, cfg, speech_path, seconds, keep,
                   dict(parent=video, video=Path(video).name, audio=Path(speech_path).name,
                        model=Path(model_path).name, texture=cfg.texture, retime=cfg.retime))
    if preview:
        write_preview(preview, shown, foot, target, src, mouths, cfg.tex.size)
    took = time.monotonic() - t0
    return LipsyncResult(str(out), n_out, foot.fps, seconds, took, seconds / took, src, mouths)


def _write(out, foot, target, src, mouths, draw, cfg: LipsyncConfig, speech_path, seconds, keep,
           details: dict) -> dict[int, np.ndarray]:
    """Encode every output frame (labelled with `details`); returns the frames whose index is in `keep`."""
    shown = {}
    comp = composite.Compositor(cfg.tex.size, cfg.comp)
    sound = (media.read_audio(speech_path, AUDIO_OUT_RATE), AUDIO_OUT_RATE)
    parent = details.pop("parent")
    with provenance.video_writer(out, foot.fps, "lipsync", details, parent=parent, crf=cfg.crf, audio=sound,
                                 max_duration=seconds) as w, footage.FrameReader(foot.path, foot.times) as frames:
        for i in tqdm(range(len(src)), desc="lipsync", unit="frame"):
            interrupt.check()
            j = src[i]
            frame = frames[j]
            if target.found[j]:
                own = align.crop(frame, target.matrices[j], cfg.tex.size)
                frame = comp(frame, draw(mouths[i], own), own, target.matrices[j])
            w.write(frame)
            if i in keep:
                shown[i] = frame
        log.info("encoding %.0f s of audio and signing %s", seconds, Path(out).name)  # no bar: 9 s a minute, loaded CPU
    return shown


def preview_indices(n_out: int) -> list[int]:
    return sorted(set(np.linspace(0, n_out - 1, min(PREVIEW_FRAMES, n_out)).astype(int).tolist()))


def mouth_in_frame(vector: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """(20, 2) frame pixels of a shape vector (40,) in template units, placed by a frame->crop matrix."""
    return align.transform_points(texmod.shape_to_crop(vector, size), align.invert(matrix))


def write_preview(path, shown: dict, foot, target, src, mouths, size: int) -> None:
    """A labelled strip of output frames: predicted mouth landmarks green, the target frame's real ones red."""
    tiles = []
    for i, img in sorted(shown.items()):
        j = src[i]
        img = img.copy()
        for pts, colour in ((foot.landmarks[j][MOUTH], (255, 60, 60)),
                            (mouth_in_frame(mouths[i], target.matrices[j], size), (60, 255, 60))):
            for x, y in pts:
                cv2.circle(img, (int(round(x)), int(round(y))), max(2, img.shape[0] // 300), colour, -1)
        tiles.append(_face_tile(img, foot.landmarks[j]))
    provenance.write_labeled_image(path, np.concatenate(tiles, axis=1), "lipsync-preview")


def _face_tile(img: np.ndarray, lm: np.ndarray) -> np.ndarray:
    x0, y0 = lm.min(0)
    x1, y1 = lm.max(0)
    pad = 0.25 * max(x1 - x0, y1 - y0)
    h, w = img.shape[:2]
    a, b = int(max(0, y0 - pad)), int(min(h, y1 + pad))
    c, d = int(max(0, x0 - pad)), int(min(w, x1 + pad))
    tile = img[a:b, c:d]
    return cv2.resize(tile, (round(tile.shape[1] * PREVIEW_HEIGHT / tile.shape[0]), PREVIEW_HEIGHT))
