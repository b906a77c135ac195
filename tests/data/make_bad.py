"""Write the malformed-input corpus to tests/data/bad/ (a few KB each; rerun to regenerate).

    PYTHONPATH=src python tests/data/make_bad.py [OUT_DIR]

Each file is what a user may hand doppel by mistake: nothing, text or an image under a video's name,
a video cut short or with bytes overwritten, sound without pictures, a picture too small to hold a
face. tests/test_bad_inputs.py runs every command on each and expects one line, exit code 2, no
traceback and nothing left behind. Deterministic (fixed seeds); the MP4 bytes depend on the bundled
libav, so the committed files are the reference and this script is how they were made.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent / "bad"


def _video(w: int, h: int, frames: int, seed: int = 0) -> bytes:
    """A small valid H.264 MP4 of smooth moving noise, no audio."""
    import av
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "35", "preset": "ultrafast"}
        for i in range(frames):
            img = np.kron(np.roll(base, i, 1), np.ones((4, 4, 1), np.uint8))[:h, :w]
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def _audio_only() -> bytes:
    """An MP4 (M4A) holding half a second of a 440 Hz AAC tone and no video stream."""
    import av
    buf = io.BytesIO()
    rate = 16000
    t = np.arange(rate // 2) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)[None]
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("aac", rate=rate)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def _png() -> bytes:
    import cv2
    img = np.random.default_rng(1).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


def _corrupted(data: bytes) -> bytes:
    """Every 7th byte of the middle half overwritten: the container opens, the frames are garbage."""
    b = bytearray(data)
    n = len(b)
    for i in range(n // 4, 3 * n // 4, 7):
        b[i] ^= 0xA5
    return bytes(b)


def corpus() -> dict[str, bytes]:
    """File name -> bytes of every malformed input."""
    video = _video(64, 48, 12)
    return {
        "empty.mp4": b"",
        "text.mp4": b"This is a text file, not a video.\n",
        "png.mp4": _png(),
        "truncated.mp4": video[: len(video) // 2],
        "corrupted.mp4": _corrupted(video),
        "audio_only.mp4": _audio_only(),
        "tiny_2x2.mp4": _video(2, 2, 6),
    }


def main(out: Path = HERE) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, data in corpus().items():
        (out / name).write_bytes(data)
        print(f"{out / name}: {len(data)} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
