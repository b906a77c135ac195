"""The GAN variant: composite and losses on planted tensors, the critic learning, exact resume, the learned mask."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from doppel import cli, media, provenance
from doppel.errors import DoppelError
from doppel.faces import mask as masks
from doppel.faceset import FaceSet
from doppel.swap import convert, gan, train
from doppel.swap.model import build, read_header

FAST = dict(batch=2, workers=0, preview_every=0, save_every=1000, log_every=1)


def test_composite_formula_on_planted_tensors():
    colour = torch.full((1, 3, 4, 4), 0.8)
    base = torch.full((1, 3, 4, 4), 0.2)
    alpha = torch.tensor([0.0, 0.25, 0.5, 1.0]).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    out = gan.composite(colour, alpha, base)
    assert torch.allclose(out[0, :, 0], torch.tensor([0.2, 0.35, 0.5, 0.8]).expand(3, 4))
    with pytest.raises(ValueError, match="alpha"):
        gan.composite(colour, alpha.expand(1, 3, 4, 4), base)


def test_edge_loss_against_hand_computed_value():
    target = torch.zeros(1, 1, 3, 3)
    target[0, 0, 1, 1] = 1.0
    pred = torch.zeros_like(target)
    # cropped to 2x2: d/dy = [[0, 1], [0, -1]], d/dx = [[0, 0], [1, -1]]; mean |.| = 0.5 each
    assert gan.edge_loss(pred, target).item() == pytest.approx(1.0)
    w = torch.zeros_like(target)
    w[0, 0, 1, 1] = 1.0  # keeps only the centre pixel's |1| in each: 1/4 + 1/4
    assert gan.edge_loss(pred, target, w).item() == pytest.approx(0.5)
    dy, dx = np.diff(target[0, 0].numpy(), axis=0)[:, :-1], np.diff(target[0, 0].numpy(), axis=1)[:-1]
    assert gan.edge_loss(pred, target).item() == pytest.approx(np.abs(dy).mean() + np.abs(dx).mean())
    assert gan.tv(target).item() == pytest.approx(1.0)


def test_mask_and_colour_stay_in_range():
    torch.manual_seed(0)
    model = build("lite", mask=True).eval()
    with torch.no_grad():
        for p in model.decoders["b"].out.parameters():
            p.mul_(50)  # drive the last layer hard: tanh and sigmoid must still bound it
        colour, alpha = model(torch.rand(3, 3, 64, 64), "b")
    assert alpha.shape == (3, 1, 64, 64) and colour.shape == (3, 3, 64, 64)
    assert alpha.min() >= 0 and alpha.max() <= 1 and colour.min() >= 0 and colour.max() <= 1
    assert alpha.max() - alpha.min() > 0.5  # not stuck at a constant


def test_schedule_follows_the_reference_stages():
    s = [gan.stage(i, 100) for i in (0, 19, 25, 30, 45, 55, 70, 85, 95)]
    assert [x.perceptual for x in s] == [False, False] + [True] * 7
    assert [x.hinge for x in s] == [False, False, False, True, True, True, False, True, False]
    assert [x.margin for x in s[3:6]] == [0.5, 0.2, 0.4]
    assert [x.lr_factor for x in s] == [1, 1, 1, 1, 1, 0.3, 0.3, 0.1, 0.1]


def test_occluders_are_painted_alike_on_input_and_target():
    hull = np.zeros((8, 1, 32, 32), np.float32)
    hull[:, :, 4:28, 6:26] = 1
    batch = {"input": torch.rand(8, 3, 32, 32), "target": torch.rand(8, 3, 32, 32), "mask": torch.from_numpy(hull)}
    out = gan.occlude(batch, np.random.default_rng(1), gan.GanConfig(occlude=1.0))
    occ = out["occluder"][:, 0] > 0
    areas = occ.float().sum((1, 2)) / torch.from_numpy(hull[:, 0].sum((1, 2)))
    assert (areas > 0.03).all() and (areas < 0.35).all(), areas
    for k in ("input", "target"):
        keep = ~occ[:, None].expand(-1, 3, -1, -1)
        assert torch.equal(out[k][keep], batch[k][keep])  # untouched outside the ellipse
    inside = occ[:, None].expand(-1, 3, -1, -1)
    assert torch.equal(out["input"][inside], out["target"][inside])  # the same paint on both
    none = gan.occlude(batch, np.random.default_rng(1), gan.GanConfig(occlude=0.0))
    assert none is batch


def test_critic_learns_to_separate_real_from_fake():
    """Planted data: real targets are smooth ramps, fakes are noise; after 60 critic steps real scores higher."""
    torch.manual_seed(0)
    trainer = gan.GanTrainer(gan.GanConfig(lr_d=1e-3), 100, 0, 0, 1, torch.device("cpu"))
    ramp = torch.linspace(0, 1, 32)
    rng = np.random.default_rng(0)

    def person():
        x = torch.rand(4, 3, 32, 32)
        t = (ramp.view(1, 1, 1, 32) * torch.rand(4, 3, 1, 1)).expand(4, 3, 32, 32).contiguous()
        noise = torch.rand(4, 3, 32, 32)
        return {"input": x, "target": t, "fake": noise, "colour": noise}

    def scores():
        p = person()
        d = trainer.critics.nets["a"]
        with torch.no_grad():
            return (d(torch.cat([p["target"], p["input"]], 1))[0].mean().item(),
                    d(torch.cat([p["fake"], p["input"]], 1))[0].mean().item())

    before = scores()
    for _ in range(60):
        lam = torch.from_numpy(rng.beta(0.2, 0.2, (2, 1, 1, 1, 1)).astype(np.float32))
        trainer._critic_step({"a": person(), "b": person()}, lam)
    real, fake = scores()
    assert math.isfinite(trainer.last["loss_d_a"])
    assert real - fake > 0.5 and real - fake > before[0] - before[1] + 0.4, (before, real, fake)


def _interrupt_at(monkeypatch, n):
    real, calls = gan.GanTrainer.step, {"n": 0}

    def step(*a, **k):
        if calls["n"] == n:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(*a, **k)
    monkeypatch.setattr(gan.GanTrainer, "step", step)


@pytest.fixture(scope="module")
def gan_runs(facesets, tmp_path_factory):
    """One uninterrupted 4-step GAN run and one stopped at step 2 by Ctrl-C, then resumed to 4."""
    root = tmp_path_factory.mktemp("gan")
    whole, broken = root / "whole", root / "broken"
    cfg = dict(steps=4, seed=5, gan=True, gan_cfg=gan.GanConfig(total=4, occlude=1.0), **FAST)
    train.train(*facesets, whole, train.TrainConfig(**{**cfg, "preview_every": 4}))
    mp = pytest.MonkeyPatch()
    _interrupt_at(mp, 2)
    with pytest.raises(KeyboardInterrupt):
        train.train(*facesets, broken, train.TrainConfig(**cfg))
    mp.undo()
    assert read_header(broken).info["step"] == 2
    resumed = train.train(*facesets, broken, train.TrainConfig(**cfg, resume=True))
    return whole, broken, resumed, cfg


def test_gan_resume_is_bit_exact_with_the_critics(gan_runs):
    whole, broken, resumed, _ = gan_runs
    assert resumed.step == 4 and resumed.steps_run == 2
    for name in ("model.safetensors", "train_state.safetensors"):
        a, b = load_file(str(whole / name)), load_file(str(broken / name))
        assert a.keys() == b.keys()
        diff = [k for k in a if not torch.equal(a[k], b[k])]
        assert not diff, f"{name}: {diff[:5]}"
    state = load_file(str(whole / "train_state.safetensors"))
    assert any(k.startswith("gan.d.nets.a.") for k in state) and any(k.startswith("gan.opt.") for k in state)


def test_gan_losses_are_finite_and_previews_show_mask(gan_runs):
    whole = gan_runs[0]
    lines = [json.loads(l) for l in (whole / "log.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2, 3, 4]
    for l in lines:
        for k in ("loss_a", "loss_b", "loss_d_a", "loss_d_b", "edge_a", "mask_b", "pl_a"):
            assert math.isfinite(l[k]), (k, l)
    assert lines[0]["pl_a"] == 0 and lines[-1]["pl_a"] > 0  # the schedule turns feature matching on
    cfg = read_header(whole).config
    assert cfg.mask
    img = media.read_image(whole / "previews" / "step_000004.png")
    assert img.shape == (14 * 64, 6 * 64, 3)  # per person: input + (colour, mask, composite) x 2 decoders
    mask_row = img[2 * 64:3 * 64].astype(int)
    assert np.abs(mask_row[..., 0] - mask_row[..., 1]).max() <= 1  # grey: the mask drawn as is
    assert provenance.read_label(whole / "previews" / "step_000004.png")["synthetic"] is True


def test_resuming_across_variants_is_refused(gan_runs, facesets, tmp_path):
    whole, _, _, cfg = gan_runs
    with pytest.raises(DoppelError, match="GAN model; resume it with --gan"):
        train.train(*facesets, whole, train.TrainConfig(**{**cfg, "gan": False, "steps": 5}, resume=True))
    plain = tmp_path / "plain"
    train.train(*facesets, plain, train.TrainConfig(steps=1, **FAST))
    with pytest.raises(DoppelError, match="plain model; resume it without --gan"):
        train.train(*facesets, plain, train.TrainConfig(**{**cfg, "steps": 2}, resume=True))


def test_swap_with_the_learned_mask_of_a_gan_model(gan_runs, facesets, tmp_path):
    whole = gan_runs[0]
    fa = FaceSet.open(facesets[0])
    rec = fa.faces[0]
    frame = next(f for f in media.iter_frames(rec.source) if f.index == rec.frame_index).image
    photo = tmp_path / "a.png"
    media.write_image(photo, frame)
    settings = convert.SwapSettings(mask=masks.MaskConfig("learned"))
    s = convert.swap(photo, whole, tmp_path / "out.png", settings)
    assert s.swapped == 1
    out = media.read_image(tmp_path / "out.png").astype(int)
    from doppel.provenance import watermark  # every output pixel carries the mark: compare with the marked input
    marked = watermark.embed(frame, watermark.payload_of(provenance.read_label(tmp_path / "out.png"))).astype(int)
    changed = np.abs(out - marked).max(-1) > 2
    assert changed.sum() > 50
    lm = rec.landmarks_array
    (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
    pad = 0.35 * (x1 - x0)  # hull raised over the forehead, plus the feather
    ys, xs = np.nonzero(changed)
    assert xs.min() >= x0 - pad and xs.max() <= x1 + pad and ys.min() >= y0 - 1.2 * pad and ys.max() <= y1 + pad
    lab = provenance.read_label(tmp_path / "out.png")
    assert lab["synthetic"] is True and lab["details"]["variant"] == "gan"  # the detector's training tells GAN swaps apart


@pytest.mark.slow
def test_torchrun_gan_ranks_stay_identical(facesets, tmp_path):
    src = Path(train.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1",
           train.RANK_DUMP_ENV: str(tmp_path / "ranks")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "doppel.cli", "train", *map(str, facesets), "-o", str(tmp_path / "m"), "--gan",
           "--steps", "3", "--batch", "2", "--workers", "0"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    r0, r1 = (load_file(str(tmp_path / "ranks" / f"rank{i}.safetensors")) for i in (0, 1))
    saved = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert all(torch.equal(r0[k], r1[k]) and torch.equal(r0[k], saved[k]) for k in r0)
    assert any(k.startswith("gan.d.") for k in load_file(str(tmp_path / "m" / "train_state.safetensors")))


def test_cli_rejects_bad_gan_flags(facesets, tmp_path, capsys):
    for flag, value in (("--gan-schedule", "0"), ("--gan-occlude", "1.5")):
        code = cli.main(["train", *map(str, facesets), "-o", str(tmp_path / "m"), "--gan", flag, value])
        err = capsys.readouterr().err
        assert code == 2 and flag in err and err.count("\n") == 1, err
    assert not (tmp_path / "m" / "model.safetensors").exists()
