"""The settings of `doppel swap` (SwapSettings), apart from the converter so its CLI loads no torch, OpenCV
or dlib; swap.convert re-exports them."""
from __future__ import annotations

from dataclasses import dataclass

from ..faces.options import COLORS as COLOR  # noqa: F401 (the choices of --color)
from ..faces.options import MASKS, DetectConfig, MaskConfig  # noqa: F401 (MASKS: the choices of --mask)


@dataclass(frozen=True)
class SwapSettings:
    to: str = "b"  # which decoder draws the new face
    mask: MaskConfig = MaskConfig()  # shape, erode, feather
    color: str = "reinhard"  # colour transfer (faces.blend.COLOR)
    color_smooth: float = 0.3  # EMA weight of each new frame's colour statistics (1 = no smoothing)
    seamless: bool = False  # Poisson-clone the new face before the alpha blend
    sharpen: float = 0.0  # unsharp-mask amount on the new face (0 = off)
    batch: int = 16  # frames whose faces go through the model together
    max_gap: int = 5  # longest run of missing/bad frames whose geometry is interpolated
    jump: float = 0.15  # landmark error vs the neighbours' midpoint, over face size, that marks a frame bad
    smooth: float = 1.0  # Gaussian sigma (frames) of the landmark smoothing along a track (0 = off)
    match_distance: float = 0.6  # largest embedding distance to A's mean face that counts as A
    max_frames: int | None = None  # stop after this many frames (None = all)
    preview: str | None = None  # PNG strip of a few frames, input | swapped
    preview_frames: int = 4  # frames in the preview strip
    crf: int = 18  # H.264 quality of the output video
    threads: int = 1  # torch threads for the model; video decode/encode threads use the other cores
    cache_mb: int = 1024  # keep decoded frames between the passes up to this size, else decode twice
    detect: DetectConfig = DetectConfig()  # face detector and tracker
