"""Layer shapes of the swap model for every preset, and the model file round trip."""
import pytest
import torch

from doppel.swap.model import PRESETS, SwapModel, load_model, read_header, save_model


def expected_shapes(cfg):
    s = cfg.size
    enc = [(c, s >> (i + 1), s >> (i + 1)) for i, c in enumerate(cfg.enc_channels)]
    dec = [(c, s >> (3 - i), s >> (3 - i)) for i, c in enumerate(cfg.dec_channels)]
    side = s // 32
    return enc, (cfg.latent,), (cfg.bottleneck * side * side,), (cfg.up_channels, 2 * side, 2 * side), dec


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_layer_shape(preset):
    cfg = PRESETS[preset]
    torch.manual_seed(0)
    model = SwapModel(cfg)
    seen = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=name: seen.__setitem__(n, tuple(o.shape[1:])))
             for name, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
             or name.endswith(("up", "convs.0", "convs.1", "convs.2", "convs.3", "convs.4"))
             or ".ups." in name and name.count(".") == 3]
    with torch.no_grad():
        rgb, mask = model(torch.rand(2, 3, cfg.size, cfg.size), "a")
    for h in hooks:
        h.remove()
    enc, d1, d2, up, dec = expected_shapes(cfg)
    assert [seen[f"encoder.convs.{i}"] for i in range(5)] == enc
    assert seen["encoder.dense1"] == d1 and seen["encoder.dense2"] == d2
    assert seen["encoder.up"] == up
    assert [seen[f"decoders.a.ups.{i}"] for i in range(4)] == dec
    assert seen["decoders.a.out"] == (3, cfg.size, cfg.size)
    assert rgb.shape == (2, 3, cfg.size, cfg.size) and mask is None
    assert 0 <= rgb.min() and rgb.max() <= 1


def test_model_file_round_trip(tmp_path):
    torch.manual_seed(1)
    model = SwapModel(PRESETS["lite"])
    save_model(tmp_path, model, {"step": 7})
    header = read_header(tmp_path)
    back, header2 = load_model(tmp_path)
    assert header == header2 and header.config == model.cfg and header.info == {"step": 7}
    assert header.format == "doppel-swap/1"
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x, "b")[0], back(x, "b")[0])


def test_model_facts_are_typed_and_a_model_without_coverage_is_refused(tmp_path):
    """`doppel swap` relies on the coverage and A's identity that training recorded; there is no silent
    default for a model that does not say how its faces were cut."""
    import numpy as np
    import pytest

    from doppel.errors import DoppelError
    from doppel.swap.model import ModelFacts

    model = SwapModel(PRESETS["lite"])
    ident = np.linspace(-1, 1, 128).tolist()
    save_model(tmp_path / "ok", model, {"coverage": 0.75, "size": 64, "identity_a": ident, "step": 9})
    facts = ModelFacts.of(read_header(tmp_path / "ok"))
    assert facts == ModelFacts(0.75, tuple(np.float32(ident).tolist()), 9)
    save_model(tmp_path / "bare", model, {"step": 9})
    with pytest.raises(DoppelError, match="does not record the face coverage") as e:
        ModelFacts.of(read_header(tmp_path / "bare"), tmp_path / "bare")
    assert "\n" not in str(e.value)
    save_model(tmp_path / "odd", model, {"coverage": 0.8, "identity_a": [0.0] * 5})
    with pytest.raises(DoppelError, match="128-D"):
        ModelFacts.of(read_header(tmp_path / "odd"))
