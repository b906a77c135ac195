"""Uploads: a streaming multipart/form-data reader, safe file names, size caps.

The body is read in chunks straight to files under one staging folder, so a
large video never sits in memory; the server refuses a body over the cap from
its Content-Length before reading any of it.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

from ..errors import DoppelError

CHUNK = 1 << 16  # bytes read from the socket at a time
MAX_FIELD = 1 << 16  # longest text field accepted (bytes)
MAX_HEAD = 1 << 14  # longest header block of one part (bytes)
MAX_NAME = 120  # longest file name kept (characters)
_UNSAFE = re.compile(r"[^\w.-]+")  # letters of any script, digits, _ . - stay


class UploadError(DoppelError):
    """A request the server refuses; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)  # text fields (last value wins)
    files: dict[str, list[Path]] = field(default_factory=dict)  # field name -> saved files, in order
    empty: list[str] = field(default_factory=list)  # names of uploaded files that had no bytes


def safe_name(raw: str) -> str:
    """A file or folder name that cannot leave its folder; raises UploadError for a path-like name."""
    if not raw or "\x00" in raw or "/" in raw or "\\" in raw or raw.startswith("."):
        raise UploadError(f"name not accepted: {raw!r} (no folders, no leading dot)")
    name = _UNSAFE.sub("_", unicodedata.normalize("NFKC", raw)).strip("_")[:MAX_NAME]
    if not name or name.startswith("."):
        raise UploadError(f"name not accepted: {raw!r}")
    return name


def boundary_of(content_type: str) -> bytes:
    """The multipart boundary from a Content-Type header; UploadError for anything else."""
    m = re.match(r'multipart/form-data\s*;.*?boundary="?([^";]+)"?', content_type or "", re.I)
    if not m:
        raise UploadError(f"expected a multipart/form-data upload, got {content_type or 'no Content-Type'!r}")
    return m.group(1).encode("latin-1")


class _Reader:
    """Buffered reads of exactly `length` bytes of a socket file."""

    def __init__(self, f: BinaryIO, length: int):
        self.f, self.left, self.buf = f, length, b"\r\n"  # the leading CRLF makes every delimiter alike

    def _fill(self) -> None:
        if self.left <= 0:
            raise UploadError("malformed upload (ended inside a part)")
        chunk = self.f.read(min(CHUNK, self.left))
        if not chunk:
            raise UploadError("the upload ended early (connection closed)")
        self.left -= len(chunk)
        self.buf += chunk

    def take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def until(self, delim: bytes, sink: Callable[[bytes], None]) -> None:
        """Pass bytes to `sink` up to `delim`, and consume the delimiter."""
        keep = len(delim) - 1
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                sink(self.buf[:i])
                self.buf = self.buf[i + len(delim):]
                return
            if len(self.buf) > keep:
                sink(self.buf[:-keep])
                self.buf = self.buf[-keep:]
            self._fill()


def _capped(limit: int, what: str) -> tuple[bytearray, Callable[[bytes], None]]:
    store = bytearray()

    def sink(b: bytes) -> None:
        store.extend(b)
        if len(store) > limit:
            raise UploadError(f"{what} is too long (over {limit} bytes)")
    return store, sink


def _disposition(head: str) -> tuple[str, str | None]:
    line = next((h for h in head.split("\r\n") if h.lower().startswith("content-disposition:")), "")
    name = re.search(r'\bname="([^"]*)"', line)
    filename = re.search(r'\bfilename="([^"]*)"', line)
    if not name:
        raise UploadError("malformed upload (a part without a name)")
    return name.group(1), filename.group(1) if filename else None


def _free(folder: Path, name: str) -> Path:
    path, n = folder / name, 1
    while path.exists():
        n += 1
        stem, dot, ext = name.rpartition(".")
        path = folder / (f"{stem}-{n}.{ext}" if dot and stem else f"{name}-{n}")
    return path


def read_form(f: BinaryIO, length: int, content_type: str, staging: Path) -> Form:
    """Read a multipart body of `length` bytes; files go under `staging` (created), fields into memory."""
    delim = b"\r\n--" + boundary_of(content_type)
    r, form = _Reader(f, length), Form()
    r.until(delim, lambda b: None)  # preamble
    while (tail := r.take(2)) != b"--":
        if tail != b"\r\n":
            raise UploadError("malformed upload (bad boundary line)")
        head, sink = _capped(MAX_HEAD, "a part's header")
        r.until(b"\r\n\r\n", sink)
        name, filename = _disposition(head.decode("utf-8", "replace"))
        if filename is None:
            value, sink = _capped(MAX_FIELD, f"field {name!r}")
            r.until(delim, sink)
            form.fields[name] = value.decode("utf-8", "replace")
        elif filename == "":  # a file input left empty
            r.until(delim, lambda b: None)
        else:
            _save_part(r, delim, form, name, filename, staging)
    return form


def _save_part(r: _Reader, delim: bytes, form: Form, name: str, filename: str, staging: Path) -> None:
    staging.mkdir(parents=True, exist_ok=True)
    path = _free(staging, safe_name(filename))
    with open(path, "wb") as out:
        r.until(delim, out.write)
    if path.stat().st_size == 0:
        path.unlink()
        form.empty.append(filename)
        return
    form.files.setdefault(name, []).append(path)
