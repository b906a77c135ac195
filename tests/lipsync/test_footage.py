"""Bounded memory in lip sync: frames read again by index within a byte budget, crops of a bounded pool."""
import numpy as np
import pytest
from scipy.io import wavfile

from doppel import media
from doppel.lipsync import footage, synth, texture
from doppel.provenance import watermark, writer

TARGET = "retalking_face_5.mp4"  # 122 frames, 524x524, 25 fps


@pytest.fixture(scope="module")
def clip(data_dir):
    path = data_dir / "talking" / TARGET
    frames = media.read_frames(path)
    return path, frames, np.array([f.time for f in frames])


def _order(n: int) -> list[int]:
    """Ping-pong playback (forward, then backward), then random jumps, as lipsync asks for frames."""
    rng = np.random.default_rng(0)
    return list(range(n)) + list(range(n - 2, -1, -1)) + rng.integers(0, n, 40).tolist()


def test_reader_gives_every_frame_in_any_order_within_its_budget(clip):
    path, frames, times = clip
    with footage.FrameReader(path, times, budget=7 * frames[0].image.nbytes) as r:
        for j in _order(len(frames)):
            assert np.array_equal(r[j], frames[j].image), j
            assert len(r.window) <= 7
        # the backward half costs about one seek per window of 7 frames, not one per frame
        assert len(frames) / 7 - 2 < r.seeks < 2 * len(frames) / 7 + 40
    with pytest.raises(IndexError):
        footage.FrameReader(path, times)[len(frames)]


def test_reader_decodes_from_the_start_when_times_do_not_place_frames(clip):
    path, frames, times = clip
    with footage.FrameReader(path, times + 0.013, budget=5 * frames[0].image.nbytes) as r:
        for j in [60, 10, 11, 100, 3]:
            assert np.array_equal(r[j], frames[j].image), j
        assert not r.seekable


def test_candidate_pool_is_bounded_and_spread():
    found = np.ones(10_000, bool)
    found[:100] = False
    keep = texture.candidate_frames(found, 300)
    assert len(keep) == 300 and found[keep].all() and keep[0] == 100 and keep[-1] == 9_999
    assert np.array_equal(texture.candidate_frames(found[:200], 300), np.arange(200))  # short: every frame


def test_tracking_rows_grow_past_a_header_that_undercounts():
    rows = np.random.default_rng(0).normal(size=(40, 68, 2))
    r = footage._Rows(3, (68, 2))  # the header said 3 frames
    for x in rows:
        r.append(x)
    r.append(np.nan)  # a frame without a face
    out = r.array()
    assert out.shape == (41, 68, 2) and np.array_equal(out[:40], rows) and np.isnan(out[40]).all()
    assert len(footage._Rows(10 ** 9, (68, 2)).data) == footage.ROWS_AHEAD  # nor trusts one that overcounts


def test_crops_read_again_equal_those_of_kept_frames(data_dir):
    path = data_dir / "talking" / TARGET
    kept = texture.prepare(footage.load(path, keep_frames=True))
    again = texture.prepare(footage.load(path), texture.TextureConfig(pool=40))
    assert len(again.crops) == 40 and (again.rows >= 0).sum() == 40
    for j in np.flatnonzero(again.rows >= 0):
        assert np.array_equal(again.crop(j), kept.crops[j])


def test_bounded_lipsync_writes_the_video_that_all_frames_in_memory_give(data_dir, tmp_path, monkeypatch):
    """Re-timed ping-pong playback (9 s of speech on a 4.9 s target) through a 6-frame window hands the
    encoder the same frames as the same run with every decoded frame held, as lipsync did before.

    Compared before encoding: x264 turns a one-level change of input into tens of levels of output, so
    decoded videos would test the encoder's sensitivity, not the reader."""
    path = data_dir / "talking" / TARGET
    rate, x = wavfile.read(data_dir / "speech" / "retalking_audio_1.wav")
    speech = tmp_path / "long.wav"
    wavfile.write(speech, rate, np.concatenate([x, x])[: int(9 * rate)])
    cfg = synth.LipsyncConfig(retime=True)
    monkeypatch.setattr(watermark, "new_run_id", lambda: 0x12345678)  # the same invisible mark on both
    monkeypatch.setattr(footage, "READER_BUDGET", 6 * 524 * 524 * 3)
    handed: dict[str, list[np.ndarray]] = {"bounded": [], "held": []}
    run = ["bounded"]
    write = writer.LabeledVideoWriter.write
    monkeypatch.setattr(writer.LabeledVideoWriter, "write",
                        lambda self, image: (handed[run[0]].append(image.copy()), write(self, image)))
    r = synth.lipsync(path, speech, "grid_s1", tmp_path / "bounded.mp4", cfg)
    assert r.source_frames.max() == 121 and len(set(r.source_frames.tolist())) == 122
    everything = {f.index: f.image for f in media.iter_frames(path)}

    class InMemory(dict):
        def __init__(self, *a):
            super().__init__(everything)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass
    monkeypatch.setattr(footage, "FrameReader", InMemory)
    run[0] = "held"
    synth.lipsync(path, speech, "grid_s1", tmp_path / "held.mp4", cfg)
    a, b = handed["bounded"], handed["held"]
    assert len(a) == len(b) == r.frames == len(media.read_frames(tmp_path / "bounded.mp4"))
    diff = [int(np.abs(p.astype(int) - q.astype(int)).max()) for p, q in zip(a, b)]
    bad = [i for i, d in enumerate(diff) if d]
    assert not bad, f"{len(bad)} frames differ (first {bad[:5]}, target frames {r.source_frames[bad[:5]]}), " \
                    f"by up to {max(diff)} levels"
