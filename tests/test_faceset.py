"""The on-disk face set: save/open round trip, extending, refusing what is not a face set."""
import json

import numpy as np
import pytest

from doppel.errors import DoppelError
from doppel.faceset import ALIGNMENTS, FORMAT, FaceRecord, FaceSet


def record(i: int, reason: str = "") -> FaceRecord:
    lm = (np.arange(136, dtype=np.float64).reshape(68, 2) + i).tolist()
    return FaceRecord(f"clip{i}.mp4", i, i / 25, [1.0, 2.0, 30.0, 40.0], lm, [[1.0, 0, -1], [0, 1.0, -2]],
                      {"sharpness": 0.5 + i}, reason=reason)


def crop(value: int, size: int = 16) -> np.ndarray:
    img = np.full((size, size, 3), value, np.uint8)
    img[0, 0] = (255, 0, 0)  # a red corner: catches an RGB/BGR swap on the way through OpenCV
    return img


def test_save_then_open_gives_back_records_and_crops(tmp_path):
    fs = FaceSet.create(tmp_path / "fs", 16, 0.8)
    fs.meta["identity"] = [0.25, 0.5]
    for i in range(3):
        fs.add(record(i), crop(10 * i))
    fs.add(record(9, reason="blur"), crop(200))
    fs.save()

    back = FaceSet.open(tmp_path / "fs")
    assert (back.size, back.coverage, back.meta) == (16, 0.8, {"identity": [0.25, 0.5]})
    assert len(back) == 3 and [r.reason for r in back.dropped] == ["blur"]
    assert [r.file for r in back.faces] == ["faces/000000.png", "faces/000001.png", "faces/000002.png"]
    assert back.dropped[0].file.startswith("dropped/")
    assert back.faces[1] == fs.faces[1]
    assert back.faces[2].landmarks_array.shape == (68, 2) and back.faces[2].matrix_array.shape == (2, 3)
    for i, (rec, img) in enumerate(back.iter_crops()):
        assert np.array_equal(img, crop(10 * i)), rec.file
    assert json.loads((tmp_path / "fs" / ALIGNMENTS).read_text())["format"] == FORMAT


def test_create_extends_a_matching_set_and_refuses_others(tmp_path):
    fs = FaceSet.create(tmp_path / "fs", 16, 0.8)
    fs.add(record(0), crop(1))
    fs.save()
    more = FaceSet.create(tmp_path / "fs", 16, 0.8)  # extending: the old face is kept, names do not collide
    more.add(record(1), crop(2))
    assert [r.file for r in more.faces] == ["faces/000000.png", "faces/000001.png"]
    with pytest.raises(DoppelError, match="size 16, coverage 0.8; asked for size 32"):
        FaceSet.create(tmp_path / "fs", 32, 0.8)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(DoppelError, match="not empty and is not a face set"):
        FaceSet.create(tmp_path / "other", 16, 0.8)


def test_open_refuses_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(DoppelError, match="no alignments.json"):
        FaceSet.open(tmp_path)
    (tmp_path / ALIGNMENTS).write_text("{not json")
    with pytest.raises(DoppelError, match="corrupt"):
        FaceSet.open(tmp_path)
    (tmp_path / ALIGNMENTS).write_text(json.dumps({"format": "faceswap/2", "size": 64, "coverage": 0.8}))
    with pytest.raises(DoppelError, match="faceswap/2"):
        FaceSet.open(tmp_path)


def test_a_crop_of_the_wrong_shape_is_refused_before_anything_is_written(tmp_path):
    fs = FaceSet.create(tmp_path / "fs", 16, 0.8)
    with pytest.raises(ValueError, match=r"\(16, 16, 3\)"):
        fs.add(record(0), np.zeros((16, 16), np.uint8))
    assert len(fs) == 0 and not (tmp_path / "fs").exists()
