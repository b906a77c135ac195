"""The mouth CNN: its crop, its blends, and how a detector carries it (save, scan, fusion, report)."""
import json

import numpy as np
import pytest
import torch

from doppel.detect import dataset, detectors, sbi, scan, train
from doppel.errors import DoppelError
from doppel.faces import align
from doppel.faces.landmarks import OUTER_LIP

from detect_helpers import blank_detectors


def test_the_mouth_crop_is_centred_on_the_lips_at_the_face_crops_pixel_scale(clip_frames):
    frames, lms = clip_frames
    face, mouth = detectors.crop_matrix(lms[0], detectors.RESNET), detectors.crop_matrix(lms[0], detectors.MOUTH)
    lips = align.transform_points(lms[0][OUTER_LIP], mouth)
    assert np.allclose(lips.mean(0), detectors.MOUTH.size / 2, atol=1e-6)
    # crop pixels per frame pixel: coverage 1.2 at 64 px is the face CNN's 0.6 at 128 px
    assert align.matrix_scale(mouth) == pytest.approx(align.matrix_scale(face), rel=1e-6)
    # the lips fill the middle of the crop; the eyes are outside it
    assert lips.min() > 0 and lips.max() < detectors.MOUTH.size
    eyes = align.transform_points(lms[0][36:48], mouth)
    assert (eyes[:, 1] < 0).all()
    crop = detectors.cnn_crop(frames[0], lms[0], detectors.MOUTH)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    with pytest.raises(ValueError, match="unknown CNN region"):
        detectors.crop_matrix(lms[0], detectors.CNNConfig(region="ear"))


def test_part_share_decides_how_often_a_blend_stays_on_the_mouth_or_lower_face(clip_frames):
    frames, lms = clip_frames
    shape = frames[0].shape[:2]
    eyes = np.round(lms[0][36:48]).astype(int)

    def share(p):  # of blends whose mask leaves the eyes alone: a part (lower face, mouth); a face shape covers them
        masks = [sbi.deformed_mask(lms[0], shape, np.random.default_rng(s), part_share=p) for s in range(40)]
        return np.mean([m[eyes[:, 1], eyes[:, 0]].max() < 0.05 for m in masks])

    assert share(1.0) == 1.0 and share(0.0) == 0.0 and 0.05 < share(None) < 0.6  # None: sbi.PART_SHARE (0.3)
    # the same draws: a run without the option keeps its blends
    face = dataset.RealFace(frames[0], lms[0], "g")
    a = dataset.make_fake(face, [], np.random.default_rng(5))[0]
    b = dataset.make_fake(face, [], np.random.default_rng(5), part_share=sbi.PART_SHARE)[0]
    assert np.array_equal(a, b)


def _with_mouth(seed: int = 0) -> detectors.Detectors:
    det = blank_detectors(seed)
    torch.manual_seed(seed + 1)
    det.mouth = detectors.FaceCNN(detectors.MOUTH).eval()
    n = len(scan.FUSION_FEATURES)
    coef = [1.0 if k in ("cnn", "mouth_cnn") else 0.0 for k in scan.FUSION_FEATURES]
    det.fusion = detectors.Linear(scan.FUSION_FEATURES, [0.0] * n, [1.0] * n, coef, 0.0)
    return det


def test_a_detector_with_a_mouth_cnn_saves_loads_and_scores_it(tmp_path, clip_frames):
    frames, lms = clip_frames
    det = _with_mouth()
    det.save(tmp_path)
    assert (tmp_path / detectors.MOUTH_FILE).is_file()
    back = detectors.Detectors.load(tmp_path)
    assert back.mouth is not None and back.mouth.cfg == detectors.MOUTH
    a, _ = scan.face_scores(det, frames[1], lms[1], frames[0], lms[0])
    b, _ = scan.face_scores(back, frames[1], lms[1], frames[0], lms[0])
    crop = detectors.cnn_crop(frames[1], lms[1], detectors.MOUTH)
    assert a["mouth_cnn"] == pytest.approx(float(detectors.cnn_logits(det.mouth, crop[None])[0]))
    assert b["mouth_cnn"] == pytest.approx(a["mouth_cnn"], abs=1e-2)  # fp16 on disk
    assert a["fused"] == pytest.approx(a["cnn"] + a["mouth_cnn"])  # the fusion reads it
    # saved again without one, the folder loses the old mouth CNN's file
    det.mouth = None
    det.save(tmp_path)
    assert not (tmp_path / detectors.MOUTH_FILE).exists() and detectors.Detectors.load(tmp_path).mouth is None
    c, _ = scan.face_scores(det, frames[1], lms[1], frames[0], lms[0])
    assert "mouth_cnn" not in c and np.isnan(scan.feature_row(c)[0, -1])  # the fusion reads no evidence


def test_the_scan_report_carries_the_mouth_cnn_only_when_there_is_one(tmp_path, data_dir):
    from doppel.detect import report
    clip = data_dir / "talking" / "retalking_face_1.mp4"
    cfg = scan.ScanConfig(step=20)
    with_mouth = scan.scan(clip, _with_mouth(), cfg, progress=False)
    without = scan.scan(clip, blank_detectors(), cfg, progress=False)
    face = next(f for fr in with_mouth.frames for f in fr.faces)
    assert face.scores.mouth_cnn is not None and "mouth_cnn" in face.to_json()["scores"]
    face = next(f for fr in without.frames for f in fr.faces)
    assert face.scores.mouth_cnn is None and "mouth_cnn" not in face.to_json()["scores"]
    doc = json.loads(json.dumps(with_mouth.to_json()))
    assert type(with_mouth).from_json(doc).to_json() == with_mouth.to_json()
    assert report.score_plot(with_mouth) and report.score_plot(without)


