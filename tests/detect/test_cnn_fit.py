"""The CNN's training loop: an interrupted run resumes to the very weights of an uninterrupted one,
validation picks the best checkpoint, a state file of another CNN shape is refused, and the training-only
change head (seg_weight) learns where a planted change is."""
import numpy as np
import pytest
import torch

from doppel.detect import cnn_fit, detectors
from doppel.errors import DoppelError

CFG = detectors.CNNConfig(size=32, coverage=0.7, widths=(4, 8), arch="plain")


def _batches(first, stop_after=None, change=False):
    """Planted data: 'fake' crops carry a bright square, so the loss can fall; seeded per step. With
    `change`, the square sits in a random quarter and a third array, the change mask, says where (the last
    crop's mask unknown, NaN, as for a face of a fake video)."""
    for i in range(first, 10_000):
        if stop_after is not None and i >= stop_after:
            raise KeyboardInterrupt
        rng = np.random.default_rng(i)
        x = rng.integers(0, 120, (8, 32, 32, 3)).astype(np.uint8)
        y = np.array([0, 1] * 4, np.float32)
        if not change:
            x[1::2, 10:20, 10:20] = 250
            yield x, y
            continue
        mask = np.zeros((8, 32, 32), np.float16)
        for j in range(1, 8, 2):
            r, c = rng.integers(0, 2, 2) * 16
            x[j, r:r + 16, c:c + 16] = 250
            mask[j, r:r + 16, c:c + 16] = 1
        mask[7] = np.nan
        yield x, y, mask


def _seg_batches(first, stop_after=None):
    return _batches(first, stop_after, change=True)


def _model():
    torch.manual_seed(0)
    return detectors.FaceCNN(CFG)


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    torch.set_num_threads(1)
    whole = _model()
    cnn_fit.fit(whole, _batches, steps=12, lr=1e-2)
    part = _model()
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C at step 5 leaves a checkpoint of step 5
        cnn_fit.fit(part, lambda first: _batches(first, stop_after=5), steps=12, lr=1e-2, state_dir=tmp_path)
    assert (tmp_path / cnn_fit.STATE_FILE).is_file()
    again = _model()  # a new process: fresh weights, everything else from the checkpoint
    res = cnn_fit.fit(again, _batches, steps=12, lr=1e-2, state_dir=tmp_path, resume=True)
    assert res.steps == 12 and len(res.losses) == 7
    for a, b in zip(whole.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_validation_keeps_the_best_checkpoint_and_the_history(tmp_path):
    torch.set_num_threads(1)
    val_x = np.concatenate([b[0] for b, _ in zip(_batches(5000), range(4))])
    val = (val_x, np.array([0, 1] * (len(val_x) // 2)))
    model = _model()
    res = cnn_fit.fit(model, _batches, steps=30, lr=1e-2, state_dir=tmp_path, val=val, every_s=0.0)
    assert len(res.history) == 30 and [h["step"] for h in res.history] == list(range(1, 31))
    aucs = [h["val_auc"] for h in res.history]
    assert res.best_auc == max(aucs) and res.history[res.best_step - 1]["val_auc"] == max(aucs)
    assert max(aucs) > 0.9  # the planted square is learnt
    assert cnn_fit.val_auc(model, val) == res.best_auc  # the model holds the best weights, not the last


def test_a_checkpoint_of_another_shape_is_refused(tmp_path):
    torch.set_num_threads(1)
    with pytest.raises(KeyboardInterrupt):
        cnn_fit.fit(_model(), lambda first: _batches(first, stop_after=2), steps=12, lr=1e-2, state_dir=tmp_path)
    other = detectors.FaceCNN(detectors.CNNConfig(size=32, coverage=0.7, widths=(4, 16), arch="plain"))
    with pytest.raises(DoppelError, match="another shape"):
        cnn_fit.fit(other, _batches, steps=12, lr=1e-2, state_dir=tmp_path, resume=True)


def test_the_change_head_learns_where_the_face_was_changed():
    torch.set_num_threads(1)
    model = _model()
    res = cnn_fit.fit(model, _seg_batches, steps=80, lr=1e-2, seg_weight=1.0)
    x, _, change = next(_seg_batches(9000))  # a batch it never saw
    with torch.no_grad():
        feats = model.features(detectors.to_tensor(x))
        torch.manual_seed(1)
        untrained = cnn_fit.change_loss(torch.nn.Conv2d(feats.shape[1], 1, 1), feats, change)
        trained = cnn_fit.change_loss(res.seg, feats, change)
    assert float(trained) < 0.35 < float(untrained)  # the square's cells told from the rest (chance: ~0.5-0.7)
    assert float(cnn_fit.change_loss(res.seg, feats, np.full_like(change, np.nan))) == 0.0  # nothing known: no loss
    assert cnn_fit.fit(_model(), _batches, steps=2, lr=1e-2).seg is None  # off by default


def test_a_change_head_run_resumes_to_the_same_weights_and_is_not_resumed_without_it(tmp_path):
    torch.set_num_threads(1)
    whole = _model()
    cnn_fit.fit(whole, _seg_batches, steps=10, lr=1e-2, seg_weight=0.5)
    part = _model()
    with pytest.raises(KeyboardInterrupt):
        cnn_fit.fit(part, lambda first: _seg_batches(first, stop_after=4), steps=10, lr=1e-2, state_dir=tmp_path,
                    seg_weight=0.5)
    with pytest.raises(DoppelError, match="change head"):
        cnn_fit.fit(_model(), _seg_batches, steps=10, lr=1e-2, state_dir=tmp_path, resume=True)
    again = _model()
    cnn_fit.fit(again, _seg_batches, steps=10, lr=1e-2, state_dir=tmp_path, resume=True, seg_weight=0.5)
    for a, b in zip(whole.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
