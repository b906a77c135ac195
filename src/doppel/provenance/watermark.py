"""doppel's invisible watermark: a keyed spread-spectrum pattern in the luma of every frame.

Design (measured in benchmarks/watermark.py, described in docs/provenance.md):
- A payload of 48 bits (a 16-bit doppel tag + a 32-bit run id) is coded with four
  extended Golay (24, 12) blocks into 96 bits; each coded bit owns one pattern of an
  orthonormal keyed set over a 32x32 tile, plus one sync pattern with a fixed sign.
- The tile is repeated over a working grid whose shorter side is `work` cells, the
  grid is scaled up to the frame and added to R, G and B alike (a luma-only change), a
  little more on texture than on flat areas (the gain depends on the pixel's neighbourhood
  only, so pixels a swap leaves alone get exactly the mark of the input frame).
  Resizing the video does not move the grid; a crop only shifts the tile (found by
  circular correlation with the sync pattern) and rescales it a little (searched).
- Reading folds the working luma minus its 3x3 median (the picture's prediction: unlike a
  blur it keeps edges out of the residual) modulo the tile, so every tile of the frame
  votes; a video sums the folds of its frames before decoding (soft voting).
- A mark is reported only when the sync peak is far above chance and the decoded
  tag matches: see `FALSE_POSITIVE_RATE`.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass

import numpy as np

DEFAULT_KEY = "doppel-watermark-default-key/1"  # public: anyone may read (and strip) the default mark
KEY_ENV = "DOPPEL_WATERMARK_KEY"  # set by `doppel --watermark-key` or by the user
STRENGTH_ENV = "DOPPEL_WATERMARK_STRENGTH"  # set by `doppel --watermark-strength` or by the user
STRENGTH_RANGE = (0.25, 2.0)  # factors on MarkSettings.strength a user may ask for
# factor for previews (training previews, preview strips): stills for looking at, where the whole mark
# shows on flat and dark areas (the demo's dark suit) and nothing smooths it; they keep label and manifest
PREVIEW_STRENGTH = 0.5
TAG = 0xD0F1  # 16-bit doppel tag in front of the run id
PAYLOAD_BITS = 48
TILE = 32
BAND = 10  # highest spatial frequency of the patterns, cycles per tile
LOW = 3  # lowest spatial frequency, cycles per tile
MEDIAN = 3  # reading: the picture is predicted by a MEDIANxMEDIAN median of the working luma
CLIP = 1.0  # reading: residuals are clipped to +-CLIP levels so edges and texture do not drown the mark
Z_MIN = 5.0  # sync peak, in robust standard deviations, needed to call a mark
SCALES = tuple(round(1.0 - 0.015 * i, 3) for i in range(10))  # content scale searched (a crop enlarges it)
# chance that an unmarked input passes both tests (union bound): each of the shifts and scales
# searched exceeds Z_MIN with probability Q(5) ~ 2.9e-7, and the 16-bit tag then matches by chance
# with probability 2^-16
FALSE_POSITIVE_RATE = TILE * TILE * len(SCALES) * 2.87e-7 * 2.0 ** -16


@dataclass(frozen=True)
class MarkSettings:
    key: str = DEFAULT_KEY  # secret that draws the patterns; the wrong key reads nothing
    work: int = 120  # cells on the frame's shorter side of the working grid
    strength: float = 3.0  # RMS change of luma in 0..255 levels, where the picture has texture
    texture: float = 2.0  # local luma activity (mean |detail|, levels) that gets the full strength
    # share of the strength kept on flat areas (a dark suit, a wall: there it shows); 0.6 before issue 16,
    # but H.264 erases a faint mark on flat areas first, and small videos are mostly flat face
    min_gain: float = 0.8
    max_gain: float = 1.2  # most of the strength added on busy texture (2.0 before: busy clips fell under 40 dB)
    sync_share: float = 0.3  # share of the mark's energy in the sync pattern


@dataclass(frozen=True)
class Reading:
    found: bool  # sync peak over Z_MIN and the tag decoded exactly
    z: float  # sync peak in robust standard deviations (chance level ~3.5)
    payload: int | None  # the 48 decoded bits (tag + run id) when found
    run_id: str | None  # the run id as 8 hex digits when found
    soft: np.ndarray  # (96,) float soft coded bits, positive = 1
    scale: float  # content scale the best sync peak was found at


def key_from_env(key: str | None = None) -> str:
    """The key to use: an explicit one, else $DOPPEL_WATERMARK_KEY, else the package default."""
    return key or os.environ.get(KEY_ENV) or DEFAULT_KEY


def strength_factor(text: str | None) -> float:
    """A --watermark-strength value as a float within STRENGTH_RANGE; ValueError in one line if not."""
    lo, hi = STRENGTH_RANGE
    try:
        f = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"watermark strength must be a number from {lo} to {hi}, got {text!r}") from None
    if not lo <= f <= hi:
        raise ValueError(f"watermark strength must be from {lo} to {hi}, got {text}")
    return f


def strength_from_env() -> float:
    """The factor on the mark's strength: $DOPPEL_WATERMARK_STRENGTH (from `doppel --watermark-strength`),
    else 1."""
    text = os.environ.get(STRENGTH_ENV)
    return 1.0 if not text else strength_factor(text)


def make_payload(run_id: int) -> int:
    return (TAG << 32) | (run_id & 0xFFFFFFFF)


def new_run_id() -> int:
    return int.from_bytes(os.urandom(4), "big")


# --- error correction: extended Golay (24, 12), decoded by soft maximum likelihood ---------

_B = ["110111000101", "101110001011", "011100010111", "111000101101", "110001011011",
      "100010110111", "000101101111", "001011011101", "010110111001", "101101110001",
      "011011100011", "111111111110"]


@functools.cache
def _golay() -> tuple[np.ndarray, np.ndarray]:
    """(4096, 12) messages and their (4096, 24) codewords in {0, 1}."""
    b = np.array([[int(c) for c in row] for row in _B], np.uint8)
    gen = np.concatenate([np.eye(12, dtype=np.uint8), b], axis=1)
    msgs = ((np.arange(4096)[:, None] >> np.arange(11, -1, -1)) & 1).astype(np.uint8)
    return msgs, (msgs @ gen) % 2


def encode(payload: int) -> np.ndarray:
    """48-bit payload -> (96,) coded bits in {0, 1}."""
    msgs, words = _golay()
    blocks = [(payload >> (36 - 12 * i)) & 0xFFF for i in range(4)]
    return np.concatenate([words[v] for v in blocks])


def decode(soft: np.ndarray) -> int:
    """(96,) soft coded bits (positive = 1) -> the most likely 48-bit payload."""
    _, words = _golay()
    signs = words.astype(np.float32) * 2 - 1
    out = 0
    for i in range(4):
        out = (out << 12) | int(np.argmax(signs @ soft[24 * i:24 * i + 24]))
    return out


# --- the keyed patterns ---------------------------------------------------------------------

@functools.cache
def _patterns(key: str) -> np.ndarray:
    """(97, TILE*TILE) float32 orthonormal rows: row 0 is the sync pattern, rows 1.. the bits.

    The patterns hold only spatial frequencies up to BAND cycles per tile (periodic, so the
    tiling has no seams): fine detail is what compression and downscaling remove first.
    """
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    g = np.random.default_rng(seed).standard_normal((97, TILE, TILE))
    f = np.fft.fftfreq(TILE) * TILE
    ring = np.maximum(np.abs(f)[:, None], np.abs(f)[None, :])
    keep = (ring <= BAND) & (ring >= LOW)  # below LOW the reader's high-pass would discard it
    g = np.real(np.fft.ifft2(np.fft.fft2(g) * keep)).reshape(97, -1)
    q, _ = np.linalg.qr(g.T)
    return q.T.astype(np.float32)


@functools.cache
def _tile(key: str, payload: int, sync_share: float) -> np.ndarray:
    """(TILE, TILE) float32 mark of unit RMS."""
    pats = _patterns(key)
    signs = encode(payload).astype(np.float32) * 2 - 1
    bits_w = np.sqrt((1 - sync_share) / 96)
    t = np.sqrt(sync_share) * pats[0] + bits_w * (signs @ pats[1:])
    return (t / np.sqrt(np.mean(t ** 2))).reshape(TILE, TILE)


def _grid(h: int, w: int, work: int, scale: float = 1.0) -> tuple[int, int]:
    s = work / min(h, w) * scale
    return max(TILE, int(round(h * s))), max(TILE, int(round(w * s)))


@functools.lru_cache(maxsize=4)
def _delta(h: int, w: int, key: str, payload: int, s: MarkSettings) -> np.ndarray:
    """The luma change for a frame size before texture masking, (h, w) float32 in levels.

    The pattern does not depend on the picture (so it is cached per size and payload); how
    strongly it is added does (`_gain`). (Cancelling the picture's own correlation with the
    patterns at embedding was tried: it is ~6x below the mark here, so it changed nothing measurable.)
    """
    import cv2
    gh, gw = _grid(h, w, s.work)
    t = _tile(key, payload, s.sync_share)
    grid = np.tile(t, (gh // TILE + 1, gw // TILE + 1))[:gh, :gw]
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) * s.strength


def _gain(luma: np.ndarray, s: MarkSettings) -> np.ndarray:
    """Per-pixel strength factor from local texture: additive noise is visible on flat, smooth areas
    (a dark suit showed a mottled pattern at a constant 3 levels) and hidden on detail."""
    import cv2
    y = luma.astype(np.float32)
    detail = cv2.absdiff(y, cv2.GaussianBlur(y, (0, 0), 1.5))
    # (blurring the detail at half or a quarter of the size instead would be 2-3x faster, but the 0.2% of
    # pixels whose mark then moves by one level flipped the 512x480 attack chain from read to missed:
    # that case has no margin, and x264 turns any change into different decisions)
    activity = cv2.GaussianBlur(detail, (0, 0), 6.0)
    return np.clip(activity / s.texture, s.min_gain, s.max_gain)


_CACHE: dict = {}


def embed(image: np.ndarray, payload: int, settings: MarkSettings = MarkSettings()) -> np.ndarray:
    """Mark an (H, W, 3) uint8 RGB frame with a 48-bit payload; returns a new uint8 frame."""
    import cv2
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    key = (image.shape[:2], settings.key, payload, settings.work, settings.strength, settings.sync_share)
    if key not in _CACHE:
        _CACHE.clear()  # one output at a time: keep only the latest pattern
        _CACHE[key] = _delta(image.shape[0], image.shape[1], settings.key, payload, settings)
    image = np.ascontiguousarray(image)
    d = np.round(_CACHE[key] * _gain(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), settings)).astype(np.int16)
    # image + d on R, G and B, clipped to 0..255: OpenCV's saturating uint8 add and subtract of d's two signs
    # (the same result as int16 arithmetic and a clip, several times faster)
    up = cv2.cvtColor(np.clip(d, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    down = cv2.cvtColor(np.clip(-d, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    return cv2.subtract(cv2.add(image, up), down)


# --- reading ----------------------------------------------------------------------------------

def fold(image: np.ndarray, work: int = MarkSettings.work, scale: float = 1.0) -> np.ndarray:
    """(TILE, TILE) float32: the working luma's residual from its median, clipped, summed modulo the tile."""
    import cv2
    y = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    gh, gw = _grid(*y.shape, work, scale)
    # averaging many pixels per cell: rounding the result to uint8 costs ~0.3 levels, far below the mark
    small = cv2.resize(y, (gw, gh), interpolation=cv2.INTER_AREA)
    # the picture predicted by a median keeps its edges, so they stay out of the residual; a
    # Gaussian high-pass left them in, and that static picture, more than the codec, hid the mark
    # of small videos (the picture does not average out over a video's frames; the mark's noise does)
    res = small.astype(np.float32) - cv2.medianBlur(small, MEDIAN).astype(np.float32)
    res = np.clip(res, -CLIP, CLIP)
    iy = np.arange(gh) % TILE
    ix = np.arange(gw) % TILE
    idx = (iy[:, None] * TILE + ix[None, :]).ravel()
    return np.bincount(idx, weights=res.ravel(), minlength=TILE * TILE).reshape(TILE, TILE).astype(np.float32)


