"""The partner CNN: a second face CNN of another shape whose logit is averaged with the face CNN's."""
import json

import numpy as np
import pytest
import torch

from doppel.detect import card, detectors, scan, train
from doppel.errors import DoppelError

from detect_helpers import blank_detectors

# a second face CNN of another shape and crop than the face CNN's (plain, 64 px, its own coverage)
OTHER = detectors.CNNConfig(size=64, coverage=0.8, widths=(8, 16), arch="plain")


def _with_partner(seed: int = 0) -> detectors.Detectors:
    det = blank_detectors(seed)
    torch.manual_seed(seed + 1)
    det.partner = detectors.FaceCNN(OTHER).eval()
    with torch.no_grad():  # a head that gives logits far from the face CNN's, so the mean is not either alone
        det.partner.head.bias.fill_(3.0)
    return det


def test_a_partner_cnn_is_saved_loaded_and_averaged_with_the_face_cnn_on_its_own_crop(tmp_path, clip_frames):
    frames, lms = clip_frames
    det = _with_partner()
    det.save(tmp_path)
    assert (tmp_path / detectors.PARTNER_FILE).is_file()
    back = detectors.Detectors.load(tmp_path)
    assert back.partner is not None and back.partner.cfg == OTHER and back.mouth is None
    a, _ = scan.face_scores(det, frames[1], lms[1], frames[0], lms[0])
    b, _ = scan.face_scores(back, frames[1], lms[1], frames[0], lms[0])
    own = float(detectors.cnn_logits(det.cnn, detectors.cnn_crop(frames[1], lms[1], det.cnn.cfg)[None])[0])
    other = float(detectors.cnn_logits(det.partner, detectors.cnn_crop(frames[1], lms[1], OTHER)[None])[0])
    assert abs(other - own) > 1.0  # the two differ, so the checks below can tell a mean from either
    assert a["cnn"] == pytest.approx((own + other) / 2)
    assert b["cnn"] == pytest.approx(a["cnn"], abs=1e-2)  # fp16 on disk
    assert a["fused"] == pytest.approx(a["cnn"] + a["tone_step"])  # the fusion reads the mean as its "cnn"
    assert not any(k.startswith("_") for k in a)  # no crop left in the features
    # saved again without one, the folder loses the old partner's file and scores the face CNN alone
    det.partner = None
    det.save(tmp_path)
    assert not (tmp_path / detectors.PARTNER_FILE).exists() and detectors.Detectors.load(tmp_path).partner is None
    c, _ = scan.face_scores(det, frames[1], lms[1], frames[0], lms[0])
    assert c["cnn"] == pytest.approx(own)


def test_a_partner_with_the_face_cnns_crop_is_given_that_crop_without_cutting_it_again(clip_frames, monkeypatch):
    frames, lms = clip_frames
    det = blank_detectors()
    torch.manual_seed(5)
    det.partner = detectors.FaceCNN(detectors.CNNConfig(widths=(8, 16, 32))).eval()  # another net, the same crop
    assert det.shares_crop and not _with_partner().shares_crop and not blank_detectors().shares_crop
    crop = detectors.cnn_crop(frames[1], lms[1], det.cnn.cfg)
    want = (detectors.cnn_logits(det.cnn, crop[None])[0] + detectors.cnn_logits(det.partner, crop[None])[0]) / 2
    cuts = []
    real_cut = detectors.cnn_crop
    monkeypatch.setattr(detectors, "cnn_crop", lambda *a: cuts.append(a[2]) or real_cut(*a))
    a, _ = scan.face_scores(det, frames[1], lms[1], frames[0], lms[0])
    assert a["cnn"] == pytest.approx(float(want)) and cuts == [det.cnn.cfg]


def test_a_scan_with_a_partner_scores_every_face_with_both(data_dir):
    clip = data_dir / "talking" / "retalking_face_1.mp4"
    cfg = scan.ScanConfig(step=20)
    det = _with_partner()
    both, alone = scan.scan(clip, det, cfg, progress=False), scan.scan(clip, blank_detectors(), cfg, progress=False)
    a = [f.scores.cnn for fr in both.frames for f in fr.faces]
    b = [f.scores.cnn for fr in alone.frames for f in fr.faces]
    assert len(a) == len(b) > 2
    # the partner's bias of 3 lifts every face's mean logit by about 1.5 over the face CNN alone
    assert 0.5 < np.mean(np.array(a) - np.array(b)) < 3.0
    # the partner's bias makes the face score the top reason; the reasons name both CNNs, and one CNN alone
    assert any(r.startswith("cnn: face CNNs (two, their logits averaged)") for r in both.verdict.reasons)
    assert "face CNNs" not in " ".join(alone.verdict.reasons)
    doc = json.loads(json.dumps(both.to_json()))
    assert type(both).from_json(doc).to_json() == both.to_json()


