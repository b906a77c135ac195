"""File name extensions of the media doppel reads and writes, and the quality it writes video at, in one place.

Kept free of heavy imports (no PyAV, OpenCV or numpy) so that argument checks
and the web app's upload checks can use them without loading the media stack;
`doppel.media` re-exports them. Extensions are lowercase with the dot.
"""
from __future__ import annotations

import os
from pathlib import Path

VIDEO_EXTS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
AUDIO_EXTS = frozenset({".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".opus"})  # sound only; videos carry sound too
OUTPUT_VIDEO_EXTS = frozenset({".mp4"})  # synthesized video is written as H.264 + AAC in MP4
OUTPUT_IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg"})  # the image formats that carry doppel's synthetic label
DEFAULT_CRF = 18  # H.264 quality of written video: visually near-lossless


def is_video_path(path: str | os.PathLike) -> bool:
    """True when the name ends in a video extension (case-insensitive); the file is not opened."""
    return Path(path).suffix.lower() in VIDEO_EXTS


def is_image_path(path: str | os.PathLike) -> bool:
    """True when the name ends in an image extension (case-insensitive); the file is not opened."""
    return Path(path).suffix.lower() in IMAGE_EXTS
