"""Speech features for lip sync: 13 MFCCs + log energy and their first differences.

Any audio or video file is decoded to mono 16 kHz, loudness-normalised, cut into
25 ms windows every 10 ms (100 feature frames per second; frame t is centred on
t / 100 s) and described by 28 values per frame, standardised per utterance so
that speakers and microphones of different level and colour look alike.
The MFCC is the textbook one (pre-emphasis, Hamming window, power spectrum,
triangular mel filterbank, log, DCT-II), written in numpy/scipy.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
from scipy.fft import dct, rfft

from . import media
from .errors import DoppelError

SAMPLE_RATE = 16000  # Hz, the rate speech is analysed at
FPS = 100  # feature frames per second
HOP = SAMPLE_RATE // FPS  # 160 samples = 10 ms between frames
WINDOW = 400  # 25 ms analysis window
N_FFT = 512  # FFT size (window zero-padded)
N_MELS = 40  # triangular mel filters
N_MFCC = 13  # cepstral coefficients kept (c0..c12)
F_MIN, F_MAX = 20.0, 7600.0  # filterbank range, Hz
PRE_EMPHASIS = 0.97  # first-order high-pass before the FFT
TARGET_DBFS = -23.0  # RMS level speech is normalised to (over its louder half)
SILENCE_DBFS = -55.0  # audio whose louder frames stay under this holds no speech
MIN_SECONDS = 0.2  # shorter audio cannot be lip-synced
N_FEATURES = 2 * (N_MFCC + 1)  # 28: MFCC + log energy, and their deltas
TOP_DB = 80.0  # log-mel floor below the utterance's peak: keeps near-empty bands from dominating
EPS = 1e-10


def load_speech(path: str | os.PathLike) -> np.ndarray:
    """Decode a file's audio as float32 mono 16 kHz, loudness-normalised, shape (N,).

    Raises DoppelError for unreadable, empty, too short or silent audio.
    """
    samples = media.read_audio(path, SAMPLE_RATE)
    check_speech(samples, str(path))
    return normalise_loudness(samples)


def check_speech(samples: np.ndarray, name: str = "audio") -> None:
    """Reject audio that is too short or silent, with a one-line message."""
    if samples.size < MIN_SECONDS * SAMPLE_RATE:
        raise DoppelError(f"{name}: audio is {samples.size / SAMPLE_RATE:.2f} s long; need at least {MIN_SECONDS} s")
    level = loud_level_dbfs(samples)
    if level < SILENCE_DBFS:
        raise DoppelError(f"{name}: audio is silent ({level:.0f} dBFS); need speech")


def frame_rms(samples: np.ndarray) -> np.ndarray:
    """RMS of each 25 ms window every 10 ms, shape (T,), T = ceil(N / HOP)."""
    return np.sqrt((frames(samples) ** 2).mean(1))


def loud_level_dbfs(samples: np.ndarray) -> float:
    """Level (dBFS) of the louder half of the frames: speech level, not pause level."""
    rms = frame_rms(samples)
    loud = rms[rms >= np.median(rms)]
    return float(20 * np.log10(np.sqrt((loud ** 2).mean()) + EPS))


def normalise_loudness(samples: np.ndarray) -> np.ndarray:
    """Scale float32 (N,) audio so its speech sits at TARGET_DBFS, clipped to [-1, 1]."""
    gain = 10 ** ((TARGET_DBFS - loud_level_dbfs(samples)) / 20)
    return np.clip(samples * gain, -1, 1).astype(np.float32)


def frames(samples: np.ndarray) -> np.ndarray:
    """Centred analysis windows (T, WINDOW) of float32 (N,) audio; T = ceil(N / HOP)."""
    x = np.asarray(samples, np.float32).reshape(-1)
    n = -(-x.size // HOP)
    padded = np.pad(x, (WINDOW // 2, WINDOW // 2 + n * HOP - x.size))
    idx = np.arange(WINDOW)[None, :] + HOP * np.arange(n)[:, None]
    return padded[idx]


@lru_cache(maxsize=None)
def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular filters on the HTK mel scale, (n_mels, n_fft // 2 + 1) float32."""
    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    def hz(m):
        return 700 * (10 ** (m / 2595) - 1)
    edges = hz(np.linspace(mel(F_MIN), mel(F_MAX), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1 / rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins - lo) / (mid - lo)
    down = (hi - bins) / (hi - mid)
    return np.maximum(0, np.minimum(up, down)).astype(np.float32)


def mfcc(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """13 MFCCs (T, 13) and log energy (T,) of float32 16 kHz audio (N,)."""
    x = np.asarray(samples, np.float32)
    x = np.append(x[:1], x[1:] - PRE_EMPHASIS * x[:-1])
    win = frames(x) * np.hamming(WINDOW).astype(np.float32)
    power = np.abs(rfft(win, N_FFT, axis=1)) ** 2 / N_FFT
    logmel = np.log(power @ mel_filterbank().T + EPS)
    logmel = np.maximum(logmel, logmel.max() - TOP_DB / 10 * np.log(10))
    ceps = dct(logmel, type=2, norm="ortho", axis=1)[:, :N_MFCC]
    energy = np.log((win ** 2).sum(1) + EPS)
    return ceps.astype(np.float32), energy.astype(np.float32)


def deltas(x: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression first differences over +-width frames of (T, D), same shape."""
    pad = np.pad(x, ((width, width), (0, 0)), mode="edge")
    n = len(x)
    num = sum(k * (pad[width + k:width + k + n] - pad[width - k:width - k + n]) for k in range(1, width + 1))
    return (num / (2 * sum(k * k for k in range(1, width + 1)))).astype(np.float32)


def standardise(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column of (T, D) float; constant columns become 0."""
    mu = x.mean(0, keepdims=True)
    sd = x.std(0, keepdims=True)
    return ((x - mu) / np.where(sd > 1e-6, sd, 1.0)).astype(np.float32)


def features_from_samples(samples: np.ndarray) -> np.ndarray:
    """(T, 28) float32 standardised features at FPS of 16 kHz mono audio (N,), T = ceil(N / HOP)."""
    x = np.asarray(samples, np.float32).reshape(-1)
    if x.size == 0:
        raise DoppelError("audio is empty")
    ceps, energy = mfcc(x)
    static = np.concatenate([ceps, energy[:, None]], axis=1)
    return standardise(np.concatenate([static, deltas(static)], axis=1))


def features(path: str | os.PathLike) -> np.ndarray:
    """Speech features (T, 28) at 100 fps of any audio or video file; see module doc."""
    return features_from_samples(load_speech(path))
