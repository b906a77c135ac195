"""The synthetic metadata label survives a write and is read back; unlabelled media read as None."""
import numpy as np
import pytest

from doppel import media, provenance


def test_video_label_round_trip(tmp_path):
    out = tmp_path / "v.mp4"
    with media.VideoWriter(out, 25, metadata=provenance.video_metadata("face-swap", model="m1")) as w:
        for i in range(5):
            w.write(np.full((32, 48, 3), i * 40, np.uint8))
    lab = provenance.read_label(out)
    assert lab is not None and lab["synthetic"] is True
    assert lab["kind"] == "face-swap" and lab["details"]["model"] == "m1"


def test_real_clip_has_no_label(data_dir):
    assert provenance.read_label(data_dir / "talking" / "retalking_face_5.mp4") is None
    assert provenance.read_label(data_dir / "images" / "obama.jpg") is None


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_image_label_round_trip(tmp_path, ext):
    img = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / f"x{ext}"
    provenance.write_labeled_image(path, img, "lipsync", audio="a.wav")
    lab = provenance.read_label(path)
    assert lab["kind"] == "lipsync" and lab["marker"] == provenance.MARKER
    back = media.read_image(path)
    assert back.shape == img.shape
    if ext == ".png":  # lossless: only the watermark changed the pixels, by a few levels on average
        assert 0.5 < np.abs(back.astype(int) - img).mean() < 4


def test_label_rejects_bad_format(tmp_path):
    with pytest.raises(media.MediaError):
        provenance.write_labeled_image(tmp_path / "x.bmp", np.zeros((4, 4, 3), np.uint8), "x")
    assert not list(tmp_path.iterdir())
