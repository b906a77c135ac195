"""Every output of swap and lipsync carries the label, the watermark and a valid C2PA manifest,
and the mark still says synthetic after a re-encode has stripped the other two."""
import av
import pytest
from scipy.io import wavfile

from doppel import media, provenance
from doppel.lipsync import model, synth, train
from doppel.swap import convert
from doppel.swap.model import build, save_model

CLIP = "talking/retalking_face_5.mp4"


def _all_three(path, kind, parent):
    found = provenance.check(path)
    assert found["label"]["kind"] == kind
    assert found["watermark"]["found"] and found["watermark"]["run_id"] == found["label"]["watermark"]["run_id"]
    m = found["c2pa"]
    assert m["state"] == "valid" and m["ingredients"] == [parent]
    assert {"action": "c2pa.edited", "digitalSourceType": "compositeWithTrainedAlgorithmicMedia"} in m["actions"]
    assert len(found["evidence"]) == 3
    return found


def _strip(path, out):
    """Re-encode the frames only (CRF 28, no metadata, no manifest), as an upload would."""
    frames = [f.image for f in media.iter_frames(path)]
    with av.open(str(out), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        s.options = {"crf": "28"}
        for i, im in enumerate(frames):
            f = av.VideoFrame.from_ndarray(im, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return out


@pytest.fixture(scope="module")
def swapped(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("swap")
    mdir = save_model(root / "m", build("lite").eval(), info={"coverage": 0.8, "size": 64, "identity_a": None,
                                                              "identity_b": None, "step": 0}).parent
    out = root / "out.mp4"
    convert.swap(data_dir / CLIP, mdir, out, convert.SwapSettings(max_frames=10, preview=str(root / "p.png")))
    return out, root / "p.png"


def test_swap_video_and_preview_carry_all_three(swapped):
    out, preview = swapped
    _all_three(out, "face-swap", "retalking_face_5.mp4")
    p = provenance.check(preview)
    assert p["label"]["kind"] == "face-swap" and p["watermark"]["found"] and p["c2pa"]["state"] == "valid"


def test_mark_alone_still_says_synthetic_after_reencode(swapped, tmp_path):
    found = provenance.check(_strip(swapped[0], tmp_path / "stripped.mp4"))
    assert found["label"] is None and found["c2pa"] is None
    assert found["watermark"]["found"] and found["evidence"][0].startswith("doppel watermark")


@pytest.mark.slow  # ~25 s; the default run checks lipsync's output in tests/lipsync/test_lipsync.py
def test_lipsync_video_carries_all_three(data_dir, tmp_path):
    target = tmp_path / "target.mp4"  # 1.2 s of the clip: fewer frames to find landmarks in
    with media.VideoWriter(target, 25, audio=data_dir / CLIP, max_duration=1.2) as w:
        for f in media.read_frames(data_dir / CLIP)[:30]:
            w.write(f.image)
    lip = tmp_path / "tiny.lip"
    train.train([str(target)], lip, train.TrainConfig(steps=10, seq_len=50, batch=2),
                model.LipConfig(hidden=8, n_coeffs=4))
    rate, x = wavfile.read(data_dir / "speech" / "retalking_audio_1.wav")
    speech = tmp_path / "s.wav"
    wavfile.write(speech, rate, x[: int(0.6 * rate)])
    out = tmp_path / "lip.mp4"
    synth.lipsync(target, speech, lip, out)
    _all_three(out, "lipsync", "target.mp4")
