"""C2PA: a manifest signed offline reads back valid; one flipped byte reads as tampered."""
from pathlib import Path

import pytest

from doppel import cli, media, provenance
from doppel.errors import DoppelError
from doppel.provenance import c2pa


@pytest.fixture(scope="module")
def frames(data_dir):
    return [f.image[::2, ::2] for f in media.read_frames(data_dir / "talking" / "retalking_face_5.mp4")[:8]]


def _video(path, frames, **kw):
    with provenance.video_writer(path, 25, "test", {"what": "unit"}, **kw) as w:
        for f in frames:
            w.write(f)
    return path


def _flip(path, out, where):
    data = bytearray(path.read_bytes())
    i = data.find(b"mdat") + where
    data[i] ^= 0x01
    out.write_bytes(bytes(data))
    return out


def test_signed_video_verifies_and_says_synthetic(tmp_path, doppel_config, frames):
    out = _video(tmp_path / "v.mp4", frames)
    m = c2pa.read(out)
    assert m["state"] == "valid" and m["signer"] == "doppel signer"  # valid, not in a trust list
    assert m["actions"] == [{"action": "c2pa.created", "digitalSourceType": "trainedAlgorithmicMedia"}]
    assert m["doppel"]["watermark"] == provenance.read_label(out)["watermark"]  # label inside the claim
    assert c2pa.synthetic(m)
    assert (doppel_config / "c2pa" / "signer_key.pem").stat().st_mode & 0o077 == 0  # key kept private


def test_one_flipped_byte_reads_as_tampered(tmp_path, frames):
    out = _video(tmp_path / "v.mp4", frames)
    bad = c2pa.read(_flip(out, tmp_path / "bad.mp4", 300))
    assert bad["state"] == "invalid" and any("mismatch" in e for e in bad["errors"])
    found = provenance.check(tmp_path / "bad.mp4")
    assert not any("C2PA" in e for e in found["evidence"])  # a broken manifest is no evidence
    assert "INVALID" in provenance.check_lines(found)[2]


def test_edit_of_a_parent_names_it(tmp_path, data_dir, frames):
    parent = data_dir / "video" / "iplap_129.mp4"
    m = c2pa.read(_video(tmp_path / "v.mp4", frames, parent=parent))
    assert m["state"] == "valid" and m["ingredients"] == ["iplap_129.mp4"]
    assert {"action": "c2pa.edited", "digitalSourceType": "compositeWithTrainedAlgorithmicMedia"} in m["actions"]


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_signed_image_verifies_and_keeps_label_and_mark(tmp_path, data_dir, ext):
    img = media.read_image(data_dir / "images" / "obama.jpg")
    path = tmp_path / f"o{ext}"
    provenance.write_labeled_image(path, img, "test-image")
    found = provenance.check(path)
    assert found["c2pa"]["state"] == "valid" and found["label"]["kind"] == "test-image"
    assert found["watermark"]["found"] and found["watermark"]["run_id"] == found["label"]["watermark"]["run_id"]


def test_real_file_has_no_manifest(data_dir):
    assert c2pa.read(data_dir / "talking" / "retalking_face_5.mp4") is None
    assert c2pa.read(data_dir / "images" / "obama.jpg") is None


def test_user_certificate_is_used_and_needs_its_key(tmp_path, monkeypatch, doppel_config, frames):
    own = tmp_path / "mine"
    monkeypatch.setenv(c2pa.DIR_ENV, str(own))
    c2pa.credentials()  # makes a second chain in `own`
    monkeypatch.setenv(c2pa.DIR_ENV, str(doppel_config))
    monkeypatch.setenv(c2pa.CERT_ENV, str(own / "c2pa" / "signer_chain.pem"))
    with pytest.raises(DoppelError, match="key"):
        c2pa.credentials()
    monkeypatch.setenv(c2pa.KEY_ENV, str(own / "c2pa" / "signer_key.pem"))
    assert c2pa.credentials().chain == (own / "c2pa" / "signer_chain.pem").read_bytes()
    assert c2pa.read(_video(tmp_path / "v.mp4", frames))["state"] == "valid"


