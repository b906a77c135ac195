"""The HTTP server: standard-library http.server, one thread per request, pages rendered here.

Requests only read state and submit jobs; the work happens in the job queue's
worker process. Every response forbids loading anything from another origin
(Content-Security-Policy), files are served only from under the work folder,
and when bound to the loopback address only loopback Host names are answered
(a web page elsewhere cannot reach the app through DNS rebinding).
"""
from __future__ import annotations

import json
import logging
import mimetypes
import re
import shutil
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..filetypes import AUDIO_EXTS, IMAGE_EXTS, VIDEO_EXTS
from . import jobs as J
from . import pages as P
from . import views
from .upload import UploadError, read_form, safe_name

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SPEECH_EXTS = AUDIO_EXTS | VIDEO_EXTS  # speech comes from a sound file or a video's sound track
SEND_CHUNK = 1 << 16
DRAIN_BYTES, DRAIN_WAIT_S = 1 << 20, 0.5  # of a refused body, read and dropped before answering
# lipsync.model.BUNDLED, spelled out here because importing that module imports torch (seconds, on every page)
LIP_BUNDLED = Path(__file__).resolve().parents[1] / "lipsync" / "weights"


@dataclass(frozen=True)
class UIConfig:
    workdir: Path  # every upload, job, face set and model lives under this folder
    host: str = "127.0.0.1"  # address to bind; anything but loopback shows a warning on every page
    port: int = 7860  # TCP port (0: any free port)
    max_upload_mb: int = 1024  # largest request body accepted, in MiB


