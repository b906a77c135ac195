"""End to end: a tiny model, a real target clip and real speech -> a labelled, synced video."""
import json
import math

import numpy as np
import pytest
from scipy.io import wavfile

from doppel import audio, cli, media, provenance
from doppel.errors import DoppelError
from doppel.lipsync import model, synth, train
from doppel.provenance import watermark

TARGET = "retalking_face_5.mp4"  # 122 frames, 25 fps, 4.88 s
SPEECH = "retalking_audio_1.wav"  # 5.02 s: longer than the target, so playback bounces


@pytest.fixture(scope="module")
def tiny_model(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("lip") / "tiny.lip"
    cfg = train.TrainConfig(steps=30, seq_len=150, batch=4)
    train.train([str(data_dir / "talking" / TARGET)], out, cfg, model.LipConfig(hidden=16, n_coeffs=6))
    return out


def test_output_frames_fps_audio_and_label(data_dir, tiny_model, tmp_path):
    video, speech = data_dir / "talking" / TARGET, data_dir / "speech" / SPEECH
    out, strip = tmp_path / "out.mp4", tmp_path / "strip.png"
    r = synth.lipsync(video, speech, tiny_model, out, preview=strip)
    seconds = len(media.read_audio(speech, audio.SAMPLE_RATE)) / audio.SAMPLE_RATE
    frames = media.read_frames(out)
    assert len(frames) == r.frames == math.ceil(seconds * 25)
    assert json.loads(json.dumps(r.to_json())) == {"output": str(out), "frames": r.frames, "fps": 25.0,
                                                   "seconds": round(seconds, 3), "compute_s": round(r.compute_s, 2),
                                                   "speed": round(r.speed, 3)}
    assert media.probe(out).fps == pytest.approx(25.0)
    sound = media.read_audio(out, 48000)
    assert abs(len(sound) / 48000 - seconds) < 1 / 25
    assert provenance.read_label(out)["kind"] == "lipsync"
    assert provenance.read_label(strip)["kind"] == "lipsync-preview"
    assert len(provenance.check(out)["evidence"]) == 3  # label, watermark and a valid C2PA manifest
    src = r.source_frames
    assert src.max() == 121 and src[-1] < 121  # played to the end, then backwards
    _check_only_the_lower_face_changed(media.read_frames(video), frames, src, provenance.read_label(out))


def _check_only_the_lower_face_changed(original, made, src, label):
    # every output frame carries the invisible watermark: compare with the marked original
    a = watermark.embed(original[src[40]].image, watermark.payload_of(label)).astype(float)
    b = made[40].image.astype(float)
    h = a.shape[0]
    top = np.abs(a[: h // 3] - b[: h // 3]).mean()  # forehead and background: only re-encoding noise
    diff = np.abs(a - b).mean(2)
    assert top < 2.0
    ys, _ = np.nonzero(diff > 12)
    assert len(ys) > 200 and np.median(ys) > 0.5 * h  # changes concentrate in the lower half


def test_autoencoder_texture_is_learnt_once_and_stored(data_dir, tiny_model, tmp_path):
    rate, x = wavfile.read(data_dir / "speech" / SPEECH)
    short = tmp_path / "short.wav"
    wavfile.write(short, rate, x[: int(1.2 * rate)])
    video = data_dir / "talking" / TARGET
    cfg = synth.LipsyncConfig(texture="autoencoder", retime=True)
    with pytest.raises(DoppelError, match="no autoencoder texture"):
        synth.lipsync(video, short, tiny_model, tmp_path / "ae.mp4", cfg)
    with_tex = tmp_path / "tex.lip"
    code = cli.main(["lipsync", "texture", str(video), "-m", str(tiny_model), "-o", str(with_tex),
                     "--tex-steps", "3", "--tex-frames", "24", "--cache", "none"])
    assert code == 0
    ck = model.load(with_tex)
    assert ck.texture["info"]["frames"] == 24 and ck.texture["info"]["steps"] == 3
    assert model.load(tiny_model).texture is None  # -o left the original alone
    r = synth.lipsync(video, short, with_tex, tmp_path / "ae.mp4", cfg)
    assert len(media.read_frames(tmp_path / "ae.mp4")) == r.frames == 30


def _gap(shapes_or_landmarks) -> np.ndarray:
    """Inner-lip gap (62 to 66) per frame: from (N, 40) template-unit shapes or (N, 68, 2) landmarks
    (then divided by the eye-corner distance, so both are size-free)."""
    x = np.asarray(shapes_or_landmarks)
    if x.ndim == 2:
        pts = x.reshape(len(x), 20, 2)
        return pts[:, 18, 1] - pts[:, 14, 1]
    return (x[:, 66, 1] - x[:, 62, 1]) / np.linalg.norm(x[:, 36] - x[:, 45], axis=1)


def _measured_gap(path) -> np.ndarray:
    from doppel.faces import finder
    tracker = finder.FaceTracker()
    return _gap(np.stack([tracker(f.image)[0].landmarks for f in media.iter_frames(path)]))


@pytest.fixture(scope="module")
def target(data_dir):
    from doppel.lipsync import footage, texture
    return texture.prepare(footage.load(data_dir / "talking" / TARGET, keep_frames=True))


def _inner_mouth_luma(crop, shape, size=128):
    """Mean luminance inside the inner-lip polygon of `shape`: dark when the drawn mouth is open."""
    import cv2
    from doppel.lipsync import texture
    pts = texture.shape_to_crop(shape, size)[12:20]
    m = np.zeros((size, size), np.uint8)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return float(crop.mean(2)[m > 0].mean())


def test_median_texture_draws_the_mouth_it_is_asked_for(target):
    from doppel.lipsync import texture
    gaps = _gap(target.shapes)
    opened, shut = target.shapes[np.argmax(gaps)], target.shapes[np.argmin(gaps)]
    draw = texture.TEXTURES["median"](target, texture.TextureConfig())
    # inside the open shape's lips: the dark mouth when asked for it open, lips and skin when asked shut
    dark, light = _inner_mouth_luma(draw(opened), opened), _inner_mouth_luma(draw(shut), opened)
    assert light - dark > 15, (dark, light)
    j = int(np.argsort(gaps)[len(gaps) // 2])  # a typical frame: its own shape should give back its own crop
    err = np.abs(draw(target.shapes[j]).astype(float) - target.crops[j]).mean()
    other = np.abs(target.crops[np.argmax(gaps)].astype(float) - target.crops[j]).mean()
    assert err < 1.2 * other + 2 and err < 25, (err, other)


def test_mouth_in_the_video_follows_the_commanded_shapes(data_dir, tiny_model, tmp_path, monkeypatch, target):
    """Planted commands (the model's output replaced): the mouth opens on the loud half-seconds of the
    speech and closes on the quiet ones; the rendered video's measured gap must follow them."""
    gaps = _gap(target.shapes)
    opened, shut = target.shapes[np.argmax(gaps)] - target.mean, target.shapes[np.argmin(gaps)] - target.mean

    def planted(ck, feats, smooth):
        loud = feats[:, 13] > np.median(feats[:, 13])  # energy channel, 100 Hz
        return np.where(loud[:, None], opened, shut)
    monkeypatch.setattr(synth, "predict_shapes", planted)
    rate, x = wavfile.read(data_dir / "speech" / SPEECH)
    short = tmp_path / "short.wav"
    wavfile.write(short, rate, x[: int(2.4 * rate)])
    r = synth.lipsync(data_dir / "talking" / TARGET, short, tiny_model, tmp_path / "o.mp4")
    commanded, measured = _gap(r.mouths + 0), _measured_gap(tmp_path / "o.mp4")
    own = _gap(target.shapes)[r.source_frames]  # what the target frames' own mouths did
    follows, own_corr = np.corrcoef(commanded, measured)[0, 1], np.corrcoef(own, measured)[0, 1]
    assert commanded.std() > 0.01 and follows > 0.6 and follows > own_corr + 0.2, (follows, own_corr)


def test_video_without_a_face_is_refused(data_dir, tiny_model, tmp_path):
    blank = tmp_path / "blank.mp4"
    with media.VideoWriter(blank, 25) as w:
        for _ in range(10):
            w.write(np.full((96, 96, 3), 128, np.uint8))
    with pytest.raises(DoppelError, match="face"):
        synth.lipsync(blank, data_dir / "speech" / SPEECH, tiny_model, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_cli_reports_silent_audio_in_one_line(data_dir, tiny_model, tmp_path, capsys):
    silent = tmp_path / "silent.wav"
    wavfile.write(silent, 16000, np.zeros(16000, np.int16))
    code = cli.main(["lipsync", str(data_dir / "talking" / TARGET), str(silent), "-m", str(tiny_model),
                     "-o", str(tmp_path / "x.mp4")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("doppel lipsync: error:") and "silent" in err[-1]
    assert not (tmp_path / "x.mp4").exists()


def test_cli_needs_two_inputs_or_train(data_dir, tiny_model, tmp_path, capsys):
    code = cli.main(["lipsync", str(data_dir / "talking" / TARGET), "-m", str(tiny_model),
                     "-o", str(tmp_path / "x.mp4")])
    assert code == 2 and "VIDEO AUDIO" in capsys.readouterr().err


def test_cli_train_then_resume(data_dir, tmp_path):
    out = tmp_path / "cli.lip"
    video = str(data_dir / "talking" / TARGET)
    assert cli.main(["lipsync", "train", video, "-o", str(out), "--steps", "3", "--hidden", "8"]) == 0
    assert model.load(out).step == 3
    assert cli.main(["lipsync", "train", video, "-o", str(out), "--steps", "5"]) == 0
    ck = model.load(out)
    assert ck.step == 5 and ck.model.cfg.hidden == 8 and ck.meta["clips"] == [TARGET]
