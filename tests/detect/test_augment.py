"""Class-neutral degradations, mask shapes, the video rule, fusion selection and --swaps."""
import numpy as np
import pytest

from doppel.detect import augment, cues, models, sbi, scan, train
from doppel.errors import DoppelError


def _hf(image: np.ndarray) -> float:
    g = image.astype(np.float64).mean(2)
    return float(np.abs(np.diff(g, axis=1)).mean())


def test_h264_keeps_shape_and_stays_close_on_a_real_face(clip_frames):
    frames, _ = clip_frames
    pair = [f[100:261, 200:361] for f in frames[:2]]  # odd sides: padded for 4:2:0 and cropped back
    out = augment.h264(pair, 23)
    assert len(out) == 2 and all(o.shape == p.shape and o.dtype == np.uint8 for o, p in zip(out, pair))
    err = [np.abs(o.astype(int) - p).mean() for o, p in zip(out, pair)]
    assert 0 < max(err) < 6
    assert np.abs(augment.h264(pair, 45)[0].astype(int) - pair[0]).mean() > err[0]  # higher CRF, more loss


def test_rescale_and_jpeg_remove_detail(clip_frames):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    assert _hf(augment.rescale(noise, 0.4)) < 0.5 * _hf(noise)
    img = clip_frames[0][0][:256, :256]
    assert np.abs(augment.jpeg(img, 20).astype(int) - img).mean() > np.abs(augment.jpeg(img, 95).astype(int) - img).mean()


def test_degrade_treats_a_pair_alike_and_is_reproducible(clip_frames):
    img = clip_frames[0][0][:160, :160]
    cfg = augment.DegradeConfig(p_rescale=1, p_h264=0, p_jpeg=1, p_blur=1, p_noise=0)  # H.264: P-frames differ
    a, b = augment.degrade([img, img.copy()], np.random.default_rng(4), cfg)
    assert np.array_equal(a, b) and not np.array_equal(a, img) and a.shape == img.shape
    c, _ = augment.degrade([img, img], np.random.default_rng(4), cfg)
    assert np.array_equal(a, c)


@pytest.mark.parametrize("shape", sbi.MASK_SHAPES)
def test_mask_shapes_cover_the_face(clip_frames, shape):
    frames, lms = clip_frames
    pts = sbi.mask_points(lms[0], shape)
    m = cues.hull_mask(pts, frames[0].shape[:2]) > 0
    hull = cues.hull_mask(lms[0], frames[0].shape[:2]) > 0
    assert (m & hull).sum() > 0.6 * hull.sum() and m.sum() < 1.6 * hull.sum()


def test_video_score_is_the_mean_of_the_suspicious_half():
    s = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    assert scan.video_score(s) == pytest.approx(2.0)
    assert scan.video_score(np.full(7, -1.5)) == pytest.approx(-1.5)
    assert scan.video_score(np.array([0.0, 0, 0, 5, 5])) > np.mean([0.0, 0, 0, 5, 5])


def _planted(informative_cue: bool, n: int = 240):
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], n // 2)
    x = rng.normal(0, 1, (n, len(scan.FUSION_FEATURES)))
    x[:, 0] += 2.0 * y  # the CNN separates
    if informative_cue:
        x[:, 2] += 2.0 * y  # blur separates too, independently
    return x, y, [f"clip{k % 4}" for k in range(n // 2) for _ in (0, 1)]


def test_fusion_keeps_useless_cues_out_and_useful_ones_in(monkeypatch):
    monkeypatch.setattr(train, "FUSION_C", (0.01, 0.1, 1.0))  # fewer candidates: a faster test
    fusion, sel = train.fit_fusion(*_planted(False))
    assert sel["features"] == "cnn" and fusion.coef[0] > 0 and not any(fusion.coef[1:])
    fusion, sel = train.fit_fusion(*_planted(True))
    assert sel["features"] == "all" and fusion.coef[2] > 0.5 * fusion.coef[0]


def test_platt_with_smoothed_targets_is_not_a_step():
    s = np.array([-2.0, -1.5, -1.0, 1.0, 1.5, 2.0])  # perfectly separable, few points
    p = models.Platt.fit(s, np.array([0, 0, 0, 1, 1, 1])).prob(s)
    assert 0.02 < p[0] < 0.5 < p[-1] < 0.98


def test_swaps_folder_skips_held_out_clips_and_finds_faces(tmp_path, data_dir):
    cfg = train.TrainConfig(video_every=20, swap_limit=2)
    with pytest.raises(DoppelError, match="not a folder"):
        train.swap_faces(tmp_path / "missing", cfg)
    (tmp_path / "retalking_face_5_swapped.mp4").symlink_to(data_dir / "talking" / "retalking_face_5.mp4")
    with pytest.raises(DoppelError, match="no faces"):
        train.swap_faces(tmp_path, cfg)  # the only video was made from a calibration clip
    (tmp_path / "other.mp4").symlink_to(data_dir / "video" / "iplap_129.mp4")
    faces = train.swap_faces(tmp_path, cfg)
    assert len(faces) == 2 and faces[0].image.shape == (train.CNN_SIDE, train.CNN_SIDE, 3)
    crops, labels = train.make_batch(faces, train.TrainConfig(batch=8, swap_share=1.0), 0, faces)
    assert crops.shape == (8, 64, 64, 3) and labels.sum() == 4