class App:
    """What the request handlers share: the settings, the folders and the job queue."""

    def __init__(self, cfg: UIConfig, worker: list[str] | None = None):
        self.cfg = cfg
        self.root = Path(cfg.workdir).resolve()
        for sub in ("jobs", "facesets", "models", "lipsync"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.queue = J.JobQueue(self.root, worker)
        self.cap = cfg.max_upload_mb << 20
        self.remote = None if cfg.host in LOOPBACK else cfg.host

    def facesets(self) -> list[str]:
        return sorted(p.name for p in (self.root / "facesets").iterdir() if (p / "alignments.json").is_file())

    def models(self) -> list[str]:
        return sorted(p.name for p in (self.root / "models").iterdir() if (p / "model.safetensors").is_file())

    def lip_models(self) -> dict[str, Path]:
        """Lip-sync models by the name the form shows: files in WORKDIR/lipsync, then the bundled ones by stem
        (the name `doppel lipsync -m` takes); a work-folder file of the same name wins."""
        found = {p.name: p for p in sorted((self.root / "lipsync").iterdir()) if p.is_file() and not p.name.startswith(".")}
        for p in sorted(LIP_BUNDLED.glob("*.lip")):
            found.setdefault(p.stem, p)
        return found

    def under(self, rel: str) -> Path | None:
        """The file `rel` names under the work folder, or None (outside it, hidden, or missing)."""
        parts = [p for p in rel.split("/") if p]
        if not parts or any(p.startswith(".") for p in parts):
            return None
        path = (self.root / Path(*parts)).resolve()
        return path if path.is_file() and path.is_relative_to(self.root) else None


def make_server(cfg: UIConfig, worker: list[str] | None = None) -> ThreadingHTTPServer:
    """A bound server (not yet serving) whose `.app` holds the queue; call app.queue.start() to run jobs."""
    server = ThreadingHTTPServer((cfg.host, cfg.port), Handler)
    server.daemon_threads = True
    server.app = App(cfg, worker)
    return server


class Handler(BaseHTTPRequestHandler):
    server_version = "doppel-ui"
    protocol_version = "HTTP/1.1"

    @property
    def app(self) -> App:
        return self.server.app

    def log_message(self, fmt, *args) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    # ---- responses
    def send(self, status: int, body: bytes | str, ctype: str = "text/html; charset=utf-8", headers=None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self._common_headers(headers)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _common_headers(self, headers=None) -> None:
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)

    def page(self, title: str, body: str, active: str = "", status: int = 200, refresh: int | None = None) -> None:
        self.send(status, P.layout(title, body, active, refresh, self.app.remote))

    def fail(self, status: int, text: str, back: str = "/") -> None:
        self.page(HTTPStatus(status).phrase, P.message(HTTPStatus(status).phrase, text, back), status=status)

    def redirect(self, where: str) -> None:
        self.send_response(303)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self._common_headers()
        self.end_headers()

    # ---- dispatch
    def _allowed(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if not self.app.remote and host not in LOOPBACK:
            self.close_connection = True
            self.fail(403, f"this app answers only on localhost, not on host {host!r}")
            return False
        origin = self.headers.get("Origin")
        if self.command == "POST" and origin and origin != "null" and urlsplit(origin).netloc != self.headers.get("Host"):
            self.close_connection = True
            self.fail(403, f"a form from another site ({origin}) may not start jobs here")
            return False
        return True

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._allowed():
            return
        path = unquote(urlsplit(self.path).path)
        try:
            if path.startswith("/files/"):
                return self.serve_file(path[len("/files/"):])
            m = re.fullmatch(r"/jobs/([^/]+)(/status\.json|/loss\.svg)?", path)
            if m:
                return self.job(m.group(1), m.group(2))
            handler = GET_PAGES.get(path)
            if handler is None:
                return self.fail(404, f"no page {path}")
            handler(self)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # noqa: BLE001 - one broken page must not take the server's answer away
            log.exception("GET %s failed", path)
            self.close_connection = True
            self.fail(500, f"this page broke ({e.__class__.__name__}: {e}); the server keeps running")

    def do_POST(self) -> None:
        if not self._allowed():
            return
        path = urlsplit(self.path).path
        m = re.fullmatch(r"/jobs/([^/]+)/stop", path)
        if m:
            return self.stop(m.group(1))
        handler = POST_FORMS.get(path)
        if handler is None:
            self.close_connection = True
            return self.fail(404, f"nothing to post to at {path}")
        self.submit(path, handler)

    def handle_expect_100(self) -> bool:
        """Refuse an oversized upload before the client sends it (curl and others ask first)."""
        try:
            too_big = int(self.headers.get("Content-Length") or 0) > self.app.cap
        except ValueError:
            too_big = False
        if too_big:
            self.close_connection = True
            self.fail(413, f"the upload is over the limit of {self.app.cap >> 20} MB")
            return False
        return super().handle_expect_100()

    # ---- jobs
    def submit(self, path: str, handler) -> None:
        """Read the upload into a new job folder, let `handler` check it and submit; errors undo it all."""
        try:
            length = int(self.headers.get("Content-Length") or "x")
        except ValueError:
            self.close_connection = True
            return self.fail(411, "the upload must say its length (Content-Length)", path)
        if length > self.app.cap:
            self.close_connection = True  # the body is never read (past a little, so the answer is not lost to a reset)
            self._drain(min(length, DRAIN_BYTES))
            return self.fail(413, f"the upload is {length / 2**20:.0f} MB; the limit is {self.app.cap >> 20} MB "
                                  "(start doppel ui with a larger --max-upload-mb)", path)
        job_id, folder = self.app.queue.new_folder()
        try:
            form = read_form(self.rfile, length, self.headers.get("Content-Type", ""), folder / "in")
            kind, title, params = handler(self.app, form)
            self.app.queue.submit(job_id, kind, title, params)
        except UploadError as e:
            shutil.rmtree(folder, ignore_errors=True)
            self.close_connection = True  # the rest of the body, if any, is not read
            return self.fail(e.status, str(e), path)
        except Exception as e:  # noqa: BLE001 - a bug in a form check: say so, keep serving, keep nothing
            log.exception("POST %s failed", path)
            shutil.rmtree(folder, ignore_errors=True)
            self.close_connection = True
            return self.fail(500, f"the form could not be handled ({e.__class__.__name__}: {e})", path)
        self.redirect(f"/jobs/{job_id}")

    def _drain(self, n: int) -> None:
        self.connection.settimeout(DRAIN_WAIT_S)
        try:
            while n > 0 and (chunk := self.rfile.read1(min(SEND_CHUNK, n))):
                n -= len(chunk)
        except OSError:
            pass

    def stop(self, job_id: str) -> None:
        try:
            self.app.queue.stop(job_id)
        except KeyError:
            return self.fail(404, f"no job {job_id}")
        self.redirect(f"/jobs/{job_id}")

    def job(self, job_id: str, what: str | None) -> None:
        try:
            job = self.app.queue.get(job_id)
        except KeyError:
            return self.fail(404, f"no job {job_id}", "/jobs")
        if what == "/status.json":
            return self.send(200, json.dumps(job), "application/json")
        if what == "/loss.svg":
            return self.send(200, P.loss_svg(Path(job["params"].get("model", "")) / "log.jsonl"), "image/svg+xml")
        body = P.job_header(job, J.log_tail(self.app.queue.folder(job_id) / "log.txt")) + views.job_body(self.app, job)
        self.page(job["title"], body, "/jobs", refresh=2 if job["state"] not in J.FINISHED else None)

    # ---- files
    def serve_file(self, rel: str) -> None:
        path = self.app.under(rel)
        if path is None:
            return self.fail(404, "no such file under the work folder")
        size = path.stat().st_size
        start, end = 0, size - 1
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if m and (m.group(1) or m.group(2)):  # a video element seeking
            if m.group(1):
                start, end = int(m.group(1)), min(int(m.group(2) or end), end)
            else:
                start = max(0, size - int(m.group(2)))
            if start > end:
                return self.send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self.send_response(206 if m and (m.group(1) or m.group(2)) else 200)
        self.send_header("Content-Type", ctype + ("; charset=utf-8" if ctype.startswith("text/") else ""))
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        if m and (m.group(1) or m.group(2)):
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self._common_headers()
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0 and (chunk := f.read(min(SEND_CHUNK, left))):
                self.wfile.write(chunk)
                left -= len(chunk)


# ---- form checks: (app, form) -> (kind, title, params); UploadError for bad input

def _files(form, field: str, exts: set[str], what: str, one: bool = False) -> list[Path]:
    files = form.files.get(field, [])
    if form.empty and not files:
        raise UploadError(f"the uploaded file is empty: {', '.join(form.empty)}")
    if not files:
        raise UploadError(f"choose {what}")
    bad = [p.name for p in files if p.suffix.lower() not in exts]
    if bad:
        raise UploadError(f"not {what}: {', '.join(bad)} (accepted: {' '.join(sorted(exts))})")
    if one and len(files) > 1:
        raise UploadError(f"choose one file for {what}")
    return files


def _int(form, name: str, default: int, lo: int, hi: int) -> int:
    raw = form.fields.get(name, "").strip() or str(default)
    try:
        v = int(raw)
    except ValueError:
        raise UploadError(f"{name} must be a whole number, got {raw!r}") from None
    if not lo <= v <= hi:
        raise UploadError(f"{name} must be between {lo} and {hi}, got {v}")
    return v


def _pick(form, name: str, choices: list[str], what: str) -> str:
    v = form.fields.get(name, "")
    if v not in choices:
        raise UploadError(f"choose {what}" + (f" (no {v!r} here)" if v else ""))
    return v


def form_detect(app: App, form) -> tuple[str, str, dict]:
    files = _files(form, "media", VIDEO_EXTS | IMAGE_EXTS, "a video or image")
    refs = form.files.get("reference") or []
    bad = [p.name for p in refs if p.suffix.lower() not in VIDEO_EXTS | IMAGE_EXTS]
    if bad:
        raise UploadError(f"a reference must be a photo or a video, not {bad[0]}")
    return "detect", "Detect: " + ", ".join(p.name for p in files), {
        "files": [str(p) for p in files], "step": _int(form, "step", 3, 1, 1000),
        "reference": [str(p) for p in refs]}


def form_extract(app: App, form) -> tuple[str, str, dict]:
    files = _files(form, "media", VIDEO_EXTS | IMAGE_EXTS, "videos or photos")
    name = safe_name(form.fields.get("name", "").strip() or files[0].stem)
    ref = form.files.get("reference")
    if ref and ref[0].suffix.lower() not in IMAGE_EXTS:
        raise UploadError(f"the reference must be a photo, not {ref[0].name}")
    return "extract", f"Extract into face set {name}", {
        "files": [str(p) for p in files], "faceset": str(app.root / "facesets" / name),
        "every": _int(form, "every", 1, 1, 1000), "reference": str(ref[0]) if ref else None,
        "detector": "cnn" if form.fields.get("detector") == "cnn" else "hog"}


def form_train(app: App, form) -> tuple[str, str, dict]:
    sets = app.facesets()
    a, b = _pick(form, "faceset_a", sets, "face set A"), _pick(form, "faceset_b", sets, "face set B")
    if a == b:
        raise UploadError("face sets A and B must be two different people")
    name = safe_name(form.fields.get("model", "").strip() or f"{a}_to_{b}")
    return "train", f"Train model {name} ({a} -> {b})", {
        "faceset_a": str(app.root / "facesets" / a), "faceset_b": str(app.root / "facesets" / b),
        "model": str(app.root / "models" / name), "steps": _int(form, "steps", 1000, 1, 10 ** 7),
        "batch": _int(form, "batch", 16, 1, 256), "preview_every": _int(form, "preview_every", 50, 1, 10 ** 6),
        "save_every": _int(form, "save_every", 100, 1, 10 ** 6),
        "resume": form.fields.get("resume") == "on" and (app.root / "models" / name / "model.safetensors").is_file()}


def form_swap(app: App, form) -> tuple[str, str, dict]:
    model = _pick(form, "model", app.models(), "a swap model")
    src = _files(form, "media", VIDEO_EXTS | IMAGE_EXTS, "a video or photo of person A", one=True)[0]
    max_frames = form.fields.get("max_frames", "").strip()
    return "swap", f"Swap {src.name} with {model}", {
        "input": str(src), "model": str(app.root / "models" / model), "to": "a" if form.fields.get("to") == "a" else "b",
        "max_frames": _int(form, "max_frames", 0, 1, 10 ** 7) if max_frames else None}


def form_lipsync(app: App, form) -> tuple[str, str, dict]:
    models = app.lip_models()
    model = _pick(form, "model", list(models), "a lip-sync model")
    video = _files(form, "video", VIDEO_EXTS, "a video of the speaker", one=True)[0]
    speech = _files(form, "audio", SPEECH_EXTS, "the speech audio", one=True)[0]
    return "lipsync", f"Lip sync {video.name} to {speech.name}", {
        "video": str(video), "audio": str(speech), "model": str(models[model]),
        "texture": "autoencoder" if form.fields.get("texture") == "autoencoder" else "median"}


POST_FORMS = {"/detect": form_detect, "/extract": form_extract, "/train": form_train, "/swap": form_swap,
              "/lipsync": form_lipsync}


GET_PAGES = {"/": views.home, "/detect": views.detect, "/extract": views.extract, "/train": views.train,
             "/swap": views.swap, "/lipsync": views.lipsync, "/jobs": views.job_list}
