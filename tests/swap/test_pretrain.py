"""The face prior: identity split, a few-step pretrain with resume, and starting `train` from a prior."""
import hashlib
import json
import re

import pytest
import torch

from doppel import cli, provenance
from doppel.errors import DoppelError
from doppel.swap import pretrain, train
from doppel.swap.model import build, load_model, read_header


def test_identity_key_groups_lfw_photos_of_one_person():
    assert pretrain.identity_key("/x/George_W_Bush_0001.jpg") == "George_W_Bush"
    assert pretrain.identity_key("George_W_Bush_0412.jpg") == "George_W_Bush"
    assert pretrain.identity_key("/clips/talk_1.mp4") == "talk_1"
    assert pretrain.identity_key("100_1_0_20170110183726390.jpg.chip.jpg") == "100_1_0_20170110183726390"


def test_hold_out_is_stable_and_near_the_share():
    keys = [f"person_{i}" for i in range(4000)]
    held = [k for k in keys if pretrain.held_out(k, 0.1, 0)]
    assert 0.08 < len(held) / len(keys) < 0.12
    assert held == [k for k in keys if pretrain.held_out(k, 0.1, 0)]  # same split every time
    assert held != [k for k in keys if pretrain.held_out(k, 0.1, 1)]  # the seed moves it


def test_corpus_split_never_puts_one_identity_on_both_sides(facesets):
    # two clips = two identities; with a share of 0.5 and seeds until they split, each is wholly on one side
    for seed in range(20):
        try:
            data, val, facts = pretrain.load_corpus(list(facesets), 0.5, seed)
        except DoppelError:
            continue  # this seed held out nobody
        assert facts["identities"] == 1 and facts["val_identities"] == 1
        assert len(data.crops) + len(val) == sum(len(__import__("doppel.faceset").faceset.FaceSet.open(p))
                                                 for p in facesets)
        return
    pytest.fail("no seed split the two identities")


def _split_seed(facesets) -> int:
    for seed in range(50):
        try:
            pretrain.load_corpus(list(facesets), 0.5, seed)
            return seed
        except DoppelError:
            pass
    raise AssertionError("no seed holds one of the two clips out")


@pytest.fixture(scope="module")
def prior(facesets, tmp_path_factory):
    out = tmp_path_factory.mktemp("prior")
    cfg = pretrain.PretrainConfig(steps=12, batch=6, lr=1e-3, hold_out=0.5, seed=_split_seed(facesets),
                                  save_every=6, val_every=6, log_every=1, workers=0)
    s = pretrain.pretrain(list(facesets), out, cfg)
    return out, s, cfg


def test_pretrain_writes_a_prior_that_learns(prior, facesets):
    out, s, cfg = prior
    assert s["step"] == 12 and (out / pretrain.PRIOR_FILE).is_file()
    lines = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    losses = [l["loss"] for l in lines if "loss" in l]
    assert len(losses) == 12
    # the trained prior rebuilds its training faces better than the same network untrained
    data, _, _ = pretrain.load_corpus(list(facesets), cfg.hold_out, cfg.seed)
    x = torch.from_numpy(data.crops).permute(0, 3, 1, 2).float().div(255)
    torch.manual_seed(cfg.seed)
    fresh, trained = build("lite"), build("lite")
    pretrain.init_from_prior(trained, out)
    with torch.no_grad():
        err = [(m(x, "a")[0] - x).abs().mean().item() for m in (fresh, trained)]
    assert err[1] < 0.9 * err[0], err
    vals = [l["val_ssim"] for l in lines if "val_ssim" in l]
    assert len(vals) >= 2 and all(0 < v < 1 for v in vals)
    cfg, info, tensors = pretrain.read_prior(out)
    assert cfg.preset == "lite" and info["step"] == 12 and info["val_identities"] == 1
    assert any(k.startswith("encoder.") for k in tensors) and any(k.startswith("decoder.") for k in tensors)
    preview = sorted((out / "previews").glob("*.png"))[-1]
    assert provenance.read_label(preview)["synthetic"] is True


def test_pretrain_resume_continues_the_step_count(prior, facesets, tmp_path):
    out, _, cfg = prior
    import shutil
    copy = tmp_path / "p"
    shutil.copytree(out, copy)
    s = pretrain.pretrain(list(facesets), copy, pretrain.PretrainConfig(**{**cfg.__dict__, "steps": 15, "resume": True}))
    assert s["step"] == 15 and s["steps_run"] == 3
    with pytest.raises(DoppelError, match="already holds a prior"):
        pretrain.pretrain(list(facesets), copy, cfg)


def test_train_starts_from_the_prior(prior, facesets, tmp_path):
    out, _, _ = prior
    _, _, tensors = pretrain.read_prior(out)
    model = build("lite")
    pretrain.init_from_prior(model, out / pretrain.PRIOR_FILE)
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, tensors[f"encoder.{k}"].float())
    for who in "ab":
        for k, v in model.decoders[who].state_dict().items():
            assert torch.equal(v, tensors[f"decoder.{k}"].float())
    # through the CLI: the model header records which prior it started from, down to the file's hash
    rc = cli.main(["train", str(facesets[0]), str(facesets[1]), "-o", str(tmp_path / "m"), "--steps", "1",
                   "--batch", "2", "--workers", "0", "--init", str(out / pretrain.PRIOR_FILE)])
    assert rc == 0
    info = load_model(tmp_path / "m")[1].info
    assert info["init"] == "prior" and info["init_requested"] == str(out / pretrain.PRIOR_FILE)
    assert info["prior_file"] == str(out / pretrain.PRIOR_FILE) and info["prior_format"] == pretrain.PRIOR_FORMAT
    assert info["prior_step"] == 12
    assert info["prior_sha256"] == hashlib.sha256((out / pretrain.PRIOR_FILE).read_bytes()).hexdigest()[:16]


