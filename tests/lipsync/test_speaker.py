"""Speaker models from many clips: the per-clip cache, held-out clips, the AV-sync measure, and the
bundled GRID s1 model's mouth moving with held-out speech (against a shuffled-audio control)."""
import numpy as np
import pytest

from doppel import audio, media
from doppel.errors import DoppelError
from doppel.lipsync import cache, footage, metrics, model, shapes, synth, train

TRAIN = ["bbaf2n.mpg", "bbaf3s.mpg"]  # two GRID s1 training sentences


@pytest.fixture(scope="module")
def grid(data_dir):
    return data_dir / "corpus" / "grid_s1"


@pytest.fixture(scope="module")
def bundled():
    return model.load("grid_s1")


@pytest.fixture(scope="module")
def clip_cache(tmp_path_factory, grid, bundled):
    """A cache folder holding two training and two held-out sentences (each tracked once, ~3 s)."""
    folder = tmp_path_factory.mktemp("lipcache")
    for n in TRAIN + bundled.meta["holdout"][:2]:
        cache.load(grid / n, folder)
    return folder


def test_cache_is_read_back_without_tracking_and_keyed_on_the_file(grid, clip_cache, monkeypatch, tmp_path):
    first = cache.load(grid / TRAIN[0], clip_cache)
    assert len(list(clip_cache.glob("bbaf2n-*.npz"))) == 1

    def no_tracking(*a, **k):
        raise AssertionError("tracked again despite the cache")
    monkeypatch.setattr(footage, "load", no_tracking)
    again = cache.load(grid / TRAIN[0], clip_cache)
    assert np.array_equal(again.landmarks, first.landmarks) and np.array_equal(again.features, first.features)
    assert again.fps == 25 and len(again.landmarks) == 75 and again.found.mean() > 0.9
    copy = tmp_path / "bbaf2n.mpg"
    copy.write_bytes((grid / TRAIN[0]).read_bytes())
    assert cache.key(copy, footage.finder.DetectConfig()) != cache.key(grid / TRAIN[0], footage.finder.DetectConfig())


def test_split_named_and_automatic():
    names = [f"c{i:03d}.mpg" for i in range(40)]
    assert train.split(names, ["c001", "c002.mpg"], 0.0) == {"c001.mpg", "c002.mpg"}
    with pytest.raises(DoppelError, match="not among"):
        train.split(names, ["nope"], 0.0)
    auto = train.split(names, None, 0.1)
    assert len(auto) == 4 and auto == train.split(list(reversed(names)), None, 0.1)  # order-free
    assert train.split(names[:1], None, 0.5) == set() and len(train.split(names[:2], None, 0.9)) == 1


def test_train_holds_out_and_reports_and_resume_keeps_the_split(grid, clip_cache, bundled, tmp_path):
    held = bundled.meta["holdout"][0]
    videos = [str(grid / n) for n in TRAIN + [held]]
    out = tmp_path / "m.lip"
    cfg = train.TrainConfig(steps=4, seq_len=100, batch=2)
    ck = train.train(videos, out, cfg, model.LipConfig(hidden=8), holdout=[held[:-4]], cache_dir=clip_cache)
    meta = model.load(out).meta
    assert meta["holdout"] == [held] and held not in meta["clips"] and len(meta["clips"]) == 2
    assert meta["holdout_error"] > 0 and meta["holdout_error_mean_shape"] > 0 and ck.step == 4
    more = train.train(videos, out, train.TrainConfig(steps=6, seq_len=100, batch=2), cache_dir=clip_cache)
    assert more.step == 6 and model.load(out).meta["holdout"] == [held]


def _real(grid, name, folder):
    d = cache.load(grid / name, folder)
    op = shapes.mouth_opening(shapes.mouth_shapes(d.landmarks))
    loud = metrics.frame_loudness(media.read_audio(grid / name, audio.SAMPLE_RATE), audio.SAMPLE_RATE, d.fps, len(op))
    return op, loud


