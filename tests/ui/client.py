"""A tiny HTTP client for the tests: multipart uploads and page reads over a real socket."""
from __future__ import annotations

import http.client
import json
import re
import time
import uuid
from urllib.parse import urlsplit


def request(base: str, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    """(status, headers, body) of one request; redirects are not followed."""
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def get(base: str, path: str):
    status, headers, body = request(base, "GET", path)
    return status, headers, body.decode("utf-8", "replace") if "text" in headers.get("Content-Type", "") or \
        "json" in headers.get("Content-Type", "") or "svg" in headers.get("Content-Type", "") else body


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]], b: str | None = None) -> tuple[bytes, str]:
    """Body and Content-Type for text fields and (field, filename, bytes) files."""
    b = b or uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        parts.append(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for k, name, data in files:
        parts.append(f'--{b}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{b}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={b}"


def post(base: str, path: str, fields: dict[str, str] | None = None, files=()):
    body, ctype = multipart(fields or {}, list(files))
    status, headers, out = request(base, "POST", path, body, {"Content-Type": ctype})
    return status, headers, out.decode("utf-8", "replace")


def submit(base: str, path: str, fields=None, files=()) -> str:
    """Post a form that starts a job; returns the job id."""
    status, headers, body = post(base, path, fields, files)
    assert status == 303, (status, body[:2000])
    m = re.fullmatch(r"/jobs/([\w-]+)", headers["Location"])
    assert m, headers
    return m.group(1)


def wait(base: str, job_id: str, timeout: float = 120.0, until=lambda j: j["state"] in ("done", "failed", "stopped")):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        job = json.loads(get(base, f"/jobs/{job_id}/status.json")[2])
        if until(job):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s: {job.get('progress')}")
