"""State files: written atomically, read back exactly, another kind or a newer version refused in one line."""
import pytest
import torch

from doppel import checkpoint
from doppel.errors import DoppelError


def test_state_round_trip_with_optimizer_and_rng(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    opt_t, groups = checkpoint.optimizer_tensors(opt)
    rng_t, rng_meta = checkpoint.rng_state()
    expected = torch.rand(3)  # what the RNG gives next
    checkpoint.save_state(tmp_path / "s.safetensors", "doppel-test/2", {**opt_t, **rng_t},
                          {"step": 7, "groups": groups, "rng": rng_meta})
    tensors, header = checkpoint.load_state(tmp_path / "s.safetensors", "doppel-test/2")
    opt2 = torch.optim.Adam(model.parameters(), lr=0.1)
    checkpoint.load_optimizer(opt2, tensors, header["groups"])
    checkpoint.set_rng_state(tensors, header["rng"])
    assert header["step"] == 7 and torch.equal(torch.rand(3), expected)
    for k, v in checkpoint.optimizer_tensors(opt2)[0].items():
        assert torch.equal(v, opt_t[k])
    assert [p.name for p in tmp_path.iterdir()] == ["s.safetensors"]  # no temporary left behind


@pytest.mark.parametrize("fmt, message", [("doppel-other/1", "holds 'doppel-test/2', not 'doppel-other/1'"),
                                          ("doppel-test/1", "newer than the 'doppel-test/1'")])
def test_another_kind_or_a_newer_version_is_refused(tmp_path, fmt, message):
    checkpoint.save_state(tmp_path / "s.safetensors", "doppel-test/2", {"x": torch.zeros(1)}, {})
    with pytest.raises(DoppelError, match=message) as e:
        checkpoint.read_header(tmp_path / "s.safetensors", fmt)
    assert "\n" not in str(e.value)
    assert checkpoint.read_header(tmp_path / "s.safetensors", "doppel-test/3") == {}  # an older version is read


def test_a_damaged_file_is_refused_in_one_line(tmp_path):
    (tmp_path / "s.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DoppelError, match="not a readable doppel state file"):
        checkpoint.read_header(tmp_path / "s.safetensors", "doppel-test/1")


def test_every_model_kind_writes_the_typed_header_and_refuses_the_others(tmp_path):
    """A swap model, a lip model, a face prior and a detector CNN all go through `checkpoint`: each file reads
    back as a Header whose config is the kind's dataclass, and each kind's loader refuses the others in one
    line naming both formats."""
    import numpy as np

    from doppel.detect import detectors as dmodels
    from doppel.lipsync import model as lip, shapes
    from doppel.swap import pretrain
    from doppel.swap.model import FORMAT as SWAP, SwapConfig, build, load_model, save_model

    swap = save_model(tmp_path / "swap", build("lite"), {"coverage": 0.8, "step": 3})
    pca = shapes.MouthPCA(np.zeros(40), np.eye(3, 40), 1.5)
    ck = lip.Checkpoint(lip.LipLSTM(lip.LipConfig(hidden=4, n_coeffs=3)), pca, step=5, meta={"loss": 0.25})
    lip.save(tmp_path / "m.lip", ck)
    prior = pretrain.save_prior(tmp_path / "prior.safetensors", build("lite"), {"step": 9})
    lin = dmodels.Linear(["x"], [0.0], [1.0], [1.0], 0.0)
    det = dmodels.Detectors(dmodels.FaceCNN(), lin, lin, dmodels.Platt(1.0, 0.0), {"version": "detect-test"})
    det.save(tmp_path / "det")

    h = checkpoint.read(swap, SWAP, SwapConfig)
    assert h.kind == "doppel-swap" and h.config == SwapConfig() and isinstance(h.config.enc_channels, tuple)
    assert h.info == {"coverage": 0.8, "step": 3}
    h = checkpoint.read(tmp_path / "m.lip", lip.FORMAT, lip.LipConfig)
    assert h.config == ck.model.cfg and h.info == {"loss": 0.25} and h.sections["step"] == 5
    back = lip.load(tmp_path / "m.lip")
    assert back.step == 5 and back.pca.scale == 1.5 and back.meta["loss"] == 0.25
    assert checkpoint.read(prior, pretrain.PRIOR_FORMAT, SwapConfig).info == {"step": 9}
    h = checkpoint.read(tmp_path / "det" / dmodels.CNN_FILE, dmodels.FORMAT)
    assert h.info == {"version": "detect-test"} and dmodels.Detectors.load(tmp_path / "det").version == "detect-test"

    for load, wrong, found in ((load_model, tmp_path / "m.lip", lip.FORMAT), (lip.load, swap, SWAP),
                               (pretrain.read_prior, swap, SWAP)):
        with pytest.raises(DoppelError, match=f"holds '{found}', not") as e:
            load(wrong)
        assert "\n" not in str(e.value)


def test_shipped_files_of_the_first_layout_still_read():
    """The shipped lip model (format 1: its record under "train"), prior and detector load through checkpoint."""
    from doppel.detect import detectors as dmodels
    from doppel.lipsync import model as lip
    from doppel.swap import pretrain

    ck = lip.load("grid_s1")
    assert ck.step > 0 and ck.meta.get("clips")  # the training record survived the move to "info"
    assert pretrain.read_prior(pretrain.shipped_prior("lite"))[1]["step"] > 0
    assert dmodels.Detectors.load().version.startswith("detect-")


def test_a_config_that_does_not_fit_is_refused_in_one_line(tmp_path):
    from doppel.swap.model import FORMAT, SwapConfig

    checkpoint.write(tmp_path / "s.safetensors", FORMAT, {"x": torch.zeros(1)}, {"size": 70})
    with pytest.raises(DoppelError, match="SwapConfig does not fit") as e:
        checkpoint.read(tmp_path / "s.safetensors", FORMAT, SwapConfig)
    assert "\n" not in str(e.value)