def _sync(f: np.ndarray, key: str) -> tuple[float, int, int]:
    """(z, dy, dx) of the sync pattern's best circular shift in a fold."""
    sync = _patterns(key)[0].reshape(TILE, TILE)
    c = np.real(np.fft.ifft2(np.fft.fft2(f) * np.conj(np.fft.fft2(sync))))
    k = int(np.argmax(c))
    dy, dx = divmod(k, TILE)
    med = np.median(c)
    spread = 1.4826 * np.median(np.abs(c - med)) + 1e-9
    return float((c.flat[k] - med) / spread), dy, dx


def read_fold(f: np.ndarray, key: str, scale: float = 1.0) -> Reading:
    """Decode one fold (of a frame or the sum over a video's frames)."""
    z, dy, dx = _sync(f, key)
    aligned = np.roll(f, (-dy, -dx), axis=(0, 1)).ravel()
    soft = _patterns(key)[1:] @ aligned
    soft = soft / (np.std(soft) + 1e-9)
    payload = decode(soft)
    found = z >= Z_MIN and (payload >> 32) == TAG
    return Reading(found, z, payload if found else None, f"{payload & 0xFFFFFFFF:08x}" if found else None,
                   soft, scale)


def best_scale(folds_by_scale: dict[float, np.ndarray], key: str) -> float:
    return max(folds_by_scale, key=lambda s: _sync(folds_by_scale[s], key)[0])


