"""The audio-to-mouth LSTM: overfits a short real clip; checkpoints round-trip and resume."""
import numpy as np
import pytest
import torch

from doppel.errors import DoppelError
from doppel.lipsync import model, train

CLIP = "retalking_face_5.mp4"


def _fit_error(ck, clip):
    """Mean squared error of predicted vs real PCA coefficients over the whole clip, and their variance."""
    pred = model.predict(ck.model, clip.features)
    real = ck.pca.encode(clip.shapes)
    return float(((pred - real) ** 2).mean()), float((real ** 2).mean())


def test_lstm_overfits_a_short_clip(data_dir, tmp_path):
    video = str(data_dir / "talking" / CLIP)
    cfg = train.TrainConfig(steps=300, minutes=2, seq_len=200, batch=8, lr=1e-2, noise=0.0, channel=0.0,
                            save_every=1000)
    ck = train.train([video], tmp_path / "m.lip", cfg, model.LipConfig(hidden=60, n_coeffs=6))
    err, var = _fit_error(ck, train.load_clip(video))
    assert err < 0.35 * var, f"the model did not fit its own training clip: mse {err:.3f} vs variance {var:.3f}"


def test_checkpoint_round_trip_and_resume(data_dir, tmp_path):
    video = str(data_dir / "talking" / CLIP)
    out = tmp_path / "m.lip"
    cfg = train.TrainConfig(steps=5, seq_len=100, batch=2, save_every=1000)
    ck = train.train([video], out, cfg, model.LipConfig(hidden=8, n_coeffs=4, delay=5))
    back = model.load(out)
    assert back.step == 5 and back.model.cfg == ck.model.cfg
    feats = np.random.default_rng(0).normal(size=(50, 28)).astype(np.float32)
    assert np.allclose(model.predict(back.model, feats), model.predict(ck.model, feats), atol=1e-6)
    assert np.allclose(back.pca.components, ck.pca.components) and back.pca.scale == ck.pca.scale
    assert set(back.optimizer_state["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    more = train.train([video], out, train.TrainConfig(steps=8, seq_len=100, batch=2), model.LipConfig(hidden=99))
    assert more.step == 8 and more.model.cfg.hidden == 8  # resumed: the saved model, not a new one
    assert model.load(out).step == 8


def test_prediction_is_aligned_despite_the_delay():
    """predict() returns one output per input frame, each the net's output `delay` frames later."""
    net = model.LipLSTM(model.LipConfig(hidden=4, n_coeffs=3, delay=7))
    feats = np.random.default_rng(0).normal(size=(40, 28)).astype(np.float32)
    out = model.predict(net, feats)
    full = net(torch.from_numpy(np.concatenate([feats, np.zeros((7, 28), np.float32)])[None]))[0].detach().numpy()
    assert out.shape == (40, 3) and np.allclose(out, full[7:], atol=1e-6)


def test_bad_model_files_are_refused(tmp_path):
    bad = tmp_path / "x.lip"
    bad.write_bytes(b"garbage")
    with pytest.raises(DoppelError, match="not a readable doppel lip-sync model"):
        model.load(bad)
    with pytest.raises(DoppelError, match="no such"):
        model.load(tmp_path / "missing.lip")


def test_export_drops_training_state_and_keeps_predictions(data_dir, tmp_path):
    video = str(data_dir / "talking" / CLIP)
    src, dst = tmp_path / "m.lip", tmp_path / "ship.lip"
    train.train([video], src, train.TrainConfig(steps=3, seq_len=100, batch=2), model.LipConfig(hidden=32))
    model.export(src, dst)
    a, b = model.load(src), model.load(dst)
    assert b.optimizer_state is None and "rng" not in b.meta and b.meta["clips"] == [CLIP]
    assert dst.stat().st_size < 0.5 * src.stat().st_size
    feats = np.random.default_rng(1).normal(size=(80, 28)).astype(np.float32)
    assert np.abs(model.predict(a.model, feats) - model.predict(b.model, feats)).max() < 0.02  # float16 weights


def test_bundled_model_is_found_by_name():
    ck = model.load("grid_s1")
    assert ck.meta["holdout"] and ck.texture is not None and ck.optimizer_state is None
    with pytest.raises(DoppelError, match="bundled models: grid_s1"):
        model.load("no_such_model")
