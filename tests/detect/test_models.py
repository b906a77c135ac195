"""The CNN learns in a few steps, Grad-CAM and save/load work, calibration is monotone in [0, 1]."""
import numpy as np
import pytest
import torch

from doppel.detect import dataset, models, scan, train

from detect_helpers import blank_detectors


def test_cnn_learns_self_blends_in_a_few_steps(data_dir):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # this tiny CNN runs several times faster on one thread of a busy machine
    torch.manual_seed(0)
    photos = sorted((data_dir / "faces" / "lfw" / "Tony_Blair").glob("*.jpg"))[:4]
    faces = [dataset.centre(f, train.CNN_SIDE) for f in dataset.faces_from_images(photos, lambda p: "tb")]
    cfg = train.TrainConfig(batch=16)
    fixed = train.make_batch(faces, cfg, seed=99)  # one held batch to measure on
    lossf = torch.nn.BCEWithLogitsLoss()
    model = models.FaceCNN()
    before = float(lossf(torch.from_numpy(models.cnn_logits(model, fixed[0])).float(), torch.from_numpy(fixed[1])))
    losses = models.train_cnn(model, iter([fixed] * 60), steps=60, lr=3e-3)  # BN running stats need ~60
    torch.set_num_threads(threads)
    after = float(lossf(torch.from_numpy(models.cnn_logits(model, fixed[0])).float(), torch.from_numpy(fixed[1])))
    assert len(losses) == 60 and after < 0.8 * before


def test_gradcam_shape_and_range():
    model = models.FaceCNN()
    crop = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    cam = models.gradcam(model, crop)
    assert cam.shape == (64, 64) and cam.min() >= 0 and cam.max() <= 1.0 + 1e-6


def test_platt_is_monotone_and_in_unit_interval():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(-1, 1, 50), rng.normal(1.5, 1, 50)])
    labels = np.repeat([0, 1], 50)
    platt = models.Platt.fit(scores, labels)
    p = platt.prob(np.linspace(-50, 50, 1001))
    assert np.all((p >= 0) & (p <= 1)) and np.all(np.diff(p) >= 0) and p[0] < 0.01 and p[-1] > 0.99
    # reversed labels cannot make it decreasing: the slope is clipped at 0
    assert np.all(np.diff(models.Platt.fit(scores, 1 - labels).prob(np.linspace(-5, 5, 11))) >= 0)


def test_linear_treats_nan_as_no_evidence():
    lin = models.Linear(["a", "b"], [1.0, 2.0], [2.0, 1.0], [1.5, -1.0], 0.25)
    assert np.allclose(lin.logit([[1.0, np.nan]]), 0.25)
    assert np.allclose(lin.logit([[3.0, 2.0]]), 1.75)


def test_spectrum_shape_and_mean(clip_frames):
    frames, lms = clip_frames
    s = models.spectrum(frames[0], lms[0])
    assert s.shape == (32,) and abs(s.mean()) < 1e-9 and s[0] > s[-1]


def test_detectors_round_trip(tmp_path, clip_frames):
    frames, lms = clip_frames
    det = blank_detectors(seed=3)
    det.save(tmp_path)
    back = models.Detectors.load(tmp_path)
    a, _ = scan.face_scores(det, frames[1], lms[1], frames[0], lms[0])
    b, _ = scan.face_scores(back, frames[1], lms[1], frames[0], lms[0])
    assert a == b and back.version == "test"


def test_shipped_weights_load_and_match_the_scan():
    det = models.Detectors.load()
    assert det.version.startswith("detect-") and det.fusion.names == scan.FUSION_FEATURES
    assert det.platt.a > 0 and (models.WEIGHTS_DIR / "MODEL_CARD.md").is_file()
    size = sum(p.stat().st_size for p in models.WEIGHTS_DIR.iterdir())
    assert size < 2 * 2 ** 20


@pytest.mark.slow
def test_detect_train_end_to_end(tmp_path, data_dir):
    fakes = tmp_path / "fakes"  # stand-ins for doppel's fake videos: one per part, named as make_detect_fakes does
    fakes.mkdir()
    for name, sub in (("swap_source_s29", "video"), ("swap_driving_d18", "video"), ("lipsync_retalking_face_5", "talking")):
        (fakes / f"{name}.mp4").symlink_to(data_dir / sub / f"{name.split('_', 1)[1]}.mp4")
    cfg = train.TrainConfig(minutes=0.5, per_person=3, video_every=20, video_limit=3, heldout_limit=8, chunk=4,
                           chunk_stride=2, batch=16, fakes=str(fakes), fake_limit=3, corpus=4, corpus_fusion=4,
                           init=str(models.WEIGHTS_DIR), cache=str(tmp_path / "cache"))
    det = train.train(data_dir, tmp_path / "w", cfg, command="test")
    back = models.Detectors.load(tmp_path / "w")
    assert back.version == det.version and back.meta["cnn_steps"] > 0
    assert back.meta["data"]["corpus_identities"] == {"train": 4, "fusion": 4}
    assert any(f.stem.startswith("faces-") for f in (tmp_path / "cache").iterdir())
    assert back.meta["data"]["fake_faces"] == {"train": {"swap": 3}, "fusion": {"swap": 4}, "calibration": {"lipsync": 4}}
    card = (tmp_path / "w" / "MODEL_CARD.md").read_text()
    assert "| fused |" in card and "deepfake" in card
    assert "| lipsync | **no** | 4 |" in card and "| blend | yes |" in card
    assert "started from: the CNN of" in card and "plus 4 corpus identities" in card


def test_detect_train_needs_an_output_folder(capsys):
    from doppel import cli
    assert cli.main(["detect", "train", "--data", "nowhere"]) == 2  # fails before reading any data
    assert "-o DIR" in capsys.readouterr().err
