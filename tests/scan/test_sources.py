import hashlib

import pytest

from doppel.errors import DoppelError
from doppel.scan import sources
from doppel.scan.store import Store


def test_expand_folders_lists_and_globs(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/x.mp4", "a/y.MOV", "a/notes.md", "z.mkv"):
        (tmp_path / name).write_bytes(b"0")
    (tmp_path / "list.txt").write_text("path\nz.mkv\na/x.mp4\n")
    assert [p.name for p in sources.expand([str(tmp_path / "a")])] == ["x.mp4", "y.MOV"]
    assert [p.name for p in sources.expand([str(tmp_path / "list.txt")])] == ["z.mkv", "x.mp4"]
    got = sources.expand([str(tmp_path / "**" / "*.mp4"), str(tmp_path / "a" / "x.mp4")])
    assert [p.name for p in got] == ["x.mp4"]  # the same file twice is one
    with pytest.raises(DoppelError, match="no files match"):
        sources.expand([str(tmp_path / "*.avi")])


def test_renamed_copy_has_one_hash_and_hashes_are_cached(tmp_path, monkeypatch):
    (tmp_path / "a.mp4").write_bytes(b"video bytes")
    (tmp_path / "renamed.mp4").write_bytes(b"video bytes")
    (tmp_path / "other.mp4").write_bytes(b"other bytes")
    files = sources.expand([str(tmp_path)])
    with Store(tmp_path / "r.sqlite") as store:
        found, missing = sources.resolve(files + [tmp_path / "gone.mp4"], store, progress=False)
        assert len(found) == 3 and len(missing) == 1 and "gone.mp4" in missing[0]
        assert {s.digest for s in found} == {hashlib.sha256(b"video bytes").hexdigest(),
                                             hashlib.sha256(b"other bytes").hexdigest()}
        assert [s.path.endswith("a.mp4") for s in sources.distinct(found)].count(True) == 1
        assert len(sources.distinct(found)) == 2
        calls = []
        monkeypatch.setattr(sources, "content_hash", lambda p: calls.append(p) or "changed")
        (tmp_path / "other.mp4").write_bytes(b"other bytes, edited")
        again, _ = sources.resolve(files, store, progress=False)
        assert [c.endswith("other.mp4") for c in calls] == [True]  # only the changed file is read again
        assert {s.digest for s in again} == {hashlib.sha256(b"video bytes").hexdigest(), "changed"}
