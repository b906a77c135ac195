"""Media I/O: real clips, a written-and-read-back video with audio, atomic writes."""
import numpy as np
import pytest

from doppel import media


def frames(n=20, h=48, w=64):
    out = []
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 0] = np.linspace(0, 255, w)[None, :]
        img[..., 1] = np.linspace(0, 255, h)[:, None]
        img[10:26, 2 * i:2 * i + 16, 2] = 255  # a moving square
        out.append(img)
    return out


def test_real_clip_frames_match_the_probe(data_dir):
    clip = data_dir / "talking" / "retalking_face_5.mp4"
    info = media.probe(clip)
    got = media.read_frames(clip)
    assert len(got) == info.frame_count and info.has_audio
    assert got[0].image.shape == (info.height, info.width, 3) and got[0].image.dtype == np.uint8
    times = np.array([f.time for f in got])
    assert np.allclose(np.diff(times), 1 / info.fps, atol=1e-3)
    assert [f.index for f in media.iter_frames(clip, step=10)] == list(range(0, info.frame_count, 10))


def test_video_round_trip_with_audio(tmp_path):
    rate, fps = 16000, 25
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    src = frames()
    out = tmp_path / "v.mp4"
    with media.VideoWriter(out, fps, audio=(tone, rate), metadata={"comment": "test"}) as w:
        for f in src:
            w.write(f)
    info = media.probe(out)
    assert (info.width, info.height, info.frame_count) == (64, 48, 20)
    assert info.fps == pytest.approx(fps) and info.has_audio
    back = media.read_frames(out)
    assert np.abs(back[7].image.astype(int) - src[7]).mean() < 4
    audio = media.read_audio(out, rate)
    assert abs(len(audio) / rate - 20 / fps) < 0.1  # cut to the video's length
    spectrum = np.abs(np.fft.rfft(audio[: rate // 2]))
    assert np.fft.rfftfreq(rate // 2, 1 / rate)[spectrum.argmax()] == pytest.approx(440, abs=4)


def test_audio_is_copied_from_a_source_file(data_dir, tmp_path):
    out = tmp_path / "v.mp4"
    with media.VideoWriter(out, 25, audio=data_dir / "talking" / "retalking_face_5.mp4") as w:
        for f in frames(25):
            w.write(f)
    audio = media.read_audio(out, 16000)
    assert media.probe(out).has_audio and np.abs(audio).max() > 0.01


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError):
        with media.VideoWriter(out, 25) as w:
            w.write(frames(1)[0])
            raise RuntimeError("crash mid-way")
    with pytest.raises(media.MediaError, match="no frames"):
        with media.VideoWriter(out, 25):
            pass
    with pytest.raises(RuntimeError):
        with media.atomic_path(tmp_path / "x.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_folder_of_images_reads_like_a_video(tmp_path):
    for i, f in enumerate(frames(3)):
        media.write_image(tmp_path / f"{i:03d}.png", f)
    got = media.read_frames(tmp_path)
    assert [f.index for f in got] == [0, 1, 2] and np.array_equal(got[2].image, frames(3)[2])
    assert media.probe(tmp_path).frame_count == 3


def test_bad_media_is_a_media_error(tmp_path):
    with pytest.raises(media.MediaError, match="no such file"):
        media.probe(tmp_path / "missing.mp4")
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(media.MediaError, match="not a readable media file"):
        media.probe(tmp_path / "text.mp4")
    silent = tmp_path / "silent.mp4"
    with media.VideoWriter(silent, 25) as w:
        w.write(frames(1)[0])
    with pytest.raises(media.MediaError, match="no audio"):
        media.read_audio(silent)


def test_atomic_outputs_get_umask_permissions(tmp_path):
    import os
    umask = os.umask(0o022)
    try:
        with media.atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("hi")
    finally:
        os.umask(umask)
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o644


def test_prefetch_keeps_order_hands_on_errors_and_stops_its_producer():
    assert list(media.prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise media.MediaError("broken at 3")

    got = []
    with pytest.raises(media.MediaError, match="broken at 3"):
        for x in media.prefetch(failing()):
            got.append(x)
    assert got == [1, 2]  # what came before the error is delivered first

    closed = []

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(True)

    it = media.prefetch(endless(), depth=2)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()  # the consumer stops early: the producer stops and closes its source
    assert closed == [True]
