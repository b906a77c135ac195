"""A LocalCluster of 2 worker processes scanning real GRID clips and planted bad files."""
import json
import sqlite3

import pytest

from doppel import cli, media, provenance
from doppel.detect import cli as detect_cli
from doppel.detect import detectors
from doppel.scan import cluster, sources
from doppel.scan.store import Store

import scan_helpers as h


@pytest.fixture(scope="module")
def client():
    with cluster.connect(None, local_workers=2) as c:
        yield c


def scan(client, folder, db, settings=cluster.ScanSettings(step=h.STEP, timeout=120)):
    with Store(db) as store:
        found, _ = sources.resolve(sources.expand([str(folder)]), store, progress=False)
        todo = [s for s in sources.distinct(found) if s.digest not in store.finished("x", h.STEP)]
        counts = cluster.Driver(client, store, settings, analyser=h.analyse, progress=False).run(todo)
    return counts, sqlite3.connect(db)


def test_scan_records_every_file_and_a_rerun_scans_nothing(client, tmp_path, data_dir, capsys):
    folder = h.plant(tmp_path / "in", data_dir, {"a.mpg": 0, "renamed_a.mpg": 0, "b.mpg": 1, "crash.mpg": 2})
    h.plant_bad(folder, data_dir)
    counts, db = scan(client, folder, tmp_path / "r.sqlite")
    assert counts == {"done": 2, "error": 3, "retried": 1}
    rows = {r[0].split("/")[-1]: r[1:] for r in db.execute(
        "SELECT path, status, verdict, probability, attempts, error, frames_analysed FROM files")}
    assert set(rows) == {"a.mpg", "b.mpg", "crash.mpg", "text.mp4", "truncated.mp4"}  # the renamed copy is a.mpg
    assert rows["crash.mpg"][0] == "error" and rows["crash.mpg"][3] == 2 and "planted decoder crash" in rows["crash.mpg"][4]
    for bad in ("text.mp4", "truncated.mp4"):  # bad input is the same every time: recorded, not retried
        assert rows[bad][0] == "error" and rows[bad][3] == 1 and "not a readable media file" in rows[bad][4]
    assert db.execute("SELECT outcome, COUNT(*) FROM attempts GROUP BY outcome").fetchall() == [("done", 2), ("error", 4)]
    weights = str(detectors.WEIGHTS_DIR)
    for name in ("a.mpg", "b.mpg"):  # the same verdicts as `doppel detect` on the same files and step
        status, verdict, p, attempts, _, n_frames = rows[name]
        ref = detect_cli.analyse(folder / name, tmp_path, name, False, h.STEP, weights)
        assert status == "done" and attempts == 1 and verdict == ref["label"]
        assert p == pytest.approx(ref["probability"], abs=0.05)  # dlib's HOG differs slightly on a process's first frame
        assert db.execute("SELECT COUNT(*) FROM frames f JOIN files USING (hash) WHERE files.path LIKE ?",
                          (f"%/{name}",)).fetchone() == (n_frames,)
        label, mark, manifest = db.execute("SELECT label, watermark, c2pa FROM files WHERE path LIKE ?",
                                           (f"%/{name}",)).fetchone()
        assert label is None and manifest is None and json.loads(mark)["found"] is False  # a camera original

    capsys.readouterr()
    assert cli.main(["scan", str(folder), "--store", str(tmp_path / "r.sqlite"), "--step", str(h.STEP)]) == 0
    out = capsys.readouterr()
    assert "6 file(s), 5 distinct, 5 already in" in out.err and "0 to scan" in out.err
    assert json.loads(out.out.strip().splitlines()[-1])["done"] == 2
    assert db.execute("SELECT COUNT(*) FROM attempts").fetchone() == (6,)  # nothing ran again

    assert cli.main(["scan", "report", str(tmp_path / "r.sqlite"), "-o", str(tmp_path / "rep"),
                     "--where", "verdict IS NOT NULL"]) == 0
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == [
        "a.html", "a.json", "b.html", "b.json", "index.html", "summary.json"]
    assert json.loads((tmp_path / "rep" / "a.json").read_text())["verdict"]["label"] == rows["a.mpg"][1]


def test_a_doppel_marked_file_has_its_label_watermark_and_manifest_in_the_store(client, tmp_path, data_dir):
    """A file written by doppel's provenance writer (as swap/lipsync write theirs) goes through a real scan."""
    folder = tmp_path / "in"
    folder.mkdir()
    with provenance.video_writer(folder / "marked.mp4", 25, "face-swap", parent=h.clip(data_dir, 0)) as w:
        for fr in media.read_frames(h.clip(data_dir, 0))[:25]:  # 1 s: enough frames for the mark to vote
            w.write(fr.image)
    counts, db = scan(client, folder, tmp_path / "r.sqlite")
    assert counts == {"done": 1}
    verdict, p, label, mark, manifest = db.execute(
        "SELECT verdict, probability, label, watermark, c2pa FROM files").fetchone()
    label, mark, manifest = json.loads(label), json.loads(mark), json.loads(manifest)
    assert label["kind"] == "face-swap" and mark["found"] and mark["run_id"] == label["watermark"]["run_id"]
    assert manifest["state"] == "valid"
    assert (verdict, p) == ("FAKE", 1.0)  # provenance evidence forces FAKE
    assert db.execute("SELECT COUNT(*) FROM files WHERE json_extract(watermark, '$.found')").fetchone() == (1,)
