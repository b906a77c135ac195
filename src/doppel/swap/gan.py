"""The GAN variant of the swap model (after faceswap-GAN v2.2; our own code).

Each decoder (SwapConfig.mask=True) draws a colour face and an alpha mask; the
face it shows is composite = alpha * colour + (1 - alpha) * the warped input,
so the mask learns where the generated face has to win and where the input may
show through (an occluding hand, say). Beside the reconstruction it learns from
  - one conditional PatchGAN discriminator per person, fed (image, warped input)
    pairs, least-squares loss with mixup between real and fake (lam ~ Beta);
  - an edge loss (L1 between x and y image gradients), eyes and mouth weighted
    from the landmarks, mask regularisation (L1 or a hinge on alpha, plus total
    variation);
  - a perceptual loss: feature matching on the discriminator's layers
    (pix2pixHD), standing in for faceswap-GAN's VGGFace, whose weights cannot be
    downloaded here (and torchvision does not import beside this torch build);
  - a schedule over the run (perceptual loss off early, mask hinge stages,
    learning-rate drops), a pure function of the step so resume stays exact.
Training faces get random occluding ellipses, painted alike on input and
target: copying the input through the mask is the only way to draw them.

Tensors are float32 (N, C, S, S) in [0, 1] as everywhere in swap/.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoint
from ..errors import DoppelError
from .config import GanConfig  # noqa: F401 (re-exported)
from .model import PEOPLE, SwapModel
from .train_cli import add_gan_arguments as add_arguments  # noqa: F401 (re-exported: the --gan flags)
from .train_cli import gan_config_from_args as config_from_args  # noqa: F401 (re-exported)

STATE_PREFIX = "gan."  # keys of the discriminator tensors inside the train state


# (start as a fraction of the schedule, perceptual loss on, mask hinge on, hinge margin, lr factor),
# faceswap-GAN v2.2's breakpoints at 1/5, 3/10, 2/5, 1/2, 2/3, 4/5, 9/10 of the run
SCHEDULE = ((0.0, False, False, 0.0, 1.0), (0.2, True, False, 0.0, 1.0), (0.3, True, True, 0.5, 1.0),
            (0.4, True, True, 0.2, 1.0), (0.5, True, True, 0.4, 0.3), (2 / 3, True, False, 0.1, 0.3),
            (0.8, True, True, 0.1, 0.1), (0.9, True, False, 0.0, 0.1))


@dataclass(frozen=True)
class Stage:
    perceptual: bool  # feature-matching loss on
    hinge: bool  # mask hinge instead of mask L1
    margin: float  # hinge margin
    lr_factor: float  # factor on both learning rates


def stage(step: int, total: int) -> Stage:
    """The schedule's settings at `step` (0-based) of a run of `total` steps."""
    frac = step / max(total, 1)
    row = [r for r in SCHEDULE if frac >= r[0]][-1]
    return Stage(*row[1:])


# ---------------------------------------------------------------- networks

