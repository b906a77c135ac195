"""Stage `doppel train`: two face sets -> a swap model (shared encoder, one decoder per person).

MODEL/ holds
    model.safetensors        weights + config + info (swap.model.save_model); what `doppel swap` reads
    train_state.safetensors  optimizer state, step and RNG states (tensors + JSON metadata, no pickle)
    previews/step_NNNNNN.png rows A, A rebuilt, A drawn as B, B, B rebuilt, B drawn as A (labelled synthetic)
    log.jsonl                one line of metrics every few steps (+ TensorBoard events when installed)

Both files of a checkpoint are written to temporary names and renamed only when
both are complete; each records its step, and the previous train state is kept
until the new model is in place, so a save interrupted at any point leaves a
model with a train state of the same step (resume picks the matching one). Under `torchrun --nproc_per_node N`
the same command trains with DistributedDataParallel; rank 0 alone writes.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from .. import checkpoint, interrupt, provenance
from ..errors import DoppelError
from ..faceset import FaceSet
from . import augment, gan, losses
from .config import DEFAULT_STEPS, GanConfig, TrainConfig  # noqa: F401 (re-exported)
from .model import FORMAT, MODEL_FILE, PRESETS, SwapModel, build, read_header, save_model
from .train_cli import add_arguments, run  # noqa: F401 (re-exported: the CLI lives in the light train_cli)

log = logging.getLogger(__name__)

STATE_FILE = "train_state.safetensors"
STATE_PREV = "train_state.prev.safetensors"  # the previous step's state, for a save torn between renames
STATE_FORMAT = "doppel-train-state/1"
INIT_PREFIXES = ("init_", "prior_")  # header keys (beside "init") written by `initialise`
RANK_DUMP_ENV = "DOPPEL_RANK_DUMP"  # debug: each rank saves its final weights to this folder (tests)


@dataclass(frozen=True)
class TrainSummary:
    """What one `train` run did (this process's rank); `to_json()` for the web app and scripts."""
    output: str  # the model folder
    rank: int  # of this process in a distributed run (0 alone)
    step: int  # steps the model has taken in all
    steps_run: int  # steps this run took (a resumed run starts from the saved step)
    seconds: float  # wall time of this run's loop
    loss_a: float | None  # last pixel loss of A
    loss_b: float | None
    faces_per_s: float  # training faces through the model per second, both people

    def to_json(self) -> dict:
        return asdict(self)


class Pair(nn.Module):
    """Both people through the shared encoder in one pass, then each through its own decoder.

    One forward per step keeps DistributedDataParallel to a single gradient reduction.
    """

    def __init__(self, model: SwapModel):
        super().__init__()
        self.model = model

    def forward(self, xa: torch.Tensor, xb: torch.Tensor):
        za, zb = self.model.encoder(torch.cat([xa, xb])).split([len(xa), len(xb)])
        return (*self.model.decoders["a"](za), *self.model.decoders["b"](zb))


# ---------------------------------------------------------------- inputs

def open_facesets(path_a, path_b) -> tuple[FaceSet, FaceSet]:
    """Open both face sets and check they can train one model together."""
    sets = []
    for p in (path_a, path_b):
        if not Path(p).exists():
            raise DoppelError(f"face set not found: {p}")
        fs = FaceSet.open(p)
        if not len(fs):
            raise DoppelError(f"face set is empty: {p}")
        sets.append(fs)
    a, b = sets
    if a.size != b.size:
        raise DoppelError(f"face sets have different crop sizes: {a.size} px ({path_a}) and {b.size} px ({path_b})")
    if abs(a.coverage - b.coverage) > 1e-6:
        raise DoppelError(f"face sets have different coverage: {a.coverage} and {b.coverage}")
    return a, b


def check_preset(preset: str, size: int) -> None:
    if preset not in PRESETS:
        raise DoppelError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    if PRESETS[preset].size != size:
        fits = [k for k, c in PRESETS.items() if c.size == size] or ["none"]
        raise DoppelError(f"preset {preset} trains {PRESETS[preset].size} px faces but the face sets are "
                          f"{size} px (presets for {size} px: {', '.join(fits)})")


def model_info(a: FaceSet, b: FaceSet, step: int, cfg: TrainConfig, init: dict) -> dict:
    """The facts `doppel swap` reads from the model file; `init` is what `initialise` used, not what was asked."""
    return {**init, "coverage": a.coverage, "size": a.size, "faceset_a": str(a.root), "faceset_b": str(b.root),
            "identity_a": a.meta.get("identity"), "identity_b": b.meta.get("identity"), "step": step,
            "faces_a": len(a), "faces_b": len(b), "loss": cfg.loss, "seed": cfg.seed}


# ---------------------------------------------------------------- checkpoints

def save_checkpoint(out: Path, model: SwapModel, opt: torch.optim.Optimizer, step: int, info: dict,
                    extra: tuple[dict, dict] | None = None) -> None:
    """Write model + train state to temporary names, then rename both; a failure leaves the old pair.

    `extra` (tensors, metadata) joins the train state (the GAN's critics).
    """
    tmp_m, tmp_s = out / f".model.{os.getpid()}.safetensors", out / f".train_state.{os.getpid()}.safetensors"
    try:
        save_model(tmp_m, model, {**info, "step": step})
        opt_t, groups = checkpoint.optimizer_tensors(opt)
        rng_t, rng_meta = checkpoint.rng_state()
        extra_t, extra_m = extra or ({}, {})
        checkpoint.write(tmp_s, STATE_FORMAT, {**opt_t, **rng_t, **extra_t}, model.cfg, step=step,
                         param_groups=groups, rng=rng_meta, **extra_m)
        if (out / STATE_FILE).exists():  # kept until the new model is in place: a crash between renames
            os.replace(out / STATE_FILE, out / STATE_PREV)  # leaves a state whose step matches the model
        os.replace(tmp_s, out / STATE_FILE)
        os.replace(tmp_m, out / MODEL_FILE)
    finally:
        tmp_m.unlink(missing_ok=True)
        tmp_s.unlink(missing_ok=True)
    log.info("checkpoint at step %d in %s", step, out)


def _state_header(path: Path) -> checkpoint.Header | None:
    """Header of a train-state file, None when it is missing or not one."""
    try:
        return checkpoint.read(path, STATE_FORMAT)
    except DoppelError:
        return None


def load_checkpoint(out: Path, model: SwapModel, opt: torch.optim.Optimizer, critics=None) -> int:
    """Restore weights, optimizer and RNG states from `out`; returns the step. `critics`: a gan.GanTrainer."""
    if not (out / MODEL_FILE).is_file():
        raise DoppelError(f"nothing to resume in {out} (no {MODEL_FILE})")
    header = read_header(out / MODEL_FILE)
    cfg = header.config
    if cfg.mask != model.cfg.mask:
        raise DoppelError(f"{out} holds a {'GAN' if cfg.mask else 'plain'} model; resume it "
                          f"{'with' if cfg.mask else 'without'} --gan")
    if cfg != model.cfg:
        raise DoppelError(f"{out} holds a {cfg.preset} model of {cfg.size} px; cannot resume it as "
                          f"{model.cfg.preset} at {model.cfg.size} px")
    step = int(header.info.get("step", -1))
    found = [(p, h) for p in (out / STATE_FILE, out / STATE_PREV)
             if (h := _state_header(p)) and int(h.sections["step"]) == step]
    if not found:
        raise DoppelError(f"no train state in {out} matches the model's step {step}; cannot resume exactly")
    path, state = found[0]
    model.load_state_dict(checkpoint.load(out / MODEL_FILE, FORMAT)[0])
    tensors = checkpoint.load(path, STATE_FORMAT)[0]
    checkpoint.load_optimizer(opt, tensors, state.sections["param_groups"])
    checkpoint.set_rng_state(tensors, state.sections["rng"])
    if critics is not None:
        critics.load(tensors, state.sections)
    return step


# ---------------------------------------------------------------- outputs

def _tiles(x: torch.Tensor) -> np.ndarray:
    """(N, 3, S, S) in [0, 1] -> one (S, N*S, 3) uint8 row."""
    x = (x.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu()
    return np.concatenate(list(x.permute(0, 2, 3, 1).numpy()), axis=1)


@torch.no_grad()
def preview(model: SwapModel, xa: torch.Tensor, xb: torch.Tensor) -> np.ndarray:
    """Rows: A, A rebuilt, A drawn as B, B, B rebuilt, B drawn as A; (6*S, N*S, 3) uint8.

    A GAN model shows colour, mask and composite for each decoder: 14 rows (gan.preview_rows).
    """
    if model.cfg.mask:
        return np.concatenate([_tiles(r) for x, o, t in ((xa, "a", "b"), (xb, "b", "a"))
                               for r in gan.preview_rows(model, x, o, t)], axis=0)
    rows = []
    for x, own, other in ((xa, "a", "b"), (xb, "b", "a")):
        rows += [_tiles(x), _tiles(model(x, own)[0]), _tiles(model(x, other)[0])]
    return np.concatenate(rows, axis=0)


def preview_inputs(data: augment.FaceData, n: int, device: torch.device) -> torch.Tensor:
    """`n` faces spread evenly over the set, (n, 3, S, S) float32 in [0, 1]."""
    idx = np.linspace(0, len(data.crops) - 1, min(n, len(data.crops))).round().astype(int)
    return torch.from_numpy(data.crops[idx]).permute(0, 3, 1, 2).float().div(255).to(device)


class RunLog:
    """log.jsonl lines, plus TensorBoard scalars when tensorboard is importable; silent off rank 0."""

    def __init__(self, out: Path, active: bool):
        self.file = open(out / "log.jsonl", "a") if active else None
        self.tb = None
        if active:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                pass

    def write(self, step: int, **values) -> None:
        if self.file is None:
            return
        self.file.write(json.dumps({"step": step, "time": round(time.time(), 3), **values}) + "\n")
        self.file.flush()
        for k, v in values.items():
            if self.tb is not None and isinstance(v, float):
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.tb is not None:
            self.tb.close()


# ---------------------------------------------------------------- the run

def _distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the torchrun process group when there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "cuda" and not torch.cuda.is_available():
        raise DoppelError("--device cuda asked for but no CUDA GPU is available")
    if device not in ("cpu", "cuda"):
        raise DoppelError(f"unknown device {device!r}; choose cpu or cuda")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local}" if device == "cuda" else "cpu")
    if world > 1 and not dist.is_initialized():
        if device == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return (dist.get_rank() if world > 1 else 0), world, dev


def loader_workers(cfg: TrainConfig) -> int:
    """cfg.workers, or by default 0 on the CPU and 2 on a GPU.

    On the CPU the random warp of a 64 px face costs about 5% of its training step, so a worker
    process saves little and costs its own overhead: on 2 cores no worker count beat 0 in faces/s
    or faces per CPU-second (docs/train.md, `benchmarks/train_speed.py --loop`). A GPU step is
    far faster than the CPU's augmentation, which then needs processes of its own.
    """
    if cfg.workers is not None:
        return cfg.workers
    return 2 if cfg.device == "cuda" else 0


def _time_up(deadline: float | None, world: int, device: torch.device) -> bool:
    """Whether the --minutes budget is spent; rank 0's clock decides for all ranks."""
    if deadline is None:
        return False
    flag = torch.tensor([float(time.monotonic() > deadline)], device=device)
    if world > 1:
        dist.broadcast(flag, 0)
    return bool(flag.item())


def train_step(net: nn.Module, opt: torch.optim.Optimizer, batch: dict, lcfg: losses.LossConfig,
               window: torch.Tensor, device: torch.device, channels_last: bool) -> tuple[float, float]:
    """One optimizer step on both people; returns (loss A, loss B)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    a, b = ({k: v.to(device, non_blocking=True, memory_format=fmt) for k, v in batch[p].items()} for p in "ab")
    ra, ma, rb, mb = net(a["input"], b["input"])
    la = losses.reconstruction_loss(ra, a, lcfg, window, ma)
    lb = losses.reconstruction_loss(rb, b, lcfg, window, mb)
    opt.zero_grad(set_to_none=True)
    (la + lb).backward()
    opt.step()
    return la.item(), lb.item()


def _setup(fa: FaceSet, out: Path, cfg: TrainConfig, device: torch.device, critics=None
           ) -> tuple[SwapModel, torch.optim.Optimizer, int, dict]:
    """Model, optimizer, step and start facts (see `initialise`), fresh or restored from the checkpoint in `out`.

    Writes nothing: every input (preset, prior, checkpoint) is checked here, before `train` creates MODEL/.
    """
    check_preset(cfg.preset, fa.size)
    torch.manual_seed(cfg.seed)
    model = build(cfg.preset, mask=cfg.gan).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    if cfg.resume:
        step = load_checkpoint(out, model, opt, critics)
        old = read_header(out / MODEL_FILE).info  # a resumed run keeps the record of how the model started
        return model, opt, step, {k: v for k, v in old.items() if k == "init" or k.startswith(INIT_PREFIXES)}
    if (out / MODEL_FILE).exists():
        raise DoppelError(f"{out} already holds a model; pass --resume to continue it, or choose another folder")
    return model, opt, 0, initialise(model, cfg)


def initialise(model: SwapModel, cfg: TrainConfig) -> dict:
    """Start weights per cfg.init: the shipped prior of the preset, a prior file, or the seed alone.

    Returns what was actually used, for the model header: "init" is "prior" or "scratch" ("prior"
    asked for a preset that ships none falls back to scratch), "init_requested" is cfg.init, and
    from a prior its file, format, step and the first 16 hex digits of its SHA-256 (which exact weights).
    """
    from . import pretrain

    facts = {"init": "scratch", "init_requested": cfg.init}
    if cfg.init == "scratch":
        return facts
    path = pretrain.shipped_prior(cfg.preset) if cfg.init == "prior" else pretrain.prior_path(cfg.init)
    if path is None:
        log.warning("no face prior ships for preset %s; training from scratch (see `doppel pretrain`)", cfg.preset)
        return facts
    info = pretrain.init_from_prior(model, path)
    log.info("started from the face prior %s (step %s, %s identities)", path.name, info.get("step"),
             info.get("identities"))
    return {**facts, "init": "prior", "prior_file": f"shipped:{path.name}" if cfg.init == "prior" else str(path),
            "prior_format": pretrain.PRIOR_FORMAT, "prior_step": info.get("step"),
            "prior_sha256": pretrain.file_sha256(path)[:16]}


def train(faceset_a, faceset_b, output, cfg: TrainConfig = TrainConfig()) -> TrainSummary:
    """Train a swap model on two face sets into the folder `output`; returns what the run did."""
    if cfg.loss not in losses.PIXEL:
        raise DoppelError(f"unknown loss {cfg.loss!r}; choose from {', '.join(losses.PIXEL)}")
    fa, fb = open_facesets(faceset_a, faceset_b)
    rank, world, device = _distributed(cfg.device)
    out = Path(output)
    critics = None
    if cfg.gan:
        critics = gan.GanTrainer(cfg.gan_cfg, cfg.steps or DEFAULT_STEPS, cfg.seed, rank, world, device)
    model, opt, start, init = _setup(fa, out, cfg, device, critics)
    if rank == 0:  # only now: a bad prior or preset above must leave no folder behind
        (out / "previews").mkdir(parents=True, exist_ok=True)
    data_a, data_b = augment.load_faces(fa), augment.load_faces(fb)
    try:
        summary = _run(model, opt, start, (fa, fb), (data_a, data_b), out, cfg, rank, world, device, critics, init)
    finally:
        _dump_rank(model, rank)
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return summary


def _dump_rank(model: SwapModel, rank: int) -> None:
    folder = os.environ.get(RANK_DUMP_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(Path(folder) / f"rank{rank}.safetensors"))


def _run(model, opt, start, sets, datas, out, cfg, rank, world, device, critics=None, init=None) -> TrainSummary:
    """The training loop: steps until the step or time limit; checkpoint on Ctrl-C and at the end."""
    stop = cfg.steps if cfg.steps is not None else (2 ** 62 if cfg.minutes is not None else DEFAULT_STEPS)
    net = Pair(model)
    if world > 1:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    lcfg = losses.LossConfig(cfg.loss, cfg.dssim, cfg.eye_mouth_weight)
    window = losses.gaussian_window(lcfg.window, lcfg.sigma).to(device)
    batches = augment.loader(augment.StepBatches(*datas, cfg.batch, cfg.seed, rank, world), start, stop,
                             loader_workers(cfg))
    deadline = time.monotonic() + 60 * cfg.minutes if cfg.minutes is not None else None
    mon = Monitor(out, model, datas, sets, cfg, rank, world, start, None if stop >= 2 ** 62 else stop, device)
    mon.gan = critics
    mon.init = init or {}
    step = start
    try:
        if step < stop:
            for batch in batches:
                if critics is not None:
                    la, lb = critics.step(net, opt, batch, step)
                else:
                    la, lb = train_step(net, opt, batch, lcfg, window, device, cfg.channels_last)
                step += 1
                mon.after_step(step, la, lb, opt)
                interrupt.check()  # a Stop whose KeyboardInterrupt was lost in a finalizer
                if step >= stop or _time_up(deadline, world, device):
                    break
    except KeyboardInterrupt:
        log.warning("interrupted at step %d; saving a checkpoint", step)
        mon.checkpoint(step, opt)
        raise
    finally:
        mon.close()
    mon.checkpoint(step, opt)
    mon.preview(step)
    return mon.summary(step)


class Monitor:
    """Progress bar, log lines, previews and checkpoints of one run (writes only on rank 0)."""

    def __init__(self, out, model, datas, sets, cfg, rank, world, start, total, device):
        self.out, self.model, self.sets, self.cfg = out, model, sets, cfg
        self.rank, self.active = rank, rank == 0
        self.views = [preview_inputs(d, cfg.preview_faces, device) for d in datas]
        self.faces_per_step = 2 * cfg.batch * world
        self.bar = tqdm(total=total, initial=start, unit="step", desc="train", disable=not self.active)
        self.log = RunLog(out, self.active)
        self.start, self.t0, self.t_last, self.rate = start, time.monotonic(), time.monotonic(), None
        self.losses = (float("nan"), float("nan"))
        self.saved = start if cfg.resume else -1
        self.previewed = -1  # step of the last preview written (the final one is often a periodic one too)
        self.step = self.logged = start
        self.gan = None  # the run's gan.GanTrainer: its losses are logged, its state saved
        self.init = {}  # what the weights started from (train.initialise), for the header

    def after_step(self, step: int, la: float, lb: float, opt) -> None:
        now = time.monotonic()
        inst = self.faces_per_step / max(now - self.t_last, 1e-9)
        self.rate = inst if self.rate is None else 0.9 * self.rate + 0.1 * inst
        self.t_last, self.losses = now, (la, lb)
        self.bar.update(1)
        self.bar.set_postfix(loss_a=f"{la:.4f}", loss_b=f"{lb:.4f}", faces_s=f"{self.rate:.1f}")
        self.step = step
        if step % self.cfg.log_every == 0:
            self._log()
        if self.cfg.preview_every and step % self.cfg.preview_every == 0:
            self.preview(step)
        if self.cfg.save_every and step % self.cfg.save_every == 0:
            self.checkpoint(step, opt)

    def _log(self) -> None:
        self.logged = self.step
        extra = self.gan.last if self.gan is not None else {}
        self.log.write(self.step, loss_a=self.losses[0], loss_b=self.losses[1], faces_per_s=self.rate, **extra)

    def preview(self, step: int) -> None:
        if not self.active or step == self.previewed:
            return
        img = preview(self.model, *self.views)
        provenance.write_labeled_image(self.out / "previews" / f"step_{step:06d}.png", img, "swap-training-preview",
                                       step=step, faceset_a=self.sets[0].root, faceset_b=self.sets[1].root)
        self.previewed = step

    def checkpoint(self, step: int, opt) -> None:
        if self.active and step != self.saved:
            extra = self.gan.state() if self.gan is not None else None
            save_checkpoint(self.out, self.model, opt, step, model_info(*self.sets, step, self.cfg, self.init), extra)
            self.saved = step

    def summary(self, step: int) -> TrainSummary:
        secs = time.monotonic() - self.t0
        done = step - self.start
        return TrainSummary(str(self.out), self.rank, step, done, round(secs, 2), self.losses[0], self.losses[1],
                            done * self.faces_per_step / secs if secs > 0 else 0.0)

    def close(self) -> None:
        if self.step != self.logged:  # the last step, when it fell between log lines
            self._log()
        self.bar.close()
        self.log.close()