def read_image(image: np.ndarray, key: str | None = None, work: int = MarkSettings.work) -> Reading:
    """Look for the mark in one RGB frame, searching the crop scales."""
    key = key_from_env(key)
    best = None
    for s in SCALES:
        r = read_fold(fold(image, work, s), key, s)
        if best is None or r.z > best.z:
            best = r
    return best


class FrameReader:
    """Reads a video's mark from RGB frames given one at a time, for one or more keys.

    Every frame is folded once per scale it is needed at: the first `probe` frames at every
    scale in SCALES (each key picks its crop scale on their summed folds), the rest only at
    the scales the keys picked. `doppel detect` feeds it the frames its scan decodes, so the
    video is decoded once; `read_frames` is the same reading over an iterable.
    """

    def __init__(self, keys: list[str], work: int = MarkSettings.work, probe: int = 8):
        self.keys, self.work, self.probe = list(keys), work, probe
        self.head: dict[float, list[np.ndarray]] = {s: [] for s in SCALES}
        self.scales: dict[str, float] | None = None  # key -> scale, once the probe frames are in
        self.folds: dict[float, list[np.ndarray]] = {}

    def add(self, image: np.ndarray) -> None:
        if self.scales is None:
            for s in SCALES:
                self.head[s].append(fold(image, self.work, s))
            if len(self.head[SCALES[0]]) >= self.probe:
                self._choose()
            return
        for s in self.folds:
            self.folds[s].append(fold(image, self.work, s))

    def _choose(self) -> None:
        sums = {s: sum(f) for s, f in self.head.items()}
        self.scales = {k: best_scale(sums, k) for k in self.keys}
        self.folds = {s: list(self.head[s]) for s in set(self.scales.values())}

    def readings(self) -> list[tuple[Reading, list[Reading]]]:
        """Per key (in order): (the video's reading from the summed folds, per-frame readings)."""
        if not self.head[SCALES[0]]:
            raise ValueError("no frames to read a watermark from")
        if self.scales is None:
            self._choose()
        out = []
        for k in self.keys:
            s = self.scales[k]
            folds = self.folds[s]
            out.append((read_fold(np.sum(folds, axis=0), k, s), [read_fold(f, k, s) for f in folds]))
        return out


def read_frames(frames, key: str | None = None, work: int = MarkSettings.work,
                probe: int = 8) -> tuple[Reading, list[Reading]]:
    """Read a sequence of RGB frames: (the video's reading from the summed folds, per-frame readings).

    The crop scale is chosen on the first `probe` frames and kept for the rest.
    """
    reader = FrameReader([key_from_env(key)], work, probe)
    for img in frames:
        reader.add(img)
    return reader.readings()[0]


def payload_of(label: dict | None) -> int | None:
    """The payload a doppel label says its file's watermark carries."""
    p = ((label or {}).get("watermark") or {}).get("payload")
    return int(p, 16) if p else None
