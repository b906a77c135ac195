"""Class-neutral degradations, mask shapes, the video rule, fusion selection, calibration and --fakes."""
from pathlib import Path

import numpy as np
import pytest

from doppel.detect import augment, cues, detectors, sbi, scan, train
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


@pytest.mark.parametrize("shape", sbi.FACE_SHAPES)
def test_mask_shapes_cover_the_face(clip_frames, shape):
    frames, lms = clip_frames
    pts = sbi.mask_points(lms[0], shape)
    m = cues.hull_mask(pts, frames[0].shape[:2]) > 0
    hull = cues.hull_mask(lms[0], frames[0].shape[:2]) > 0
    assert (m & hull).sum() > 0.6 * hull.sum() and m.sum() < 1.6 * hull.sum()


@pytest.mark.parametrize("shape", sbi.PART_SHAPES)
def test_part_shapes_cover_the_mouth_inside_the_face(clip_frames, shape):
    frames, lms = clip_frames
    m = cues.hull_mask(sbi.mask_points(lms[0], shape), frames[0].shape[:2]) > 0
    hull = cues.hull_mask(lms[0], frames[0].shape[:2]) > 0
    lips = cues.hull_mask(lms[0][48:60], frames[0].shape[:2]) > 0
    assert (m & lips).sum() > 0.95 * lips.sum()  # the whole mouth
    assert (m & hull).sum() > 0.9 * m.sum() and m.sum() < 0.6 * hull.sum()  # inside the face, a part of it
    eyes = cues.hull_mask(lms[0][36:48], frames[0].shape[:2]) > 0
    assert not (m & eyes).any()


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
    p = detectors.Platt.fit(s, np.array([0, 0, 0, 1, 1, 1])).prob(s)
    assert 0.02 < p[0] < 0.5 < p[-1] < 0.98


