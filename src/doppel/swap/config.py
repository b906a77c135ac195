"""The swap model's presets and the settings of `doppel train`: light to import (standard library only), so
`doppel train --help` does not load torch. model, train, gan and losses re-export these names."""
from __future__ import annotations

from dataclasses import dataclass

PEOPLE = ("a", "b")
DEFAULT_STEPS = 1000  # `doppel train` stops here when neither --steps nor --minutes is given
PIXEL_LOSSES = ("l1", "mse")  # the keys of losses.PIXEL, in order (tests/swap/test_config.py checks)


@dataclass(frozen=True)
class SwapConfig:
    preset: str = "lite"  # name of the preset this config came from
    size: int = 64  # crop side in pixels (64, 128, 256)
    enc_channels: tuple[int, ...] = (32, 64, 128, 256, 512)  # the 5 strided 5x5 convolutions
    latent: int = 256  # width of the first dense layer (the face code)
    bottleneck: int = 512  # channels reshaped from the second dense layer, at size/32
    up_channels: int = 256  # output channels of the encoder's upsampling convolution
    dec_channels: tuple[int, ...] = (128, 64, 32, 16)  # each decoder's 4 upsampling convolutions
    mask: bool = False  # decoders also draw an alpha mask (the GAN variant, swap/gan.py)

    def __post_init__(self):
        if self.size % 32 or self.size < 64:
            raise ValueError(f"size must be a multiple of 32 and >= 64, got {self.size}")
        if len(self.enc_channels) != 5 or len(self.dec_channels) != 4:
            raise ValueError("need 5 encoder and 4 decoder channel counts")


PRESETS: dict[str, SwapConfig] = {
    # the article's size: 64x64 crops, wide layers
    "original": SwapConfig("original", 64, (128, 256, 512, 1024, 1024), 1024, 1024, 512, (256, 128, 64, 32)),
    # CPU default: same shape, a quarter of the channels
    "lite": SwapConfig("lite", 64, (32, 64, 128, 256, 512), 256, 512, 256, (128, 64, 32, 16)),
    # 128x128 crops, lite-like widths
    "hires": SwapConfig("hires", 128, (32, 64, 128, 256, 512), 512, 512, 256, (128, 64, 32, 16)),
}


@dataclass(frozen=True)
class GanConfig:
    lr_g: float = 1e-4  # generator Adam learning rate (betas 0.5, 0.999), before the schedule's factor
    lr_d: float = 2e-4  # discriminator Adam learning rate (betas 0.5, 0.999)
    w_d: float = 0.1  # adversarial loss weight in the generator loss
    w_recon: float = 1.0  # L1 reconstruction weight
    w_edge: float = 0.1  # edge (image-gradient L1) weight
    w_eyes: float = 30.0  # extra reconstruction and edge weight on the eye and mouth map
    w_pl: tuple[float, ...] = (0.01, 0.1, 0.3)  # feature-matching weight of each discriminator layer
    w_mask: float = 1e-2  # L1 on alpha (pulls the mask toward 0 where the input will do)
    w_hinge: float = 0.1  # hinge max(0, margin - alpha) in the hinge stages of the schedule
    w_tv: float = 0.1  # total variation of alpha (x and y)
    mixup: float = 0.2  # mixup lam ~ Beta(mixup, mixup)
    d_channels: tuple[int, ...] = (32, 64, 128)  # discriminator's strided 4x4 convolutions (a quarter of the reference's)
    occlude: float = 0.5  # probability that a training face gets an occluding ellipse
    occlude_area: tuple[float, float] = (0.1, 0.25)  # its area as a fraction of the face hull
    total: int | None = None  # steps the schedule spans (None: the run's --steps)


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "lite"  # model preset, a key of PRESETS
    steps: int | None = None  # stop when the step count reaches this (None: DEFAULT_STEPS, or use minutes)
    minutes: float | None = None  # stop after this many minutes of this run instead
    batch: int = 32  # faces of each person per step (per process under torchrun)
    lr: float = 5e-5  # Adam learning rate (classic: 5e-5 with betas 0.5, 0.999)
    loss: str = "l1"  # pixel loss, a key of losses.PIXEL
    dssim: float = 1.0  # weight of the DSSIM term
    eye_mouth_weight: float = 0.0  # extra loss weight on eyes and mouth (0: none)
    save_every: int = 500  # checkpoint every N steps (also on Ctrl-C and at the end)
    preview_every: int = 250  # preview PNG every N steps (0: never)
    log_every: int = 10  # log.jsonl line every N steps
    resume: bool = False  # continue the checkpoint in the output folder
    device: str = "cpu"  # cpu or cuda
    # data-loader processes doing augmentation (0: in the training process); None: `loader_workers` decides
    workers: int | None = None
    seed: int = 0  # seeds weights, data order and augmentation
    preview_faces: int = 6  # faces per preview row
    channels_last: bool = False  # NHWC tensors (oneDNN): measured no faster here, see benchmarks/train_speed.py
    init: str = "prior"  # start weights: "prior" (the shipped face prior of the preset), "scratch", or a prior file
    gan: bool = False  # the GAN variant (swap/gan.py): masked decoders, critics, edge and perceptual losses
    gan_cfg: GanConfig = GanConfig()  # its weights, learning rates and schedule (used when gan)