def test_av_offset_recovers_planted_offsets(grid, clip_cache, bundled):
    pairs = [_real(grid, n, clip_cache) for n in TRAIN + bundled.meta["holdout"][:2]]
    ops, louds = [p[0] for p in pairs], [p[1] for p in pairs]
    base, c = metrics.av_offset(ops, louds)
    assert abs(base) <= 1 and c > 0.3  # real speech: the mouth opens with the sound
    got = []
    for k in (-4, -2, 3, 6):  # sound planted k frames earlier than the mouth
        shifted = [np.r_[x[k:], np.full(k, x[-1])] if k > 0 else np.r_[np.full(-k, x[0]), x[:k]] for x in louds]
        got.append(metrics.av_offset(ops, shifted)[0] - base)
    assert np.abs(np.array(got) - [-4, -2, 3, 6]).max() <= 1, got  # four 3 s clips: within a frame


def test_bundled_model_mouth_follows_held_out_speech(grid, clip_cache, bundled):
    """On sentences it never saw, the predicted opening tracks the real video's; the shuffled audio's does not."""
    held = bundled.meta["holdout"][:2]
    assert not set(held) & set(bundled.meta["clips"])
    clips = [train.load_clip(grid / n, clip_cache) for n in held]
    smooth = synth.LipsyncConfig().shape_smooth
    real, shuffled = [], []
    for c in clips:
        rolled = metrics.shuffled(c.features)
        real.append(metrics.opening_corr(synth.predict_shapes(bundled, c.features, smooth), c.shapes, c.mean))
        shuffled.append(metrics.opening_corr(synth.predict_shapes(bundled, rolled, smooth), c.shapes, c.mean))
    assert min(real) > 0.7, real
    assert np.mean(real) > np.mean(shuffled) + 0.2, (real, shuffled)
    err = np.mean([metrics.mouth_error(synth.predict_shapes(bundled, c.features, smooth), c.shapes, c.mean)
                   for c in clips])
    base = np.mean([metrics.mouth_error(np.zeros_like(c.shapes), c.shapes, c.mean) for c in clips])
    assert err < 0.8 * base


def test_texture_stats_see_blur_and_flicker():
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 255, (6, 128, 128, 3)).astype(np.uint8)
    import cv2
    soft = np.stack([cv2.GaussianBlur(c, (0, 0), 2) for c in sharp])
    mouth = np.stack([np.c_[np.linspace(40, 88, 20), np.r_[np.full(10, 80), np.full(10, 90)]]] * 6)
    a, b = metrics.texture_stats(sharp, mouth), metrics.texture_stats(soft, mouth)
    assert b["sharpness"] < 0.2 * a["sharpness"] and b["flicker"] < a["flicker"]
    still = metrics.texture_stats(np.repeat(sharp[:1], 6, 0), mouth)
    assert still["flicker"] == 0


def test_speech_ten_times_longer_than_a_target_with_a_faceless_frame(grid, tmp_path):
    """A 7-frame target with one blank frame and 3 s of speech (>10x): a full-length, labelled output."""
    from doppel import provenance
    frames = [f.image for f in media.read_frames(grid / TRAIN[0])][:7]
    frames[3] = np.zeros_like(frames[3])
    short = tmp_path / "short.mp4"
    with media.VideoWriter(short, 25) as w:
        for f in frames:
            w.write(f)
    out = tmp_path / "out.mp4"
    r = synth.lipsync(short, grid / TRAIN[0], "grid_s1", out)
    made = media.read_frames(out)
    assert len(made) == r.frames == 75 and set(r.source_frames) == set(range(7))
    blank = [i for i, j in enumerate(r.source_frames) if j == 3]
    assert all(made[i].image.mean() < 8 for i in blank)  # no face: the frame is left as it was
    assert provenance.read_label(out)["kind"] == "lipsync"
