"""The identity check of `doppel detect --reference`: distances to the claimed person, on real faces."""
import json

import numpy as np
import pytest

from doppel import cli
from doppel.detect import identity, report, scan
from doppel.errors import DoppelError

from detect_helpers import blank_detectors

FAST = scan.ScanConfig(step=25)


@pytest.fixture(scope="module")
def grid_ref(data_dir):
    """GRID speaker s1 from one of his clips."""
    return identity.reference_embedding([data_dir / "corpus" / "grid_s1" / "bbaf2n.mpg"])


def test_same_speaker_is_near_and_another_person_is_far(grid_ref, data_dir):
    assert grid_ref["faces"] == identity.VIDEO_FACES and grid_ref["mean"].shape == (128,)
    det = blank_detectors()
    same = scan.scan(data_dir / "corpus" / "grid_s1" / "bbal6n.mpg", det, FAST, False, grid_ref)
    other = scan.scan(data_dir / "talking" / "retalking_face_1.mp4", det, FAST, False, grid_ref)
    assert same.identity["median"] < 0.45 and same.identity["share_over"] == 0
    assert other.identity["median"] > 0.7 and other.identity["share_over"] == 1
    # about one embedded frame a second, each with the distance of every face found there
    assert len(same.identity["series"]) == pytest.approx(same.video["duration"], abs=1.5)
    assert "NOT the same person" in other.verdict.reasons[-1]
    assert "same person" in same.verdict.reasons[-1] and "NOT" not in same.verdict.reasons[-1]
    # the verdict's probability does not move: the distance is reported beside it
    plain = scan.scan(data_dir / "talking" / "retalking_face_1.mp4", det, FAST, False)
    assert plain.verdict.probability == other.verdict.probability and plain.identity is None
    assert "identity" not in plain.to_json() and "identity" in other.to_json()


def test_photo_reference_and_report(data_dir, tmp_path):
    ref = identity.reference_embedding([data_dir / "images" / "obama.jpg"])
    res = scan.scan(data_dir / "images" / "biden.jpg", blank_detectors(), FAST, False, ref)
    assert res.identity["median"] > 0.6
    page = report.write_html(res, tmp_path / "r.html").read_text()
    assert "<h2>Identity</h2>" in page and "NOT the same person" in page and "obama.jpg" in page
    assert "Identity: the face is" in report.summary(res) and "NOT the same person" in report.summary(res)


def test_cli_reference_and_its_bad_input(data_dir, tmp_path, capsys):
    clip = data_dir / "corpus" / "grid_s1" / "bbal6n.mpg"
    ref = data_dir / "corpus" / "grid_s1" / "bbaf2n.mpg"
    assert cli.main(["detect", str(clip), "-o", str(tmp_path / "rep"), "--step", "25", "--reference", str(ref)]) == 0
    line = json.loads((tmp_path / "rep" / "summary.json").read_text())[0]
    assert line["identity_median"] < 0.45
    noise = tmp_path / "noise.png"
    from doppel import media
    media.write_image(noise, np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for bad, why in ((tmp_path / "missing.jpg", "reference not found"), (noise, "no face found in the reference")):
        assert cli.main(["detect", str(clip), "-o", str(tmp_path / "rep2"), "--reference", str(bad)]) == 2
        assert why in capsys.readouterr().err
        assert not (tmp_path / "rep2").exists()  # nothing written
    with pytest.raises(DoppelError):
        identity.reference_embedding([])