def _train_cli(facesets, out, *extra):
    return cli.main(["train", str(facesets[0]), str(facesets[1]), "-o", str(out), "--steps", "1",
                     "--batch", "2", "--workers", "0", "--preview-every", "0", *map(str, extra)])


def test_the_header_records_the_start_actually_used(facesets, tmp_path):
    shipped = pretrain.shipped_prior("lite")
    assert shipped is not None and pretrain.read_prior(shipped)[0].preset == "lite"  # the package ships one
    assert _train_cli(facesets, tmp_path / "lite") == 0  # default: the shipped prior
    info = read_header(tmp_path / "lite").info
    assert info["init"] == "prior" and info["init_requested"] == "prior"
    assert info["prior_file"] == f"shipped:{shipped.name}" and info["prior_format"] == pretrain.PRIOR_FORMAT
    assert info["prior_step"] == pretrain.read_prior(shipped)[1]["step"]
    assert info["prior_sha256"] == hashlib.sha256(shipped.read_bytes()).hexdigest()[:16]
    # a resumed run keeps the record of how the weights started
    assert _train_cli(facesets, tmp_path / "lite", "--steps", "2", "--resume") == 0
    again = read_header(tmp_path / "lite").info
    assert again["step"] == 2 and {k: again[k] for k in info if k.startswith(("init", "prior"))} == \
        {k: v for k, v in info.items() if k.startswith(("init", "prior"))}
    # no prior ships for `original`: asked for the prior, it trains from scratch, and the header says so
    assert pretrain.shipped_prior("original") is None
    assert _train_cli(facesets, tmp_path / "orig", "--preset", "original") == 0
    info = read_header(tmp_path / "orig").info
    assert info["init"] == "scratch" and info["init_requested"] == "prior"
    assert not any(k.startswith("prior_") for k in info)
    assert _train_cli(facesets, tmp_path / "scratch", "--init", "scratch") == 0
    assert read_header(tmp_path / "scratch").info["init"] == "scratch"


def test_fp16_export_keeps_the_reconstruction(prior, tmp_path):
    out, _, _ = prior
    half = pretrain.export(out, tmp_path / "half.safetensors")
    a, b = build("lite"), build("lite")
    pretrain.init_from_prior(a, out)
    pretrain.init_from_prior(b, half)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        diff = (a(x, "a")[0] - b(x, "a")[0]).abs().max().item()
    assert diff < 0.02
    assert half.stat().st_size < 0.6 * (out / pretrain.PRIOR_FILE).stat().st_size


def test_a_prior_of_another_preset_is_refused_naming_both(prior, capsys, facesets, tmp_path):
    out, _, _ = prior
    model = build("original")
    with pytest.raises(DoppelError, match=r"preset lite .*preset original"):
        pretrain.init_from_prior(model, out)
    # through the CLI (the face sets are 64 px, so `original` fits them but not the lite prior)
    capsys.readouterr()
    assert _train_cli(facesets, tmp_path / "m", "--preset", "original", "--init", out / pretrain.PRIOR_FILE) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(r"preset lite .*preset original", err[0]), err
    assert not (tmp_path / "m").exists()  # nothing written, not even an empty folder


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_or_foreign_prior_gives_a_one_line_error(prior, facesets, tmp_path, capsys, damage):
    out, _, _ = prior
    broken = tmp_path / "broken.safetensors"
    whole = (out / pretrain.PRIOR_FILE).read_bytes()
    broken.write_bytes(whole[: len(whole) // 2] if damage == "truncated" else bytes(range(256)) * 64)
    capsys.readouterr()
    rc = _train_cli(facesets, tmp_path / "m", "--init", broken)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "not a readable doppel face prior" in err[0], err
    assert not (tmp_path / "m").exists()  # the docs promise nothing is written: no MODEL/previews/ either


def test_a_swap_model_is_not_taken_for_a_prior(facesets, tmp_path):
    train_model = tmp_path / "model_as_prior"
    train.train(*facesets, train_model, train.TrainConfig(steps=1, batch=2, workers=0, init="scratch",
                                                          preview_every=0))
    with pytest.raises(DoppelError, match="not a doppel face prior"):
        pretrain.init_from_prior(build("lite"), train_model / "model.safetensors")


def test_a_masked_gan_decoder_from_the_prior_draws_the_prior_colours(prior):
    out, _, _ = prior
    plain, masked = build("lite"), build("lite", mask=True)
    pretrain.init_from_prior(plain, out)
    pretrain.init_from_prior(masked, out)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = plain(x, "b")[0], masked(x, "b")[0]
    assert (a - b).abs().max().item() < 1e-5