def test_the_fusion_tries_the_mouth_cnn_only_with_one_and_keeps_it_when_it_helps(monkeypatch):
    monkeypatch.setattr(train, "FUSION_C", (0.01, 0.1, 1.0))
    rng = np.random.default_rng(0)
    n = 240
    y = np.tile([0, 1], n // 2)
    kinds = np.where(y == 0, "real", np.where(np.arange(n) % 4 == 1, "blend", "lipsync"))
    x = rng.normal(0, 1, (n, len(scan.FUSION_FEATURES)))
    # the face CNN sees the blends, hardly the lip-syncs; the mouth CNN sees both (each kind is also held out
    # in turn, so a model must catch a kind it was not fitted on to be kept)
    x[:, 0] += 2.0 * (kinds == "blend") + 0.3 * (kinds == "lipsync")
    x[:, scan.FUSION_FEATURES.index("mouth_cnn")] += 1.0 * (kinds == "blend") + 2.0 * (kinds == "lipsync")
    groups = [f"clip{k % 4}" for k in range(n // 2) for _ in (0, 1)]
    _, sel = train.fit_fusion(x, y, groups, list(kinds), mouth=True)
    assert sel["features"] == "mouth" and any(k.startswith("mouth ") for k in sel["table"])
    _, sel = train.fit_fusion(x, y, groups, list(kinds), mouth=False)
    assert not any(k.startswith("mouth ") for k in sel["table"])


def test_mouth_folder_must_hold_a_mouth_cnn(tmp_path):
    blank_detectors().save(tmp_path / "face")
    with pytest.raises(DoppelError, match="not a mouth CNN"):
        train.mouth_cnn(train.TrainConfig(mouth=str(tmp_path / "face")))
    _with_mouth().save(tmp_path / "m")  # any weights folder whose main CNN is a mouth one
    m = detectors.Detectors.load(tmp_path / "m")
    m.cnn, m.mouth = m.mouth, None
    m.save(tmp_path / "m")
    assert train.mouth_cnn(train.TrainConfig(mouth=str(tmp_path / "m"))).cfg.region == "mouth"
    assert train.mouth_cnn(train.TrainConfig()) is None


def test_detect_train_cli_checks_mouth_and_part_share_before_any_work(tmp_path, capsys):
    from doppel import cli
    blank_detectors().save(tmp_path / "face")
    assert cli.main(["detect", "train", "--mouth", str(tmp_path / "face"), "-o", str(tmp_path / "o")]) != 0
    assert "not a mouth CNN" in capsys.readouterr().err
    assert cli.main(["detect", "train", "--part-share", "1.5", "-o", str(tmp_path / "o")]) != 0
    assert "--part-share must be from 0 to 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_card_describes_a_mouth_cnn_and_a_mouth_run(tmp_path):
    from dataclasses import replace

    from doppel.detect import card
    det = detectors.Detectors.load()
    det.mouth = detectors.FaceCNN(detectors.MOUTH).eval()
    det.meta["mouth_cnn"] = {"folder": "/tmp/m", "version": "detect-0123456789", "cnn_steps": 9,
                             "cnn_best_val_auc": 0.8, "command": "doppel detect train --cnn mouth -o /tmp/m"}
    det.save(tmp_path)
    card.write_card(tmp_path, det, 0.005, "blend")
    text = (tmp_path / "MODEL_CARD.md").read_text()
    assert "**Mouth CNN** (`mouth.safetensors`, the fusion's `mouth_cnn`): a 64x64 crop" in text
    assert "`detect-0123456789`, 9 steps" in text and "**Face CNN**" in text
    # a run that trained the mouth CNN itself (--cnn mouth --part-share 0.8) says what its CNN looks at
    det = detectors.Detectors.load()
    det.cnn = detectors.FaceCNN(detectors.MOUTH).eval()
    det.meta["config"] = {**det.meta["config"], "cnn": {**det.meta["config"]["cnn"], "size": 64, "coverage": 1.2,
                                                        "region": "mouth"}, "part_share": 0.8}
    det.save(tmp_path)
    card.write_card(tmp_path, det, 0.005, "blend")
    text = (tmp_path / "MODEL_CARD.md").read_text()
    assert "**CNN (mouth)**" in text and "crop of the mouth" in text and "landmark box = 120% of the crop" in text
    assert "20% a face shape" in text and "80% a part" in text and "**Mouth CNN**" not in text
    assert replace(detectors.Detectors.load(tmp_path).cnn.cfg) == detectors.MOUTH


def test_a_card_without_a_mouth_cnn_has_no_mouth_rows(tmp_path):
    import warnings

    from doppel.detect import card
    det = detectors.Detectors.load()
    n = len(scan.FUSION_FEATURES)
    x = np.random.default_rng(0).normal(0, 1, (40, n))
    x[:, -1] = np.nan  # no mouth CNN: its column is empty
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fitting on an empty column warns about nothing
        det.fusion = detectors.Linear.fit(x, np.tile([0, 1], 20), scan.FUSION_FEATURES)
    det.meta["validation"]["frame_auc"] = {**det.meta["validation"]["frame_auc"], "mouth_cnn": None}
    det.save(tmp_path)
    card.write_card(tmp_path, det, 0.005, "blend")
    text = (tmp_path / "MODEL_CARD.md").read_text()
    assert "| mouth_cnn |" not in text and "| cnn |" in text
    det.mouth = detectors.FaceCNN(detectors.MOUTH).eval()
    det.meta["mouth_cnn"] = {"folder": "m", "version": "v", "cnn_steps": 1, "cnn_best_val_auc": 0.5, "command": "c"}
    card.write_card(tmp_path, det, 0.005, "blend")
    assert "| mouth_cnn |" in (tmp_path / "MODEL_CARD.md").read_text()