def test_the_version_names_the_partner_too(tmp_path):
    det = _with_partner()
    det.save(tmp_path / "a")
    with torch.no_grad():
        det.partner.head.bias.fill_(-3.0)  # the same face CNN, another partner
    det.save(tmp_path / "b")
    alone = blank_detectors()
    alone.save(tmp_path / "c")
    versions = {train._version(tmp_path / k) for k in "abc"}
    assert len(versions) == 3


def test_partner_folder_must_hold_a_face_cnn(tmp_path):
    mouth = blank_detectors()
    mouth.cnn = detectors.FaceCNN(detectors.MOUTH).eval()
    mouth.save(tmp_path / "m")
    with pytest.raises(DoppelError, match="not a face CNN"):
        train.partner_cnn(train.TrainConfig(partner=str(tmp_path / "m")))
    with pytest.raises(DoppelError, match="no usable detector weights"):
        train.partner_cnn(train.TrainConfig(partner=str(tmp_path / "missing")))
    blank_detectors().save(tmp_path / "one")
    assert train.partner_cnn(train.TrainConfig(partner=str(tmp_path / "one"))).cfg == detectors.CNNConfig()
    assert train.partner_cnn(train.TrainConfig()) is None
    # a folder that scores faces with two CNNs is refused: either one alone is another model than the folder's
    _with_partner().save(tmp_path / "p")
    with pytest.raises(DoppelError, match="two CNNs"):
        train.partner_cnn(train.TrainConfig(partner=str(tmp_path / "p")))


def test_a_refit_from_a_detector_with_a_partner_keeps_it_unless_told_otherwise(tmp_path):
    """--init of a two-CNN detector without --partner keeps its partner (a refit of the shipped weights must not
    silently drop one of its CNNs); --partner chooses another; a soup or a one-CNN init has none."""
    pair = _with_partner()
    pair.save(tmp_path / "pair")
    blank_detectors().save(tmp_path / "one")
    cfg = train.TrainConfig(init=str(tmp_path / "pair"))
    assert train.partner_folder(cfg) == str(tmp_path / "pair")
    kept, record = train._partner(cfg)
    assert record == pair.meta.get("partner_cnn", {"folder": str(tmp_path / "pair")}) and kept.cfg == OTHER and kept.head.bias.detach()[0].item() == pytest.approx(pair.partner.head.bias.detach()[0].item(), abs=1e-2)
    other = train.TrainConfig(init=str(tmp_path / "pair"), partner=str(tmp_path / "one"))
    assert train.partner_folder(other) == str(tmp_path / "one") and train._partner(other)[0].cfg == detectors.CNNConfig()
    assert train.partner_folder(train.TrainConfig(init=str(tmp_path / "one"))) is None
    assert train.partner_folder(train.TrainConfig(init=(str(tmp_path / "pair"), str(tmp_path / "one")))) is None
    assert train._partner(train.TrainConfig()) == (None, None)


def test_detect_train_cli_checks_the_partner_before_any_work(tmp_path, capsys):
    from doppel import cli
    mouth = blank_detectors()
    mouth.cnn = detectors.FaceCNN(detectors.MOUTH).eval()
    mouth.save(tmp_path / "m")
    assert cli.main(["detect", "train", "--partner", str(tmp_path / "m"), "-o", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err
    assert "not a face CNN" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_the_card_describes_a_partner_cnn(tmp_path):
    det = detectors.Detectors.load()
    det.partner = detectors.FaceCNN(OTHER).eval()
    det.meta["partner_cnn"] = {"folder": "/tmp/d", "version": "detect-0123456789", "cnn_steps": 9,
                               "cnn_best_val_auc": 0.9, "command": "doppel detect train --cnn dlib -o /tmp/d"}
    det.save(tmp_path)
    card.write_card(tmp_path, det, 0.005, "blend")
    text = (tmp_path / "MODEL_CARD.md").read_text()
    params = sum(p.numel() for p in det.partner.parameters())
    assert f"**Partner CNN** (`partner.safetensors`): a second face CNN, plain, {params} parameters, on a 64x64" in text
    assert "landmark box = 80% of the crop" in text and "`detect-0123456789`, 9 steps" in text
    assert "mean of the two CNNs' logits" in text
    det.partner = None
    del det.meta["partner_cnn"]
    card.write_card(tmp_path, det, 0.005, "blend")
    assert "Partner CNN" not in (tmp_path / "MODEL_CARD.md").read_text()
