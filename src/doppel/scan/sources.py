"""SOURCE arguments -> media files -> content hashes.

A SOURCE is a folder (its media files, recursively), a list file (.txt/.csv/.lst,
one path per line, as `doppel detect` reads them), a glob (`clips/**/*.mp4`, quoted
so the shell leaves it alone) or a file. Files are identified by the sha256 of
their bytes, so a renamed or copied file is recognised; the hash of a path is
cached in the store by (path, size, mtime) so a rerun reads each file again
only when it changed.
"""
from __future__ import annotations

import concurrent.futures as cf
import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DoppelError

GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Source:
    path: str  # absolute path, as workers will open it (a shared file system on a real cluster)
    size: int  # bytes
    digest: str  # sha256 of the content, hex


def expand(items: list[str]) -> list[Path]:
    """Media files named by folders, list files, globs or file names, in order, without duplicates."""
    from ..detect.cli import expand as expand_detect  # one reading of folders and list files
    out: list[Path] = []
    for item in items:
        if GLOB_CHARS & set(item) and not Path(item).exists():
            hits = sorted(glob.glob(item, recursive=True))
            if not hits:
                raise DoppelError(f"no files match {item!r}")
            out += expand_detect(hits)
        else:
            out += expand_detect([item])
    return list(dict.fromkeys(p.resolve() for p in out))


def content_hash(path: str | Path) -> str:
    """sha256 of the file's bytes, hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def resolve(files: list[Path], store, threads: int = 4, progress: bool = True) -> tuple[list[Source], list[str]]:
    """(sources with their hashes, one line per missing/unreadable path); hashes cached in `store`."""
    from tqdm import tqdm
    stats, missing = [], []
    for p in files:
        try:
            st = os.stat(p)
            stats.append((str(p), st.st_size, st.st_mtime_ns))
        except OSError as e:
            missing.append(f"{p}: {e.strerror or e}")
    cached = {s[0]: store.cached_hash(*s) for s in stats}
    todo = [s for s in stats if cached[s[0]] is None]
    fresh: list[tuple[str, int, int, str]] = []
    with cf.ThreadPoolExecutor(threads) as pool:  # hashlib releases the GIL: threads overlap the reads
        futs = {pool.submit(content_hash, s[0]): s for s in todo}
        for fut in tqdm(cf.as_completed(futs), total=len(futs), desc="hashing", unit="file",
                        disable=not progress or len(futs) < 2):
            s = futs[fut]
            try:
                fresh.append((*s, fut.result()))
            except OSError as e:
                missing.append(f"{s[0]}: {e.strerror or e}")
    store.remember_paths(fresh)
    cached.update({r[0]: r[3] for r in fresh})
    return [Source(p, size, cached[p]) for p, size, _ in stats if cached.get(p)], missing


def distinct(sources: list[Source]) -> list[Source]:
    """The first source of each content hash (a renamed copy is scanned once)."""
    seen: dict[str, Source] = {}
    for s in sources:
        seen.setdefault(s.digest, s)
    return list(seen.values())
