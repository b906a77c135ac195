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