def _one_kind_cue(n: int = 480):
    """Two kinds of fake: the CNN catches both a little, the blur cue catches only swaps, strongly."""
    rng = np.random.default_rng(1)
    y = np.tile([0, 1], n // 2)
    kinds = np.where(y == 0, "real", np.where(np.arange(n) % 4 == 1, "blend", "swap"))
    x = rng.normal(0, 1, (n, len(scan.FUSION_FEATURES)))
    x[:, 0] += 1.0 * y
    x[:, 2] += 4.0 * (kinds == "swap")
    return x, y, [f"clip{k % 4}" for k in range(n // 2) for _ in (0, 1)], list(kinds)


def test_fusion_leaves_each_kind_out_so_a_one_kind_cue_does_not_take_over(monkeypatch):
    monkeypatch.setattr(train, "FUSION_C", (0.01, 0.1, 1.0))
    x, y, groups, kinds = _one_kind_cue()
    blur = scan.FUSION_FEATURES.index("blur")
    fusion, sel = train.fit_fusion(x, y, groups)  # clip-wise CV only: the swap-only cue dominates
    assert sel["features"] == "all" and fusion.coef[blur] > fusion.coef[0]
    fusion, sel = train.fit_fusion(x, y, groups, kinds)  # each kind held out too
    assert sel["features"] == "cnn" and sel["kinds_held_out"] == ["blend", "swap"]


def test_platt_weights_the_classes_alike():
    rng = np.random.default_rng(0)
    s = np.concatenate([rng.normal(-1, 1, 50), rng.normal(1, 1, 200)])  # 4 fakes to every real
    y = np.repeat([0, 1], [50, 200])
    assert detectors.Platt.fit(s, y).prob(0.0) == pytest.approx(0.5, abs=0.06)


def test_fakes_folder_routes_each_video_by_its_clip_and_kind(tmp_path, data_dir):
    cfg = train.TrainConfig(video_every=20, fake_limit=2, heldout_every=20, heldout_limit=4)
    with pytest.raises(DoppelError, match="not a folder"):
        train.fake_faces(tmp_path / "missing", cfg)
    real = {c: p for p in train.dataset.videos(data_dir) for c in [p.stem]}
    (tmp_path / "lipsync_driving_d18.mp4").symlink_to(real["driving_d18"])  # fusion clip, kind not trained on
    with pytest.raises(DoppelError, match="no faces"):
        train.fake_faces(tmp_path, cfg)
    for name, clip in (("swap_driving_d18", "driving_d18"), ("lipsync_retalking_face_5", "retalking_face_5"),
                       ("swap_iplap_129_b", "iplap_129"), ("lipsync_source_s29", "source_s29"),
                       ("swap_source_s29", "source_s29"), ("made_from_driving_d19", "driving_d19")):
        (tmp_path / f"{name}.mp4").symlink_to(real[clip])
    tr, fusion, calib = train.fake_faces(tmp_path, cfg)
    assert {(f.group, f.kind) for f in tr} == {("source_s29", "swap")}
    assert {(f.group, f.kind) for f in fusion} == {("driving_d18", "swap"), ("iplap_129", "swap")}
    assert {(f.group, f.kind) for f in calib} == {("retalking_face_5", "lipsync"), ("driving_d19", "other")}
    assert all(f.prev_image is not None for f in fusion + calib) and len(fusion) == 4
    assert tr[0].image.shape == (train.CNN_SIDE, train.CNN_SIDE, 3)
    crops, labels = train.make_batch(tr, train.TrainConfig(batch=8, fake_share=1.0), 0, tr)
    size = train.TrainConfig().cnn.size  # the shipped CNN's crop
    assert crops.shape == (8, size, size, 3) and labels.sum() == 4


def test_pseudo_clips_keep_kinds_apart():
    cfg = train.TrainConfig(chunk=4, chunk_stride=4)
    scores = np.arange(24, dtype=float)
    labels = np.repeat([0, 1, 1], 8)
    kinds = ["real"] * 8 + ["swap"] * 8 + ["lipsync"] * 8
    s, y, k = train.pseudo_clips(scores, labels, ["c"] * 24, cfg, kinds)
    assert list(k) == ["real"] * 2 + ["swap"] * 2 + ["lipsync"] * 2 and list(y) == [0, 0, 1, 1, 1, 1]
    assert s[2] == pytest.approx(scan.video_score(scores[8:12]))


def test_fake_kind_prefers_the_doppel_label_then_the_name():
    assert train.fake_kind(Path("swap_driving_d3.mp4")) == ("swap", "driving_d3")
    assert train.fake_kind(Path("clip.mp4"), {"kind": "lipsync"}) == ("lipsync", "clip")
    assert train.fake_kind(Path("swap_x.mp4"), {"kind": "face-swap"}) == ("swap", "x")
    assert train.fake_kind(Path("clip.mp4")) == ("other", "clip")
    assert train.fake_kind(Path("gan_x.mp4")) == ("gan", "x")
    gan = {"kind": "face-swap", "details": {"variant": "gan"}}
    assert train.fake_kind(Path("swap_x.mp4"), gan) == ("gan", "x")
    assert train.fake_kind(Path("clip.mp4"), gan) == ("gan", "clip")
    assert train.fake_kind(Path("clip.mp4"), {"kind": "face-swap", "details": {"variant": "plain"}}) == ("swap", "clip")


def test_training_marks_real_faces_as_often_as_fakes(clip_frames, monkeypatch):
    """doppel's fake videos all carry its watermark; real faces and blends get it in `sample` so that the
    share of marked samples is the same in both classes (the CNN cannot learn the mark as a fake cue)."""
    from doppel.detect import dataset
    frames, lms = clip_frames
    face = dataset.centre(dataset._context(frames[0], lms[0]), train.CNN_SIDE)
    video_fake = dataset.RealFace(face.image.copy(), face.landmarks, "clip", kind="swap")
    marked = []
    monkeypatch.setattr(train, "mark_like_an_output", lambda img, rng: marked.append(1) or img)
    monkeypatch.setattr(augment, "degrade", lambda imgs, rng: imgs)
    monkeypatch.setattr(dataset, "make_fake", lambda f, faces, rng, **kw: (f.image, None))
    rng = np.random.default_rng(0)
    share = {}
    for fake in (False, True):
        marked.clear()
        n_video = 0
        for _ in range(4000):
            n_before = len(marked)
            img, _, _ = train.sample([face], rng, fake, [video_fake], fake_share=0.3, mark_share=0.5)
            n_video += fake and len(marked) == n_before and img is video_fake.image
        share[fake] = (len(marked) + n_video) / 4000  # a fake video's face is marked already
    assert share[False] == pytest.approx(0.65, abs=0.03) and share[True] == pytest.approx(share[False], abs=0.03)
    monkeypatch.undo()
    out = train.mark_like_an_output(face.image, np.random.default_rng(1))
    change = out.astype(float) - face.image
    assert out.shape == face.image.shape and 1.0 < np.sqrt((change ** 2).mean()) < 3.5  # the mark's levels
    assert train.sample([face], rng, False, mark_share=0.0)[0].shape == face.image.shape


def _face_width_in_crops(coverage_jitter: float) -> np.ndarray:
    """Width in crop pixels of a planted white landmark box (black around it) in the real crops of a batch."""
    from dataclasses import replace
    from doppel.detect import dataset
    from doppel.faces import align
    lm = align.template_points(dataset.CONTEXT, dataset.CONTEXT_COVERAGE) - (dataset.CONTEXT - train.CNN_SIDE) / 2
    img = np.zeros((train.CNN_SIDE, train.CNN_SIDE, 3), np.uint8)
    (x0, y0), (x1, y1) = lm.min(0).astype(int), lm.max(0).astype(int)
    img[y0:y1, x0:x1] = 255
    face = dataset.RealFace(img, lm, "planted")
    cfg = train.TrainConfig(batch=64, mark_share=0.0, coverage_jitter=coverage_jitter,
                            cnn=replace(train.TrainConfig().cnn, coverage=0.56))
    crops, labels = train.make_batch([face], cfg, 0)
    white = crops[labels == 0].mean(3)[:, cfg.cnn.size // 2] > 128  # the middle row of each real crop
    return white.sum(1).astype(float)


def test_coverage_jitter_varies_the_training_crop_scale_within_its_bounds():
    """A scan crops every face at one coverage; with --coverage-jitter J the training crops are cut at
    coverage +- J, so the face's width in the crop varies by (c + J) / (c - J) at most."""
    fixed = _face_width_in_crops(0.0)
    assert fixed.max() - fixed.min() <= 2  # degradations (resampling, blur) move the edge a pixel
    jittered = _face_width_in_crops(0.05)
    ratio = jittered.max() / jittered.min()
    assert 1.12 < ratio < (0.61 / 0.51) * 1.04  # about the full range is used, and no more
    assert abs(np.median(jittered) - np.median(fixed)) <= 3  # centred on the scan's coverage


@pytest.fixture(scope="module")
def far_frames(data_dir):
    """Context faces of one clip's frames 0 and 40 (the mouth has moved), and of frame 1."""
    from doppel import media
    from doppel.detect import dataset
    from doppel.faces import finder
    frames = media.read_frames(data_dir / "talking" / "retalking_face_1.mp4")
    out = []
    for i in (0, 40, 1):
        box = finder.find_faces(frames[i].image)[0].box
        out.append(dataset._context(frames[i].image, finder.landmarks68(frames[i].image, box), group="clip"))
    return out


def test_reenact_blend_redraws_the_mouth_from_the_other_frame_and_nothing_above_it(far_frames):
    face, other, _ = far_frames
    changed = []
    for seed in range(6):
        fake = sbi.reenact_blend(face.image, face.landmarks, other.image, other.landmarks, np.random.default_rng(seed))
        diff = np.abs(fake.astype(int) - face.image).sum(2)
        eyes = int(face.landmarks[36:48, 1].max())  # above the lower eyelids: at most the mask's feathered tail
        assert diff[:eyes].max() <= 9, seed
        lips = cues.hull_mask(face.landmarks[48:60], face.image.shape[:2]) > 0
        changed.append(diff[lips].mean())
    assert min(changed) > 5  # the lips are the other frame's: every seed changes them


def test_training_blends_reenact_only_from_another_frame_and_only_with_the_option(far_frames, monkeypatch):
    from doppel.detect import dataset
    face, other, near = far_frames
    faces = [face, near] + [near] * 3 + [other]  # the other frame is 5 places on; frame 1 is too near
    groups = dataset.by_group(faces)
    rng = np.random.default_rng(0)
    assert all(s is other or s is None for s in (dataset.same_person(faces, groups, 0, rng, tries=8) for _ in range(20)))
    assert dataset.same_person([face], dataset.by_group([face]), 0, rng) is None  # a one-photo identity: none
    used = []
    monkeypatch.setattr(sbi, "reenact_blend", lambda t, tl, s, sl, r: used.append(s) or t)
    monkeypatch.setattr(augment, "degrade", lambda imgs, rng: imgs)
    for share, want in ((0.0, 0), (1.0, 1)):
        used.clear()
        for seed in range(40):
            r = np.random.default_rng(seed)
            if r.integers(len(faces)) == 0:  # the draws sample() makes: face 0, whose donor is 5 places on
                train.sample(faces, np.random.default_rng(seed), True, groups=groups, reenact_share=share)
        assert used and all(s is other.image for s in used) if want else not used
