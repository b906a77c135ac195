"""`doppel extract` end to end on real media: coverage, filters, reference, bad input, refilter."""
import json
import shutil

import av
import cv2
import numpy as np
import pytest

from doppel import extract as ex
from doppel import media
from doppel.cli import main
from doppel.faceset import FaceSet

LFW = "faces/lfw"


def files_exist(fs: FaceSet) -> bool:
    return all((fs.root / r.file).is_file() for r in fs.faces + fs.dropped)


def keep_rate(clip, tmp_path) -> tuple[float, FaceSet]:
    out = tmp_path / clip.stem
    summary = ex.extract([clip], out)
    fs = FaceSet.open(out)
    kept_frames = {r.frame_index for r in fs.faces}
    return len(kept_frames) / summary.frames, fs


def test_one_talking_clip_keeps_a_face_in_90_percent_of_frames(data_dir, tmp_path):
    rate, fs = keep_rate(data_dir / "talking" / "retalking_face_5.mp4", tmp_path)
    assert rate >= 0.9
    assert files_exist(fs)
    r = fs.faces[0]
    assert len(r.landmarks) == 68 and np.asarray(r.matrix).shape == (2, 3)
    assert {"sharpness", "fit", "yaw", "people"} <= set(r.scores)
    assert fs.load_crop(r).shape == (64, 64, 3)
    assert len(fs.meta["identity"]) == 128
    # the landmarks map into the crop where the template puts them
    shape = ex.quality.aligned_shape(r.landmarks_array, r.matrix_array, 64) * 64
    tpl = ex.align.template_points(64)
    assert np.sqrt(((shape - tpl)[17:] ** 2).sum(1)).mean() < 3.0


@pytest.mark.slow
def test_every_talking_clip_keeps_a_face_in_90_percent_of_frames(data_dir, tmp_path):
    for clip in sorted((data_dir / "talking").glob("*.mp4")):
        rate, _ = keep_rate(clip, tmp_path)
        assert rate >= 0.9, f"{clip.name}: face kept in {rate:.0%} of frames"


def test_two_faces_side_by_side_are_dropped_as_multi_person(data_dir, tmp_path):
    a = media.read_image(data_dir / "images" / "obama.jpg")
    b = media.read_image(data_dir / "images" / "people_0.png")
    b = cv2.resize(b, (round(b.shape[1] * a.shape[0] / b.shape[0]), a.shape[0]))
    pair = tmp_path / "pair.png"
    media.write_image(pair, np.concatenate([a, b], 1))
    ex.extract([pair], tmp_path / "fs")
    fs = FaceSet.open(tmp_path / "fs")
    assert not fs.faces
    assert [r.reason for r in fs.dropped] == ["multi-person", "multi-person"]
    # with the limit lifted, both are kept
    ex.refilter(fs, ex.QualityConfig(max_people=2))
    assert len(FaceSet.open(tmp_path / "fs").faces) == 2


def test_blurred_copy_is_dropped_by_the_blur_filter(data_dir, tmp_path):
    sharp = media.read_image(data_dir / "images" / "people_0.png")
    media.write_image(tmp_path / "sharp.png", sharp)
    media.write_image(tmp_path / "blurred.png", cv2.GaussianBlur(sharp, (0, 0), 3.0))
    summary = ex.extract([tmp_path / "sharp.png", tmp_path / "blurred.png"], tmp_path / "fs")
    fs = FaceSet.open(tmp_path / "fs")
    assert [r.source.endswith("sharp.png") for r in fs.faces] == [True]
    assert [(r.reason, r.source.endswith("blurred.png")) for r in fs.dropped] == [("blur", True)]
    assert summary.dropped["blur"] == 1 and (tmp_path / "fs" / fs.dropped[0].file).is_file()


def test_reference_keeps_only_the_right_person(data_dir, tmp_path):
    inputs = tmp_path / "photos"
    inputs.mkdir()
    for name in ("George_W_Bush_0002", "George_W_Bush_0003", "Colin_Powell_0001", "Colin_Powell_0002"):
        shutil.copy(data_dir / LFW / name.rsplit("_", 1)[0] / f"{name}.jpg", inputs)
    ref = data_dir / LFW / "George_W_Bush" / "George_W_Bush_0001.jpg"
    cfg = ex.ExtractConfig(reference=str(ref), quality=ex.QualityConfig(max_people=0))
    ex.extract([inputs], tmp_path / "fs", cfg)
    fs = FaceSet.open(tmp_path / "fs")
    kept = {r.frame_index for r in fs.faces}
    assert kept == {2, 3}, f"kept frames {kept} (0-1 Powell, 2-3 Bush)"
    assert all(r.reason == "not-reference" for r in fs.dropped if r.frame_index < 2)
    # extending it without --reference still keeps only that person
    ex.extract([data_dir / LFW / "Colin_Powell" / "Colin_Powell_0003.jpg"], tmp_path / "fs")
    fs = FaceSet.open(tmp_path / "fs")
    assert len(fs.faces) == 2 and fs.dropped[-1].reason == "not-reference"
    # extending the set with another person's reference is refused
    with pytest.raises(ex.DoppelError, match="different person"):
        other = data_dir / LFW / "Colin_Powell" / "Colin_Powell_0003.jpg"
        ex.extract([inputs], tmp_path / "fs", ex.ExtractConfig(reference=str(other)))


