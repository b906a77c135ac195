"""The invisible watermark: coding, a round trip through a real H.264 re-encode, keys, real clips."""
import av
import cv2
import numpy as np
import pytest

from doppel import media
from doppel.provenance import watermark as wm

PAYLOAD = wm.make_payload(0x5EED1234)


def _frames(path, n):
    out = []
    for f in media.iter_frames(path):
        out.append(f.image)
        if len(out) == n:
            return out
    return out


def _reencode(frames, path, crf, scale=1.0):
    """What a platform does: rescale and re-encode with libx264 (PyAV), then decode."""
    h, w = frames[0].shape[:2]
    w2, h2 = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w2, h2, "yuv420p"
        s.options = {"crf": str(crf), "preset": "veryfast"}
        for i, im in enumerate(frames):
            im = cv2.resize(im, (w2, h2), interpolation=cv2.INTER_AREA)
            f = av.VideoFrame.from_ndarray(im, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return [f.image for f in media.iter_frames(path)]


def test_golay_corrects_three_errors_per_block():
    bits = wm.encode(PAYLOAD)
    assert bits.shape == (96,) and wm.decode(bits * 2.0 - 1) == PAYLOAD
    flipped = bits.copy()
    for block in range(4):
        flipped[block * 24 + np.array([1, 9, 20])] ^= 1  # 3 errors in each 24-bit block
    assert wm.decode(flipped * 2.0 - 1) == PAYLOAD
    _, words = wm._golay()
    assert words[1:].sum(1).min() == 8  # extended Golay: minimum distance 8


def test_mark_is_faint_and_reads_back_exactly(data_dir):
    img = _frames(data_dir / "talking" / "retalking_face_2.mp4", 1)[0]
    marked = wm.embed(img, PAYLOAD)
    mse = np.mean((marked.astype(float) - img) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 40
    r = wm.read_image(marked)
    assert r.found and r.payload == PAYLOAD and r.run_id == "5eed1234"
    assert not wm.read_image(img).found


def test_survives_h264_crf28_and_half_size(data_dir, tmp_path):
    frames = _frames(data_dir / "video" / "source_s32.mp4", 12)  # 1280x720
    marked = [wm.embed(f, PAYLOAD) for f in frames]
    attacked = _reencode(marked, tmp_path / "a.mp4", crf=28, scale=0.5)
    assert attacked[0].shape[:2] == (360, 640)
    video, per = wm.read_frames(attacked)
    assert video.found and video.payload == PAYLOAD
    truth = wm.encode(PAYLOAD)
    assert np.mean([np.mean((r.soft > 0) == truth) for r in per]) > 0.9  # 0.997 measured (0.80 before issue 16)
    assert np.mean([r.found for r in per]) > 0.7  # 1.0 of frames read alone measured (0.42 before issue 16)


def test_small_video_survives_half_size_reencode(data_dir, tmp_path):
    """256x256 halved to 128x128 and re-encoded: the code before issue 16 missed it (z 4.3), now z 6.5."""
    frames = _frames(data_dir / "video" / "iplap_129.mp4", 30)
    marked = [wm.embed(f, PAYLOAD) for f in frames]
    attacked = _reencode(marked, tmp_path / "a.mp4", crf=23, scale=0.5)
    assert attacked[0].shape[:2] == (128, 128)
    video, _ = wm.read_frames(attacked)
    assert video.found and video.payload == PAYLOAD


def test_busy_frames_stay_above_40_db_and_the_mark_is_local(data_dir):
    """The busy clips were marked under 40 dB (38.9 and 37.8 dB on these first frames before issue 16);
    the gain depends only on a pixel's neighbourhood, so what a swap leaves alone keeps the input's mark."""
    for clip in ["video/driving_d9.mp4", "video/source_s20.mp4"]:
        img = _frames(data_dir / clip, 1)[0]
        assert 10 * np.log10(255 ** 2 / np.mean((wm.embed(img, PAYLOAD).astype(float) - img) ** 2)) > 40, clip
    edited = img.copy()
    edited[:, : img.shape[1] // 3] = 255 - edited[:, : img.shape[1] // 3]  # "swap" the left third
    a, b = wm.embed(img, PAYLOAD), wm.embed(edited, PAYLOAD)
    x = img.shape[1] // 3 + 40
    assert np.array_equal(a[:, x:], b[:, x:])
    flat = np.full((96, 128, 3), 120, np.uint8)  # no texture: the floor of the mask
    s = wm.MarkSettings()
    d = wm.embed(flat, PAYLOAD).astype(float) - flat
    assert np.sqrt(np.mean(d ** 2)) <= s.strength * s.min_gain + 0.2


def test_wrong_key_reads_nothing(data_dir):
    frames = _frames(data_dir / "talking" / "retalking_face_1.mp4", 6)
    mine = wm.MarkSettings(key="my own secret")
    marked = [wm.embed(f, PAYLOAD, mine) for f in frames]
    assert wm.read_frames(marked, key="my own secret")[0].payload == PAYLOAD
    other, per = wm.read_frames(marked)  # the default key
    assert not other.found and other.payload is None and not any(r.found for r in per)
    assert other.z < wm.Z_MIN


@pytest.mark.parametrize("clip", ["talking/retalking_face_5.mp4", "video/driving_d19.mp4", "video/iplap_129.mp4",
                                  "deepfake/ffpp_pair_real.mp4"])
def test_unmarked_real_clips_carry_no_mark(data_dir, clip):
    video, per = wm.read_frames(_frames(data_dir / clip, 40))
    assert not video.found and not any(r.found for r in per)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="uint8"):
        wm.embed(np.zeros((64, 64, 3), np.float32), PAYLOAD)
    with pytest.raises(ValueError, match="no frames"):
        wm.read_frames([])


def test_reading_frames_one_at_a_time_for_two_keys_matches_reading_each_key(data_dir):
    """`doppel detect` folds each decoded frame once for every key it tries (FrameReader): the same
    readings as read_frames per key, for the key that marked the frames and for one that did not."""
    frames = _frames(data_dir / "talking" / "retalking_face_1.mp4", 10)
    marked = [wm.embed(f, PAYLOAD, wm.MarkSettings(key="my own secret")) for f in frames]
    reader = wm.FrameReader(["my own secret", wm.DEFAULT_KEY], probe=4)
    for f in marked:
        reader.add(f)
    for key, (video, per) in zip(["my own secret", wm.DEFAULT_KEY], reader.readings()):
        alone, alone_per = wm.read_frames(marked, key=key, probe=4)
        assert (video.found, video.payload, video.scale) == (alone.found, alone.payload, alone.scale)
        assert video.z == pytest.approx(alone.z) and len(per) == len(alone_per) == 10
    assert reader.readings()[0][0].payload == PAYLOAD and not reader.readings()[1][0].found


def test_watermark_strength_scales_the_mark_and_is_recorded(data_dir, tmp_path, monkeypatch):
    """`doppel --watermark-strength X` (via $DOPPEL_WATERMARK_STRENGTH): the change is X times the default's,
    the label says X, and a clean copy still reads; a value out of range is refused in one line."""
    from doppel import provenance
    from doppel.errors import DoppelError
    img = _frames(data_dir / "video" / "driving_d0.mp4", 1)[0]  # flat green screen: where the mark shows most
    change = {}
    for x in ("1", "0.5"):
        monkeypatch.setenv(wm.STRENGTH_ENV, x)
        out = tmp_path / f"s{x}.png"
        lab = provenance.write_image(out, img, "face-swap")
        assert lab["watermark"].get("strength", 1.0) == float(x)
        marked = media.read_image(out)
        change[x] = np.sqrt(np.mean((marked.astype(float) - img) ** 2))
        r = wm.read_image(marked)
        assert r.found and f"{r.payload:012x}" == lab["watermark"]["payload"]
    assert change["0.5"] == pytest.approx(change["1"] / 2, rel=0.15)
    for bad in ("3", "abc", "0"):
        monkeypatch.setenv(wm.STRENGTH_ENV, bad)
        with pytest.raises(DoppelError, match="DOPPEL_WATERMARK_STRENGTH"):
            provenance.write_image(tmp_path / "bad.png", img, "face-swap")
        assert not (tmp_path / "bad.png").exists()


def test_cli_checks_watermark_strength_and_hands_it_on(capsys, monkeypatch):
    from doppel import cli
    assert cli.WATERMARK_STRENGTH == wm.STRENGTH_RANGE
    with pytest.raises(SystemExit) as e:
        cli.main(["--watermark-strength", "5", "provenance", "check", "x.png"])
    assert e.value.code == 2 and "--watermark-strength: must be a number from 0.25 to 2.0" in capsys.readouterr().err
    monkeypatch.setenv(wm.STRENGTH_ENV, "1")  # so the variable cli.main sets is undone after the test
    cli.main(["--watermark-strength", "0.5", "provenance", "check", "no-such-file.png"])
    assert wm.strength_from_env() == 0.5


def test_previews_get_half_the_mark_and_still_read(data_dir, tmp_path, monkeypatch):
    """Preview stills (kind '*-preview', or a swap preview) are marked at PREVIEW_STRENGTH: the whole mark
    showed on the demo strip's dark suit. The label says so and the mark still reads on the file."""
    from doppel import provenance
    monkeypatch.delenv(wm.STRENGTH_ENV, raising=False)
    img = _frames(data_dir / "talking" / "retalking_face_1.mp4", 1)[0]  # the demo's dark suit
    change = {}
    for name, kind, extra in (("out", "face-swap", {}), ("strip", "face-swap", {"preview": True}),
                              ("train", "swap-training-preview", {})):
        lab = provenance.write_image(tmp_path / f"{name}.png", img, kind, **extra)
        marked = media.read_image(tmp_path / f"{name}.png")
        change[name] = np.sqrt(np.mean((marked.astype(float) - img) ** 2))
        assert lab["watermark"].get("strength", 1.0) == (1.0 if name == "out" else wm.PREVIEW_STRENGTH)
        assert wm.read_image(marked).found
    assert change["strip"] == pytest.approx(change["out"] * wm.PREVIEW_STRENGTH, rel=0.15)
    assert change["train"] == pytest.approx(change["strip"], rel=0.05)
