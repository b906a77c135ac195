"""dlib's face-recognition net read out of its own file (detect/dlibnet.py): the same descriptor as dlib's."""
import dataclasses
import os

import cv2
import dlib
import numpy as np
import pytest
import torch

from doppel.detect import config, detectors, dlibnet
from doppel.errors import DoppelError
from doppel.faces import finder


@pytest.fixture(scope="module")
def chips(data_dir):
    """dlib's own 150x150 chips (5-point alignment, padding 0.25) of two photos of two people."""
    sp = dlib.shape_predictor(os.path.join(finder.models_dir(), "shape_predictor_5_face_landmarks.dat"))
    det = dlib.get_frontal_face_detector()
    out = []
    for name in ("obama.jpg", "biden.jpg"):
        img = cv2.cvtColor(cv2.imread(str(data_dir / "images" / name)), cv2.COLOR_BGR2RGB)
        box = max(det(img, 1), key=lambda r: r.area())
        out.append(np.asarray(dlib.get_face_chip(img, sp(img, box), dlibnet.CHIP, 0.25)))
    return np.stack(out)


def test_backbone_gives_dlibs_descriptor(chips):
    rec = dlib.face_recognition_model_v1(os.path.join(finder.models_dir(), dlibnet.FILE))
    want = np.array([rec.compute_face_descriptor(c) for c in chips])
    with torch.no_grad():
        got = dlibnet.Backbone().eval()(detectors.to_tensor(chips)).numpy()
    assert np.abs(got - want).max() < 1e-4  # float32 rounding only
    # and it is a face descriptor: the two people are far apart (dlib's threshold is 0.6)
    assert np.linalg.norm(got[0] - got[1]) > 0.6


def test_dlib_cnn_starts_from_dlibs_weights(chips):
    """The detector's dlib CNN holds dlib's first four levels: its feature map is the Backbone's there."""
    cnn = detectors.FaceCNN(dataclasses.replace(config.DLIB, size=dlibnet.CHIP)).eval()
    dlibnet.load_into(list(cnn.features))
    full = dlibnet.Backbone().eval()
    x = detectors.to_tensor(chips)
    with torch.no_grad():
        want = full.features[:len(cnn.features)](x)
        assert torch.allclose(cnn.features(x), want, atol=1e-5)
        assert cnn(x).shape == (2,)
    # a fresh one is not (the weights really were copied)
    with torch.no_grad():
        assert not torch.allclose(detectors.FaceCNN(config.DLIB).features(x[:, :, :128, :128]),
                                  full.features[:len(cnn.features)](x[:, :, :128, :128]), atol=1e-3)
    with pytest.raises(ValueError, match="prefix"):
        detectors.FaceCNN(dataclasses.replace(config.DLIB, widths=(32, 128)))


def test_not_a_dlib_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "x.dat"
    bad.write_bytes(b"\x01\x05con_4\x01\x02\x03\x00\x10\x00\x01\x01\x01\x01\x01\x01" + b"\x00" * 16)
    with pytest.raises(DoppelError, match="runs past the end"):
        dlibnet.read_layers(str(bad))
    with pytest.raises(DoppelError, match="cannot read"):
        dlibnet.read_layers(str(tmp_path / "missing.dat"))
    with pytest.raises(DoppelError, match="expected layers"):  # too few layers
        dlibnet._assign(dlibnet.layers(1), [("affine_", np.zeros(64, np.float32), [])])
    with pytest.raises(DoppelError, match="expected layers"):  # layers out of step (a conv given an affine's)
        dlibnet._assign(dlibnet.layers(1), list(dlibnet._params())[1:])


def test_the_pretrained_backbone_learns_slower_than_the_head():
    """cnn_fit gives a dlib CNN's backbone PRETRAINED_LR_SCALE of the learning rate: one Adam step (whose size
    is about the learning rate for every weight) moves the backbone's weights ten times less than the head's."""
    import itertools
    from doppel.detect import cnn_fit
    torch.manual_seed(0)
    cfg = dataclasses.replace(config.DLIB, size=64, widths=(32, 64))
    cnn = detectors.FaceCNN(cfg)
    assert float(cnn.head.weight.detach().abs().max()) == 0  # a pretrained backbone starts from logit 0
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    rng = np.random.default_rng(0)
    batch = (rng.integers(0, 255, (8, 64, 64, 3)).astype(np.uint8), np.array([0, 1] * 4, np.float32))
    cnn_fit.fit(cnn, lambda first: itertools.repeat(batch), steps=1, lr=1e-3)
    moved = {k: float((v - before[k]).abs().max()) for k, v in cnn.state_dict().items()}
    assert moved["head.weight"] == pytest.approx(1e-3, rel=0.01)
    assert moved["features.1.weight"] == pytest.approx(1e-3 * cnn_fit.PRETRAINED_LR_SCALE, rel=0.01)
    again = detectors.FaceCNN(cfg)  # --pretrained-lr-share sets the share
    before = {k: v.clone() for k, v in again.state_dict().items()}
    cnn_fit.fit(again, lambda first: itertools.repeat(batch), steps=1, lr=1e-3, pretrained_lr_share=0.5)
    assert float((again.features[1].weight.detach() - before["features.1.weight"]).abs().max()) == pytest.approx(5e-4, rel=0.01)