def zero_frame_video(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        c.start_encoding()


@pytest.mark.parametrize("case", ["missing", "not-media", "zero-frames", "no-face", "different-set", "not-a-set"])
def test_bad_input_is_a_one_line_error_with_nothing_left_behind(case, data_dir, tmp_path, capsys):
    out = tmp_path / "fs"
    src = tmp_path / "input.mp4"
    extra = []
    if case == "not-media":
        src.write_text("not a video")
    elif case == "zero-frames":
        zero_frame_video(src)
    elif case == "no-face":
        src = tmp_path / "grey.png"
        media.write_image(src, np.full((120, 160, 3), 128, np.uint8))
    elif case == "different-set":
        src = data_dir / "images" / "people_0.png"
        assert main(["extract", str(src), "-o", str(out)]) == 0
        extra = ["--size", "128"]
    elif case == "not-a-set":
        src = data_dir / "images" / "people_0.png"
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if out in p.parents or p == out)
    capsys.readouterr()
    rc = main(["extract", str(src), "-o", str(out)] + extra)
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert err.startswith("doppel extract: error:") and "\n" not in err, err
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if out in p.parents or p == out)
    assert after == before  # no folder created, an existing one untouched


def test_extend_then_refilter_moves_crops_and_keeps_files_consistent(data_dir, tmp_path):
    out = tmp_path / "fs"
    ex.extract([data_dir / "images" / "obama.jpg"], out)
    ex.extract([data_dir / "images" / "people_0.png", data_dir / "images" / "happy.png"], out)
    fs = FaceSet.open(out)
    assert len(fs.faces) == 3 and files_exist(fs)
    assert main(["faceset", "refilter", str(out), "--min-sharpness", "100"]) == 0
    fs = FaceSet.open(out)
    assert not fs.faces and {r.reason for r in fs.dropped} == {"blur"} and files_exist(fs)
    assert not list((out / "faces").glob("*.png"))
    assert fs.meta["quality"]["min_sharpness"] == 100
    assert main(["faceset", "refilter", str(out), "--min-sharpness", "0.1", "--max-faces", "2"]) == 0
    fs = FaceSet.open(out)
    assert len(fs.faces) == 2 and [r.reason for r in fs.dropped] == ["max-faces"] and files_exist(fs)
    assert len(list((out / "faces").glob("*.png"))) == 2


def test_ctrl_c_saves_a_consistent_face_set(data_dir, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = ex._Run.frame

    def frame_then_interrupt(self, *args):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(self, *args)
    monkeypatch.setattr(ex._Run, "frame", frame_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        ex.extract([data_dir / "video" / "iplap_129.mp4"], tmp_path / "fs")
    fs = FaceSet.open(tmp_path / "fs")
    assert len(fs.faces) + len(fs.dropped) == 5 and files_exist(fs)
    calls["n"] = 5  # interrupted before any face: nothing is left
    with pytest.raises(KeyboardInterrupt):
        ex.extract([data_dir / "video" / "iplap_129.mp4"], tmp_path / "fs2")
    assert not (tmp_path / "fs2").exists()


def test_contact_sheet_shows_kept_and_each_drop_reason(data_dir, tmp_path):
    sharp = media.read_image(data_dir / "images" / "people_0.png")
    media.write_image(tmp_path / "a.png", sharp)
    media.write_image(tmp_path / "b.png", cv2.GaussianBlur(sharp, (0, 0), 3.0))
    media.write_image(tmp_path / "c.png", (sharp * 0.1).astype(np.uint8))
    ex.extract([tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"], tmp_path / "fs",
               ex.ExtractConfig(size=128))
    assert main(["faceset", "sheet", str(tmp_path / "fs"), "-o", str(tmp_path / "sheet.png"),
                 "--columns", "4", "--thumb", "32"]) == 0
    sheet = media.read_image(tmp_path / "sheet.png")
    # three groups (kept, blur, dark), each a label row plus one row of thumbnails
    assert sheet.shape == (3 * (22 + 32), 4 * 32, 3)
    info = json.loads((tmp_path / "fs" / "alignments.json").read_text())
    assert sorted(r["reason"] for r in info["dropped"]) == ["blur", "dark"]


def test_threshold_flags_reach_the_config_and_stored_values_stay():
    from doppel.cli import build_parser
    args = build_parser().parse_args(["extract", "x.mp4", "-o", "fs", "--reference", "me.jpg",
                                      "--reference-distance", "0.5", "--max-faces", "30", "--max-yaw", "20"])
    cfg = ex.quality_config(args, {"min_sharpness": 0.3, "max_yaw": 60.0}, reference=True)
    assert (cfg.max_identity, cfg.max_faces, cfg.max_yaw) == (0.5, 30, 20.0)  # flags win
    assert cfg.min_sharpness == 0.3  # stored in the face set
    assert cfg.max_people == 0 and cfg.max_tint == ex.QualityConfig().max_tint  # reference default; default
    plain = build_parser().parse_args(["extract", "x.mp4", "-o", "fs"])
    assert ex.quality_config(plain, {}) == ex.QualityConfig()
