"""Learned detectors: a small CNN on aligned face crops and a Fourier-spectrum logistic regression.

Also the two small linear maps that turn scores into a verdict: the fusion
(standardised logistic regression over detector logits and cues) and the Platt
calibration of the per-video score. Everything is stored as safetensors
(CNN weights) plus JSON (configs and coefficients); nothing is pickled.
"""
from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from .. import checkpoint, media
from ..errors import DoppelError
from ..faces import align
from ..faces.landmarks import OUTER_LIP
from .config import MOUTH, RESNET, WEIGHTS_DIR, CNNConfig  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

CNN_FILE = "cnn.safetensors"
MOUTH_FILE = "mouth.safetensors"  # the optional second CNN, on the mouth (Detectors.mouth)
PARTNER_FILE = "partner.safetensors"  # the optional second face CNN (Detectors.partner)
MODELS_FILE = "models.json"
FORMAT = "doppel-detect/1"
FOURIER_SIZE = 64  # side of the grey crop whose spectrum is taken
FOURIER_COVERAGE = 0.6  # tight on the inner face: the spectrum should be the face's, not the background's


class _Residual(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut (1x1 conv where the shape changes), ReLU after the sum."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                  nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(cout))
        self.short = (nn.Identity() if cin == cout and stride == 1 else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.short(x))


class FaceCNN(nn.Module):
    """`features` (conv stages) -> global average pool -> `head` (one logit).

    plain: conv-BN-ReLU stages, 2x max-pool after all but the last. resnet: a stride-2 conv stem of
    widths[0] channels, then one residual block per width, each after the first halving the size.
    """

    def __init__(self, cfg: CNNConfig = CNNConfig()):
        super().__init__()
        self.cfg = cfg
        layers, c = [], 3
        if cfg.arch == "resnet":
            layers = [nn.Conv2d(3, cfg.widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(cfg.widths[0]),
                      nn.ReLU(inplace=True)]
            c = cfg.widths[0]
            for i, w in enumerate(cfg.widths):
                layers.append(_Residual(c, w, 2 if i else 1))
                c = w
        elif cfg.arch == "dlib":  # dlib's face-recognition ResNet (dlibnet), its first len(widths) levels
            from . import dlibnet
            if tuple(cfg.widths) != tuple(w for w, _, _ in dlibnet.LEVELS[:len(cfg.widths)]):
                raise ValueError(f"a dlib CNN's widths are a prefix of {[w for w, _, _ in dlibnet.LEVELS]}, not {cfg.widths}")
            layers, c = dlibnet.layers(len(cfg.widths)), cfg.widths[-1]
        elif cfg.arch == "plain":
            for i, w in enumerate(cfg.widths):
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                if i < len(cfg.widths) - 1:
                    layers.append(nn.MaxPool2d(2))
                c = w
        else:
            raise ValueError(f"unknown CNN architecture {cfg.arch!r} (known: dlib, plain, resnet)")
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, 1)
        if cfg.arch == "dlib":  # a pretrained backbone's features are large: start from logit 0, not a random one
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised crops -> (N,) logits (> 0 means fake)."""
        return self.logit(self.features(x))

    def logit(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) feature maps (`features`) -> (N,) logits: the global average pool and the head."""
        return self.head(feats.mean((2, 3)))[:, 0]


def crop_matrix(landmarks: np.ndarray, cfg: CNNConfig = CNNConfig()) -> np.ndarray:
    """The frame->crop matrix of the CNN's crop: the face aligned at `cfg.coverage`, and for the mouth region
    shifted so that the outer lips' centre is the crop's centre."""
    m = align.align_matrix(landmarks, cfg.size, cfg.coverage)
    if cfg.region == "mouth":
        m = m.copy()
        m[:, 2] += cfg.size / 2 - align.transform_points(np.asarray(landmarks)[OUTER_LIP], m).mean(0)
    elif cfg.region != "face":
        raise ValueError(f"unknown CNN region {cfg.region!r} (known: face, mouth)")
    return m


def cnn_crop(image: np.ndarray, landmarks: np.ndarray, cfg: CNNConfig = CNNConfig()) -> np.ndarray:
    """The CNN's aligned (size, size, 3) uint8 RGB crop of one face (or of its mouth, by `cfg.region`)."""
    return align.crop(image, crop_matrix(landmarks, cfg), cfg.size)


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    """(N, S, S, 3) uint8 RGB -> (N, 3, S, S) float32 centred near 0."""
    if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[3] != 3:
        raise ValueError(f"expected (N, S, S, 3) uint8 crops, got {crops.shape} {crops.dtype}")
    return (torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.25


@torch.no_grad()
def cnn_logits(model: FaceCNN, crops: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N,) float64 logits of (N, S, S, 3) uint8 crops, model in eval mode; with `cfg.flip` the mean of each
    crop's and its mirror image's logit."""
    model.eval()
    out = [model(to_tensor(crops[i:i + batch])).numpy() for i in range(0, len(crops), batch)]
    if model.cfg.flip and out:
        mirrored = np.ascontiguousarray(crops[:, :, ::-1])
        out = [(a + model(to_tensor(mirrored[i:i + batch])).numpy()) / 2 for a, i in zip(out, range(0, len(crops), batch))]
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def soup(folders: list[str | Path]) -> FaceCNN:
    """The CNNs of several weights folders averaged, weights and batch-norm statistics alike (a uniform
    weight soup, Wortsman et al. 2022: fine-tunes of one CNN sit in one basin, and their average is often
    better than each on data none of them saw). DoppelError if their shapes differ."""
    cnns = [Detectors.load(f).cnn for f in folders]
    shape = cnns[0].cfg
    for f, c in zip(folders, cnns):
        if replace(c.cfg, flip=shape.flip) != shape:  # how a face is scored may differ, the net may not
            raise DoppelError(f"--init: the CNN in {f} has another shape ({c.cfg}) than the one in {folders[0]} ({shape})")
    states = [c.state_dict() for c in cnns]
    out = FaceCNN(shape)
    out.load_state_dict({k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v
                         for k, v in states[0].items()})
    return out.eval()


def gradcam(model: FaceCNN, crop: np.ndarray) -> np.ndarray:
    """Grad-CAM of the 'fake' logit on the last conv stage: (S, S) float32 in [0, 1]."""
    model.eval()
    x = to_tensor(crop[None])
    feats = model.features(x).detach().requires_grad_(True)
    logit = model.logit(feats)[0]
    (grad,) = torch.autograd.grad(logit, feats)
    cam = torch.relu((grad.mean((2, 3), keepdim=True) * feats).sum(1))[0].detach().numpy()
    cam = cam / cam.max() if cam.max() > 0 else cam
    return cv2.resize(cam.astype(np.float32), crop.shape[1::-1], interpolation=cv2.INTER_LINEAR)


def spectrum(image: np.ndarray, landmarks: np.ndarray, bins: int = FOURIER_SIZE // 2) -> np.ndarray:
    """Azimuthally averaged log10 power spectrum of the grey face crop, mean removed: (bins,) float64.

    Radius 1..bins in cycles per crop (the DC term is dropped); removing the mean
    makes it independent of overall contrast.
    """
    c = align.crop(image, align.align_matrix(landmarks, FOURIER_SIZE, FOURIER_COVERAGE), FOURIER_SIZE)
    g = cv2.cvtColor(c, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255.0
    g = (g - g.mean()) * np.outer(np.hanning(FOURIER_SIZE), np.hanning(FOURIER_SIZE))
    power = np.abs(np.fft.fftshift(np.fft.fft2(g))) ** 2
    yy, xx = np.indices(power.shape) - FOURIER_SIZE // 2
    r = np.round(np.hypot(xx, yy)).astype(int)
    radial = np.bincount(r.ravel(), power.ravel()) / np.maximum(np.bincount(r.ravel()), 1)
    logp = np.log10(radial[1:bins + 1] + 1e-12)
    return logp - logp.mean()


def balanced(y: np.ndarray) -> np.ndarray:
    """Sample weights that give each class (0, 1) the same total weight."""
    y = np.asarray(y)
    return np.where(y == 1, len(y) / max(2 * (y == 1).sum(), 1), len(y) / max(2 * (y == 0).sum(), 1))


@dataclass(frozen=True)
class Linear:
    """Logistic regression on standardised features; NaN features count as the mean (no evidence).

    With `anchor` and `cap`, the features other than `anchor` together can lower the logit by at
    most `cap` (their negative shares are scaled down to fit): the fusion's cues cannot cancel
    what a strong CNN sees, only add to it or temper it.
    """
    names: list[str]  # feature names, in column order
    mean: list[float]  # per-feature mean of the fitting data
    scale: list[float]  # per-feature standard deviation of the fitting data
    coef: list[float]  # weight per standardised feature
    intercept: float  # bias
    anchor: str | None = None  # the feature the others cannot cancel (the fusion: "cnn")
    cap: float | None = None  # how far the others together may lower the logit; None: no limit

    def standardise(self, x: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(np.asarray(x, np.float64)) - self.mean) / self.scale
        return np.nan_to_num(z, nan=0.0, posinf=5.0, neginf=-5.0).clip(-8, 8)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """(N, F) share of each feature in the logit (after the cap)."""
        c = self.standardise(x) * np.asarray(self.coef)
        if self.cap is None or self.anchor not in self.names:
            return c
        others = np.arange(len(self.names)) != self.names.index(self.anchor)
        pos = np.where(others & (c > 0), c, 0).sum(1)
        neg = np.where(others & (c < 0), c, 0).sum(1)
        over = pos + neg < -self.cap
        k = np.where(over, (-self.cap - pos) / np.where(neg < 0, neg, -1.0), 1.0)[:, None]
        return np.where(others & (c < 0), c * k, c)

    def logit(self, x: np.ndarray) -> np.ndarray:
        return self.contributions(x).sum(1) + self.intercept

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, names: list[str], c: float = 1.0,
            use: list[str] | None = None) -> "Linear":
        """Fit with sklearn's LogisticRegression (L2, inverse strength `c`) on the columns named in
        `use` (default all); the other columns keep coefficient 0."""
        from sklearn.linear_model import LogisticRegression
        x = np.asarray(x, np.float64)
        with warnings.catch_warnings():  # a column with no value at all (mouth_cnn without a mouth CNN) is fine
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(x, 0)
            scale = np.nanstd(x, 0)
        scale = np.where(np.isfinite(scale) & (scale > 1e-9), scale, 1.0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        tmp = cls(list(names), mean.tolist(), scale.tolist(), [0.0] * len(names), 0.0)
        cols = [names.index(n) for n in (use or names)]
        lr = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(tmp.standardise(x)[:, cols], y)
        coef = np.zeros(len(names))
        coef[cols] = lr.coef_[0]
        return cls(list(names), mean.tolist(), scale.tolist(), coef.tolist(), float(lr.intercept_[0]))


@dataclass(frozen=True)
class Platt:
    """Calibration p = floor + (1 - 2 floor) * sigmoid(a * score + b), with a >= 0 so it is monotone
    non-decreasing. `floor` keeps p inside [floor, 1 - floor]: the calibration clips hold only doppel's
    kinds of fake, so on a kind it never saw the map must not be surer than that (0: plain Platt)."""
    a: float  # slope
    b: float  # offset
    floor: float = 0.0  # least p (and 1 - the most)

    def prob(self, score) -> np.ndarray:
        s = np.asarray(score, np.float64)
        return self.floor + (1 - 2 * self.floor) / (1.0 + np.exp(-np.clip(self.a * s + self.b, -50, 50)))

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray, c: float = 1.0) -> "Platt":
        """Platt scaling with Platt's (1999) smoothed targets, (N+ + 1)/(N+ + 2) and 1/(N- + 2), and
        L2 (inverse strength `c`): few, separable calibration points cannot make it a step. The two
        classes weigh alike, so p = 0.5 means even odds whatever the mix of calibration clips."""
        from sklearn.linear_model import LogisticRegression
        s, y = np.asarray(scores, np.float64), np.asarray(labels)
        pos, neg = int((y == 1).sum()), int((y == 0).sum())
        t = np.where(y == 1, (pos + 1) / (pos + 2), 1 / (neg + 2))
        w = balanced(y)
        x = np.concatenate([s, s])[:, None]
        lr = LogisticRegression(C=c).fit(x, np.repeat([1, 0], len(s)), sample_weight=np.concatenate([t * w, (1 - t) * w]))
        return cls(max(0.0, float(lr.coef_[0, 0])), float(lr.intercept_[0]))


def _load_cnn(path: Path, what: str) -> FaceCNN:
    """A FaceCNN from its safetensors file (fp16 on disk, float32 in memory), in eval mode."""
    tensors, header = checkpoint.load(path, FORMAT, what=what)
    cnn = FaceCNN(CNNConfig.from_dict(header.config))
    cnn.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    return cnn.eval()


@dataclass
class Detectors:
    """Everything `scan` needs, rebuilt from a weights folder alone."""
    cnn: FaceCNN
    fourier: Linear
    fusion: Linear
    platt: Platt
    meta: dict = field(default_factory=dict)  # version, data, validation scores, command
    mouth: FaceCNN | None = None  # a second CNN on the mouth's crop (region "mouth"), its logit the fusion's mouth_cnn
    # a second face CNN, of any shape: the face score ("cnn") is the mean of the two CNNs' logits (face_logits)
    partner: FaceCNN | None = None

    def save(self, folder: str | Path = WEIGHTS_DIR) -> None:
        folder = Path(folder)
        # fp16 on disk (half the size; rounding fp32 weights to fp16 moved 200 faces' logits by at most 0.005, their
        # spread being 2.5), float32 in memory
        for net, name in ((self.cnn, CNN_FILE), (self.mouth, MOUTH_FILE), (self.partner, PARTNER_FILE)):
            if net is not None:
                half = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
                checkpoint.write(folder / name, FORMAT, half, net.cfg, {"version": self.version})
            else:  # a folder rewritten without one must not keep an old one
                (folder / name).unlink(missing_ok=True)
        doc = {"format": FORMAT, "cnn": asdict(self.cnn.cfg), "fourier": asdict(self.fourier),
               "fusion": asdict(self.fusion), "platt": asdict(self.platt), "meta": self.meta,
               "mouth": asdict(self.mouth.cfg) if self.mouth is not None else None,
               "partner": asdict(self.partner.cfg) if self.partner is not None else None}
        with media.atomic_path(folder / MODELS_FILE) as tmp:
            tmp.write_text(json.dumps(doc, indent=1))

    @classmethod
    def load(cls, folder: str | Path = WEIGHTS_DIR) -> "Detectors":
        folder = Path(folder)
        try:
            doc = json.loads((folder / MODELS_FILE).read_text())
            checkpoint.check_format(doc.get("format", ""), FORMAT, folder / MODELS_FILE, "doppel detector")
            cnn = _load_cnn(folder / CNN_FILE, "doppel detector CNN")
            mouth = _load_cnn(folder / MOUTH_FILE, "doppel detector mouth CNN") if doc.get("mouth") else None
            partner = _load_cnn(folder / PARTNER_FILE, "doppel detector partner CNN") if doc.get("partner") else None
        except DoppelError as e:
            raise DoppelError(f"{e}; run 'doppel detect train'") from None
        except (OSError, KeyError, ValueError, RuntimeError) as e:
            raise DoppelError(f"no usable detector weights in {folder} ({e}); run 'doppel detect train'") from None
        return cls(cnn, Linear(**doc["fourier"]), Linear(**doc["fusion"]), Platt(**doc["platt"]), doc.get("meta", {}),
                   mouth, partner)

    def face_logits(self, crops: np.ndarray, partner_crops: np.ndarray | None = None) -> np.ndarray:
        """(N,) face scores ("cnn"): the face CNN's logits of its crops; with a partner CNN, the mean of both CNNs'
        logits, each of its own crops (`partner_crops`, cut at the partner's CNNConfig; None: the face CNN's crops,
        which a partner that `shares_crop` sees as they are)."""
        s = cnn_logits(self.cnn, crops)
        if self.partner is None:
            return s
        return (s + cnn_logits(self.partner, crops if partner_crops is None else partner_crops)) / 2

    @property
    def shares_crop(self) -> bool:
        """Whether the partner CNN's crop is the face CNN's (same size, scale and region), so it is cut once."""
        a, b = self.cnn.cfg, self.partner.cfg if self.partner is not None else None
        return b is not None and (a.size, a.coverage, a.region) == (b.size, b.coverage, b.region)

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "untrained"))