class Critic(nn.Module):
    """PatchGAN: (N, 6, S, S) image + warped input -> (N, 1, S/2^k, S/2^k) scores and the layer features."""

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        chans = (6, *channels)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True))
            for i in range(len(channels)))
        self.head = nn.Conv2d(chans[-1], 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return self.head(x), feats


class Critics(nn.Module):
    """One critic per person; one forward for both keeps DistributedDataParallel to one reduction."""

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        self.nets = nn.ModuleDict({p: Critic(channels) for p in PEOPLE})

    def forward(self, xa: torch.Tensor, xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.nets["a"](xa)[0], self.nets["b"](xb)[0]


def composite(colour: torch.Tensor, alpha: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """alpha * colour + (1 - alpha) * base; colour and base (N, 3, S, S), alpha (N, 1, S, S)."""
    if alpha.shape[1] != 1 or colour.shape != base.shape or alpha.shape[2:] != colour.shape[2:]:
        raise ValueError(f"expected (N, 3, S, S) colour/base and (N, 1, S, S) alpha, got "
                         f"{tuple(colour.shape)}, {tuple(base.shape)}, {tuple(alpha.shape)}")
    return alpha * colour + (1 - alpha) * base


# ---------------------------------------------------------------- losses

def gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along y and x, both cropped to (N, C, S-1, S-1)."""
    return x[:, :, 1:, :-1] - x[:, :, :-1, :-1], x[:, :, :-1, 1:] - x[:, :, :-1, :-1]


def edge_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean L1 between the y and x gradients of pred and target (summed over the two), optionally weighted."""
    w = 1.0 if weight is None else weight[:, :, :-1, :-1]
    return sum((w * (p - t).abs()).mean() for p, t in zip(gradients(pred), gradients(target)))


def tv(alpha: torch.Tensor) -> torch.Tensor:
    """Total variation of a mask: mean |d/dy| + mean |d/dx|."""
    return sum(g.abs().mean() for g in gradients(alpha))


def lsgan(scores: torch.Tensor, target: torch.Tensor | float) -> torch.Tensor:
    """Least-squares GAN loss: mean (scores - target)^2."""
    return ((scores - target) ** 2).mean()


def feature_matching(fake: list[torch.Tensor], real: list[torch.Tensor], weights: tuple[float, ...]) -> torch.Tensor:
    """Weighted L1 between the critic's layer features of fake and (detached) real pairs."""
    return sum(w * (f - r.detach()).abs().mean() for w, f, r in zip(weights, fake, real))


def generator_loss(p: dict, critic: Critic, cfg: GanConfig, st: Stage) -> tuple[torch.Tensor, dict]:
    """One person's generator loss; `p` holds input, target, parts, colour, alpha, fake (the composite), occluder.

    The raw colour is held to the target everywhere but under the planted occluders (as the
    reference does, so the colour learns the face whatever the mask does); the composite is
    held to the whole target, which is what teaches the mask to let the occluder through.
    """
    x, t, fake, colour, alpha = p["input"], p["target"], p["fake"], p["colour"], p["alpha"]
    keep = 1 - p["occluder"] if "occluder" in p else torch.ones_like(alpha)
    n = len(x)
    scores, feats = critic(torch.cat([torch.cat([fake, x], 1), torch.cat([colour, x], 1), torch.cat([t, x], 1)]))
    adv = cfg.w_d * (lsgan(scores[:n], 1.0) + lsgan(scores[n:2 * n], 1.0))
    err = (colour - t).abs()
    recon = (cfg.w_recon * ((keep * err).mean() + (fake - t).abs().mean())
             + cfg.w_eyes * (p["parts"] * keep * err).mean())
    edge = cfg.w_edge * edge_loss(colour, t, keep) + cfg.w_eyes * edge_loss(colour, t, p["parts"] * keep)
    mask = cfg.w_hinge * F.relu(st.margin - alpha).mean() if st.hinge else cfg.w_mask * alpha.abs().mean()
    mask = mask + cfg.w_tv * tv(alpha)
    pl = torch.zeros((), device=x.device)
    if st.perceptual:  # on the raw colour pair, against the real pair
        pl = feature_matching([f[n:2 * n] for f in feats], [f[2 * n:] for f in feats], cfg.w_pl)
    total = adv + recon + edge + mask + pl
    return total, {"adv": adv.item(), "recon": recon.item(), "edge": edge.item(), "mask": mask.item(), "pl": pl.item()}


def critic_input(p: dict, lam: torch.Tensor) -> torch.Tensor:
    """Mixup of the real pair with the composite pair and with the raw colour pair: (2N, 6, S, S)."""
    x, t = p["input"], p["target"]
    mix = [lam * t + (1 - lam) * f.detach() for f in (p["fake"], p["colour"])]
    return torch.cat([torch.cat([m, x], 1) for m in mix])


# ---------------------------------------------------------------- occluders

def occluder_masks(hulls: np.ndarray, rng: np.random.Generator, cfg: GanConfig) -> np.ndarray:
    """(N, S, S) float32 {0, 1}: an ellipse over part of each face hull (N, S, S), or nothing."""
    n, size = hulls.shape[0], hulls.shape[-1]
    out = np.zeros((n, size, size), np.float32)
    for i in range(n):
        ys, xs = np.nonzero(hulls[i] > 0.5)
        if rng.random() >= cfg.occlude or len(xs) < 16:
            continue
        area = rng.uniform(*cfg.occlude_area) * len(xs)
        aspect = rng.uniform(0.5, 2.0)
        ax = np.sqrt(area / np.pi * aspect)
        j = rng.integers(len(xs))
        axes = (max(1, int(round(ax))), max(1, int(round(area / np.pi / ax))))
        cv2.ellipse(out[i], (int(xs[j]), int(ys[j])), axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
    return out


def occlude(batch: dict[str, torch.Tensor], rng: np.random.Generator, cfg: GanConfig) -> dict[str, torch.Tensor]:
    """The batch with the same flat-coloured, slightly noisy ellipses painted on input and target."""
    if cfg.occlude <= 0:
        return batch
    m = torch.from_numpy(occluder_masks(batch["mask"][:, 0].numpy(), rng, cfg))[:, None]
    n, _, s, _ = batch["input"].shape
    colour = rng.uniform(0, 1, (n, 3, 1, 1)) + rng.normal(0, 0.03, (n, 3, s, s))
    paint = torch.from_numpy(np.clip(colour, 0, 1).astype(np.float32))
    out = dict(batch)
    for k in ("input", "target"):
        out[k] = batch[k] * (1 - m) + paint * m
    out["occluder"] = m
    return out


# ---------------------------------------------------------------- training

class GanTrainer:
    """The critics, their optimizer and the GAN step; its state travels in the train state file."""

    def __init__(self, cfg: GanConfig, total: int, seed: int, rank: int, world: int, device: torch.device):
        self.cfg, self.total, self.seed, self.rank, self.device = cfg, cfg.total or total, seed, rank, device
        with torch.random.fork_rng(devices=[]):  # seeded apart, leaving the model's initialisation as it was
            torch.manual_seed(seed + 7)
            self.critics = Critics(cfg.d_channels).to(device)
        self.opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.lr_d, betas=(0.5, 0.999))
        self.net = self.critics
        if world > 1:
            self.net = nn.parallel.DistributedDataParallel(
                self.critics, device_ids=[device.index] if device.type == "cuda" else None)
        self.last: dict[str, float] = {}

    def _prepare(self, batch: dict, step: int) -> dict:
        rng = np.random.default_rng([self.seed, 104729, step, self.rank])
        people = {p: occlude(batch[p], rng, self.cfg) for p in PEOPLE}
        lam = torch.from_numpy(rng.beta(self.cfg.mixup, self.cfg.mixup, (len(PEOPLE), 1, 1, 1, 1)).astype(np.float32))
        return {p: {k: v.to(self.device) for k, v in people[p].items()} for p in PEOPLE}, lam.to(self.device)

    def step(self, net: nn.Module, opt: torch.optim.Optimizer, batch: dict, step: int) -> tuple[float, float]:
        """One critic update then one generator update at 0-based `step`; returns the generator losses (A, B)."""
        st = stage(step, self.total)
        for o, lr in ((opt, self.cfg.lr_g), (self.opt, self.cfg.lr_d)):
            for g in o.param_groups:
                g["lr"] = lr * st.lr_factor
        people, lam = self._prepare(batch, step)
        ca, ma, cb, mb = net(people["a"]["input"], people["b"]["input"])
        if ma is None:
            raise DoppelError("GAN training needs a model whose decoders draw a mask")
        for p, c, m in (("a", ca, ma), ("b", cb, mb)):
            people[p].update(colour=c, alpha=m, fake=composite(c, m, people[p]["input"]))
        self._critic_step(people, lam)
        self.critics.requires_grad_(False)  # their gradients are not wanted, and DDP hooks must not fire
        try:
            parts = [generator_loss(people[p], self.critics.nets[p], self.cfg, st) for p in PEOPLE]
        finally:
            self.critics.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        (parts[0][0] + parts[1][0]).backward()
        opt.step()
        for p, (_, terms) in zip(PEOPLE, parts):
            self.last.update({f"{k}_{p}": v for k, v in terms.items()})
        return parts[0][0].item(), parts[1][0].item()

    def _critic_step(self, people: dict, lam: torch.Tensor) -> None:
        sa, sb = self.net(critic_input(people["a"], lam[0]), critic_input(people["b"], lam[1]))
        la, lb = lsgan(sa, lam[0]), lsgan(sb, lam[1])
        self.opt.zero_grad(set_to_none=True)
        (la + lb).backward()
        self.opt.step()
        self.last.update(loss_d_a=la.item(), loss_d_b=lb.item())

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, header sections) for the train state file: critic weights and optimizer."""
        opt_t, groups = checkpoint.optimizer_tensors(self.opt)
        tensors = {f"{STATE_PREFIX}d.{k}": v.detach().cpu().contiguous() for k, v in self.critics.state_dict().items()}
        tensors.update({STATE_PREFIX + k: v for k, v in opt_t.items()})
        return tensors, {"gan": {"param_groups": groups, "d_channels": list(self.cfg.d_channels)}}

    def load(self, tensors: dict[str, torch.Tensor], sections: dict) -> None:
        """Restore from a train state's tensors and header sections (as written by `state`)."""
        if "gan" not in sections:
            raise DoppelError("the train state holds no discriminator (a plain run); cannot resume it as a GAN run")
        info = sections["gan"]
        if tuple(info["d_channels"]) != self.cfg.d_channels:
            raise DoppelError(f"the train state's discriminator has channels {info['d_channels']}, "
                              f"not {list(self.cfg.d_channels)}")
        pre = STATE_PREFIX + "d."
        self.critics.load_state_dict({k[len(pre):]: v for k, v in tensors.items() if k.startswith(pre)})
        checkpoint.load_optimizer(self.opt, {k[len(STATE_PREFIX):]: v for k, v in tensors.items()
                                   if k.startswith(STATE_PREFIX + "opt.")}, info["param_groups"])


# ---------------------------------------------------------------- previews

def _grey(m: torch.Tensor) -> torch.Tensor:
    return m.expand(-1, 3, -1, -1)


@torch.no_grad()
def preview_rows(model: SwapModel, x: torch.Tensor, own: str, other: str) -> list[torch.Tensor]:
    """Input, then colour, mask and composite drawn by `own`'s and by `other`'s decoder."""
    rows = [x]
    for who in (own, other):
        c, m = model(x, who)
        rows += [c, _grey(m), composite(c, m, x)]
    return rows