def test_cli_check_with_own_watermark_key(tmp_path, capsys, data_dir, frames, monkeypatch):
    monkeypatch.setenv("DOPPEL_WATERMARK_KEY", "")  # cli.main sets it from --watermark-key
    out = _video(tmp_path / "v.mp4", frames, key="k-42")
    assert provenance.read_label(out)["watermark"]["key"].startswith("custom ")
    assert cli.main(["provenance", "check", str(out)]) == 0
    assert "watermark: none found" in capsys.readouterr().out  # default key: no mark
    photo = data_dir / "images" / "obama.jpg"
    assert cli.main(["--watermark-key", "k-42", "provenance", "check", str(out), str(photo)]) == 0
    text = capsys.readouterr().out
    assert "v.mp4: SYNTHETIC (doppel synthetic label; doppel watermark" in text
    assert "obama.jpg: no provenance signal found (this does not mean it is real)" in text
    assert cli.main(["provenance", "check", str(tmp_path / "missing.mp4")]) == 2


SIGN_RSS = """
import sys
from pathlib import Path
from doppel.provenance import c2pa
c2pa.credentials()
import c2pa as sdk  # noqa: F401 (loaded before the baseline)
def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key))
open("/proc/self/clear_refs", "w").write("5")  # peak RSS (VmHWM) := RSS now (Linux)
before = status("VmRSS:")
c2pa.sign(Path(sys.argv[1]), Path(sys.argv[2]), "out.mp4", {"kind": "test"})
print((status("VmHWM:") - before) * 1024)
"""


def _sign_rss(src, dst) -> int:
    import os
    import subprocess
    import sys
    env = {**os.environ, "PYTHONPATH": str(Path(c2pa.__file__).parents[2])}
    r = subprocess.run([sys.executable, "-c", SIGN_RSS, str(src), str(dst)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert c2pa.read(dst)["state"] == "valid"
    return int(r.stdout.split()[-1])


def test_signing_a_long_output_holds_megabytes_not_the_file(tmp_path, doppel_config):
    """doppel's fragmented MP4 is signed fragment by fragment with a file-backed store: a 38 MB output
    costs about 20 MB, the store's threshold. The same video as a plain MP4 (moov at the end), signed by
    the same code, costs more than its size (48 MB here: the baseline that shows the measure can tell)."""
    import av
    import numpy as np
    rng = np.random.default_rng(0)
    frag = tmp_path / "frag.mp4"
    with media.VideoWriter(frag, 25, crf=0) as w:  # noise at lossless quality: ~0.3 MB a frame
        for _ in range(100):
            w.write(rng.integers(0, 256, (480, 480, 3), dtype=np.uint8))
    plain = tmp_path / "plain.mp4"
    with av.open(str(frag)) as i, av.open(str(plain), "w", format="mp4") as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for p in i.demux(i.streams.video[0]):
            if p.dts is not None:
                p.stream = s
                o.mux(p)
    size = frag.stat().st_size
    assert size > 25e6
    grow_frag, grow_plain = _sign_rss(frag, tmp_path / "sf.mp4"), _sign_rss(plain, tmp_path / "sp.mp4")
    # what the fragmented file costs is the SDK's in-memory store (BACKING_STORE_MB) and a little, not its size
    assert grow_frag < 1.5 * c2pa.BACKING_STORE_MB * 2 ** 20 + 0.1 * size < 0.9 * size < grow_plain, \
        (grow_frag, grow_plain, size)


def test_written_video_and_audio_start_together(tmp_path, frames):
    """Fragmented output keeps the edit list (delay_moov): without it the video began 2 frames (x264's
    B-frame delay) after the audio."""
    import av
    import numpy as np
    tone = (0.3 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 300)).astype(np.float32)
    out = tmp_path / "av.mp4"
    with media.VideoWriter(out, 25, audio=(tone, 16000)) as w:
        for f in frames:
            w.write(f)
    with av.open(str(out)) as c:
        first_video = next(c.decode(video=0)).time
    with av.open(str(out)) as c:
        first_audio = next(c.decode(audio=0)).time
    assert first_video == first_audio == 0.0
    assert media.probe(out).frame_count == len(frames)
