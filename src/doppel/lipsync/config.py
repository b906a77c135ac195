"""The settings of `doppel lipsync` (synthesis, `train`, `texture`): light to import (no torch, scipy, OpenCV
or dlib), so `doppel lipsync --help` starts fast. model, train, texture, composite and synth re-export these."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..faces.options import DetectConfig
from ..filetypes import DEFAULT_CRF

TEXTURE_NAMES = ("median", "autoencoder")  # the keys of texture.TEXTURES, in order (tests/lipsync check)


def _n_features() -> int:
    from ..audio import N_FEATURES  # noqa: PLC0415 (audio imports scipy; only a LipConfig() needs it)
    return N_FEATURES


@dataclass(frozen=True)
class LipConfig:
    # a factory, so the CLI reads the other defaults off the class without loading audio
    n_features: int = field(default_factory=_n_features)  # audio feature size per frame (28)
    hidden: int = 60  # LSTM units, as in the paper
    layers: int = 1  # stacked LSTM layers
    n_coeffs: int = 12  # mouth PCA coefficients predicted
    delay: int = 20  # output lags input by this many 10 ms frames (200 ms)
    dropout: float = 0.0  # dropout on the LSTM output while training


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 4000  # optimizer steps in all (a resumed run continues up to this)
    minutes: float = 10.0  # wall-clock budget for this run
    seq_len: int = 300  # window length in 10 ms frames
    batch: int = 16  # windows per step
    lr: float = 3e-3  # Adam learning rate (decays to 10% by the last step)
    noise: float = 0.6  # std of Gaussian noise added to the standardised features
    channel: float = 0.5  # per-window random scale (1 +- this) and offset of each feature: voice/mic variety
    save_every: int = 500  # steps between checkpoints
    seed: int = 0  # seed of window sampling and initial weights
    detect: DetectConfig = DetectConfig()  # face finder of the speaker videos
    holdout_fraction: float = 0.0  # share of clips held out automatically when none are named


@dataclass(frozen=True)
class TextureConfig:
    size: int = 128  # side of the canonical lower-face crop, pixels
    candidates: int = 8  # n nearest target frames combined per output frame
    teeth: float = 1.2  # unsharp-mask strength on bright pixels inside the inner lip
    sharpen: float = 0.5  # unsharp-mask strength over the whole crop
    pose_smooth: float = 1.0  # std (frames) of the temporal smoothing of crop matrices
    ae_steps: int = 3000  # training steps of the autoencoder texture ('lipsync texture')
    ae_minutes: float = 8.0  # wall-clock budget of the autoencoder's training
    ae_frames: int = 3000  # at most this many target frames to learn from, spread over the videos
    ae_size: int = 64  # side of the autoencoder's input and output (output upscaled to `size`)
    ae_latent: int = 16  # size of the encoder's latent (appearance outside the mouth and chin)
    ae_batch: int = 16  # crops per autoencoder step
    ae_lr: float = 2e-3  # Adam learning rate (decays to 10%)
    ae_edge: float = 1.0  # weight of the image-gradient L1 (sharp lip edges) beside the pixel L1
    ae_threads: int = 1  # torch CPU threads while training it
    ae_detail: float = 1.0  # high-pass detail of the nearest-shape target frame added to the decoder's output
    seed: int = 0  # seed of the autoencoder's training
    pool: int = 3000  # at most this many target frames kept as mouth candidates (49 KB each at size 128)


@dataclass(frozen=True)
class CompositeConfig:
    levels: int = 4  # Laplacian pyramid levels
    feather: float = 0.08  # mask feather, fraction of the crop side
    colour_smooth: float = 0.8  # weight of the previous frame in the colour correction (0 = none)


@dataclass(frozen=True)
class LipsyncConfig:
    texture: str = "median"  # mouth texture: a key of texture.TEXTURES (TEXTURE_NAMES)
    retime: bool = False  # slow the target's playback during silences so the head rests
    shape_smooth: float = 2.0  # std (10 ms frames) of the temporal smoothing of predicted shapes
    crf: int = DEFAULT_CRF  # H.264 quality of the output
    tex: TextureConfig = field(default_factory=TextureConfig)  # texture settings
    comp: CompositeConfig = field(default_factory=CompositeConfig)  # blend settings
    detect: DetectConfig = field(default_factory=DetectConfig)  # face finder of the target video
