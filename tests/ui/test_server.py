"""doppel ui over real HTTP: uploads, jobs in the worker process, errors, limits, and the offline rule."""
from __future__ import annotations

import http.client
import json
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from doppel.ui.upload import UploadError, safe_name

from .client import get, post, request, submit, wait
from .conftest import start, stop

PAGES = ["/", "/detect", "/extract", "/train", "/swap", "/lipsync", "/jobs"]
# anything that would make a browser fetch from elsewhere: absolute or protocol-relative URLs in attributes or CSS
EXTERNAL = re.compile(r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""",
                      re.I)


def external_refs(html: str) -> list[str]:
    return EXTERNAL.findall(html)


def test_external_pattern_catches_cdn_links():
    assert external_refs('<script src="https://cdn.example.com/x.js"></script>')
    assert external_refs("<link href=//fonts.example.com/css>")
    assert external_refs("body{background:url('http://x/y.png')}")
    assert not external_refs('<img src="/files/jobs/x/out/a.png"><a href="/detect">')


def test_detect_a_real_clip_gives_a_verdict(ui, data_dir):
    base, server = ui
    clip = data_dir / "video" / "iplap_129.mp4"
    files = [("media", clip.name, clip.read_bytes()), ("media", "notes.mp4", b"a text file, not a video\n" * 20)]
    job = submit(base, "/detect", {"step": "16"}, files)
    done = wait(base, job, 150)
    assert done["state"] == "done", done["error"]
    status, headers, page = get(base, f"/jobs/{job}")
    assert status == 200
    broken = done["result"]["files"][1]  # the bad file is reported beside the good one's verdict
    assert broken["file"] == "notes.mp4" and "error" in broken
    assert re.search(r'class="warn error">Could not analyse: [^<]*\w', page.split("<h2>notes.mp4</h2>")[1])
    verdict = re.search(r'class="badge verdict"[^>]*>(FAKE|REAL|UNCERTAIN) · (\d+)%', page)
    assert verdict, page[:3000]
    f = done["result"]["files"][0]
    assert verdict.group(1) == f["verdict"] and int(verdict.group(2)) == round(100 * f["probability"])
    assert len(re.findall(r"<li>", page.split('class="reasons"')[1].split("</ul>")[0])) == len(f["reasons"]) >= 1
    assert "no doppel synthetic label" in page  # a real clip carries none
    links = re.findall(r'(?:src|href)="(/files/[^"]+)"', page)
    assert any(l.endswith(".scores.png") for l in links) and any(l.endswith(".html") for l in links)
    assert any(".face0.png" in l for l in links)
    for link in links:  # every image and the report are served, and the report is self-contained
        s, h, body = get(base, link)
        assert s == 200, link
        if link.endswith(".html"):
            assert "doppel detect: iplap_129.mp4" in body and not external_refs(body)
        if link.endswith(".png"):
            assert body[:8] == b"\x89PNG\r\n\x1a\n"
    assert not external_refs(page)


def test_a_failing_job_shows_its_error(ui):
    base, _ = ui
    job = submit(base, "/extract", {"name": "junk"}, [("media", "clip.mp4", b"this is text, not a video\n" * 40)])
    done = wait(base, job, 90)
    assert done["state"] == "failed" and "clip.mp4" in done["error"]
    page = get(base, f"/jobs/{job}")[2]
    assert 'class="warn error"' in page and "clip.mp4" in page
    assert 'http-equiv="refresh"' not in page  # a finished job's page stops polling: no spinner forever
    assert get(base, "/")[0] == 200  # and the server keeps serving


@pytest.mark.parametrize("name", ["../../evil.mp4", "..\\evil.mp4", "/etc/evil.mp4", ".hidden.mp4", "a/../b.mp4"])
def test_path_traversal_names_are_rejected(ui, name):
    base, server = ui
    before = sorted(p.relative_to(server.app.root) for p in server.app.root.rglob("*"))
    status, _, page = post(base, "/detect", {}, [("media", name, b"x" * 100)])
    assert status == 400 and "name not accepted" in page
    assert sorted(p.relative_to(server.app.root) for p in server.app.root.rglob("*")) == before
    assert not (server.app.root.parent / "evil.mp4").exists() and not Path("/etc/evil.mp4").exists()


def test_files_outside_the_work_folder_are_not_served(ui, tmp_path):
    base, server = ui
    (tmp_path / "secret.txt").write_text("secret")
    for path in ["/files/../secret.txt", "/files/%2e%2e/secret.txt", "/files//etc/passwd", "/files/jobs/../../secret.txt"]:
        status, _, body = request(base, "GET", path)
        assert status == 404 and b"secret" not in body, path


def test_safe_name_keeps_plain_names_and_cleans_odd_ones():
    assert safe_name("clip 1 (copy).mp4") == "clip_1_copy_.mp4"
    assert safe_name("Ünïcode.mp4") == "Ünïcode.mp4"
    for bad in ["", ".", "..", "../x", "x/y", "a\\b", "nul\x00.mp4"]:
        with pytest.raises(UploadError):
            safe_name(bad)


def test_size_cap_and_empty_upload(ui):
    base, server = ui  # cap: 4 MiB
    status, page = post_head_only(base, 2 << 30)  # a 2 GB upload: refused before its body is read
    assert status == 413 and "the limit is 4 MB" in page
    status, page = post_head_only(base, 5 << 20, expect=True)
    assert status == 413 and "over the limit of 4 MB" in page
    status, _, page = post(base, "/detect", {}, [("media", "empty.mp4", b"")])
    assert status == 400 and "empty" in page
    status, _, page = post(base, "/detect", {}, [])
    assert status == 400 and "choose a video or image" in page
    status, _, page = post(base, "/detect", {}, [("media", "notes.txt", b"hello")])
    assert status == 400 and "notes.txt" in page
    assert [p.name for p in (server.app.root / "jobs").iterdir()] == []  # nothing kept from refused uploads
    assert get(base, "/")[0] == 200


def post_head_only(base: str, length: int, expect: bool = False) -> tuple[int, str]:
    """Announce a body of `length` bytes, send its first 64 KiB, read the answer."""
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.putrequest("POST", "/detect")
        conn.putheader("Content-Type", "multipart/form-data; boundary=xyz")
        conn.putheader("Content-Length", str(length))
        if expect:
            conn.putheader("Expect", "100-continue")
        conn.endheaders()
        if not expect:
            conn.send(b"--xyz\r\n" + b"\0" * 65536)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def test_pages_load_nothing_from_elsewhere(ui):
    base, _ = ui
    for path in PAGES:
        status, headers, page = get(base, path)
        assert status == 200, path
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert not external_refs(page), (path, external_refs(page))
        assert "<nav>" in page


def test_foreign_host_and_cross_site_posts_are_refused(ui):
    base, _ = ui
    assert request(base, "GET", "/", headers={"Host": "evil.example:80"})[0] == 403
    status, _, _ = request(base, "POST", "/jobs/20260101-000000-abcdef/stop",
                           headers={"Origin": "http://evil.example", "Content-Length": "0"})
    assert status == 403


def test_a_remote_bind_warns_on_every_page(tmp_path):
    server = start(tmp_path / "w")
    server.app.remote = "0.0.0.0"  # as if bound to all interfaces; the socket itself stays on loopback
    try:
        page = get(f"http://127.0.0.1:{server.server_address[1]}", "/detect")[2]
        assert "reachable from other machines" in page
    finally:
        stop(server)


WORKER = """
import json, os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as doppel.ui.worker does
folder = sys.argv[1]
job = json.load(open(os.path.join(folder, "job.json")))
mode = job["params"]["mode"]
if mode == "crash":
    print("about to crash", flush=True)
    os._exit(3)
if mode == "stubborn":  # a worker whose Ctrl-C goes missing
    signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    for i in range(600):
        print(f"\\rstep {i}", end="", file=sys.stderr, flush=True)
        time.sleep(0.05)
except KeyboardInterrupt:
    json.dump({"state": "stopped", "error": "stopped on request", "result": None},
              open(os.path.join(folder, "result.json"), "w"))
"""


def test_queue_runs_one_at_a_time_stops_and_reports_a_crash(tmp_path):
    script = tmp_path / "fake_worker.py"
    script.write_text(WORKER)
    server = start(tmp_path / "w", worker=[sys.executable, str(script)])
    q = server.app.queue
    try:
        ids = []
        for mode in ("sleep", "crash"):
            job_id, _ = q.new_folder()
            q.submit(job_id, "test", mode, {"mode": mode})
            ids.append(job_id)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        wait(base, ids[0], 20, until=lambda j: j["state"] == "running" and j["progress"].startswith("step"))
        assert q.get(ids[1])["state"] == "queued"  # one at a time
        q.stop(ids[0])
        assert wait(base, ids[0], 20)["state"] == "stopped"
        crashed = wait(base, ids[1], 20)
        assert crashed["state"] == "failed" and "exited with code 3" in crashed["error"] and "about to crash" in crashed["error"]
    finally:
        stop(server)


def test_a_worker_that_ignores_stop_is_killed_and_shown_as_stopped_by_force(tmp_path, monkeypatch):
    from doppel.ui import jobs
    monkeypatch.setattr(jobs, "STOP_GRACE_S", 1.0)
    script = tmp_path / "fake_worker.py"
    script.write_text(WORKER)
    server = start(tmp_path / "w", worker=[sys.executable, str(script)])
    q = server.app.queue
    try:
        job_id, _ = q.new_folder()
        q.submit(job_id, "test", "stubborn", {"mode": "stubborn"})
        base = f"http://127.0.0.1:{server.server_address[1]}"
        wait(base, job_id, 20, until=lambda j: j["state"] == "running" and j["progress"].startswith("step"))
        q.stop(job_id)
        job = wait(base, job_id, 20)
        assert job["state"] == "stopped" and job["error"].startswith("stopped by force") and "step" in job["error"]
        assert job["pid"] is None and not jobs._alive(q.get(job_id)["pid"], job_id)
        page = get(base, f"/jobs/{job_id}")[2]
        assert "<h2>Stopped</h2>" in page and "stopped by force" in page and "<h2>Error</h2>" not in page
    finally:
        stop(server)


def test_loss_plot_follows_the_log(tmp_path):
    from doppel.ui.pages import loss_svg
    log = tmp_path / "log.jsonl"
    assert "appears after" in loss_svg(log)  # no log yet
    log.write_text("".join(json.dumps({"step": s, "loss_a": 1.0 / s, "loss_b": 2.0 / s}) + "\n" for s in (10, 20, 40)))
    svg = loss_svg(log, width=640, height=220)
    lines = re.findall(r'points="([^"]+)"', svg)
    assert len(lines) == 2 and "step 40" in svg and "loss B 0.0500" in svg
    pts = [[tuple(map(float, p.split(","))) for p in line.split()] for line in lines]
    assert [x for x, _ in pts[0]] == pytest.approx([40.0, 40 + 590 / 3, 630.0], abs=0.06)  # x: step 10..40 over the plot width
    assert pts[1][0][1] == 10.0 and pts[1][-1][1] > pts[0][0][1]  # B starts highest (2.0 at the top); both fall


def test_the_command_serves_and_stops_on_ctrl_c(tmp_path):
    import argparse
    import signal
    import subprocess

    from doppel.errors import DoppelError
    from doppel.ui import cli
    code = ("import argparse, sys; from doppel.ui import cli; p = argparse.ArgumentParser(); cli.add_arguments(p); "
            "sys.exit(cli.run(p.parse_args(sys.argv[1:])))")
    # started as a shell starts `doppel ui &`: SIGINT ignored, which the server must undo to stop on it
    proc = subprocess.Popen([sys.executable, "-c", code, "--port", "0", "--workdir", str(tmp_path / "w")],
                            stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, line
        assert get(url.group(0), "/")[0] == 200 and (tmp_path / "w" / "jobs").is_dir()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    with pytest.raises(DoppelError, match="--port"):
        cli.run(p.parse_args(["--port", "70000", "--workdir", str(tmp_path / "x")]))


def test_a_restarted_server_finds_running_and_dead_jobs(tmp_path):
    import subprocess

    from doppel.ui import jobs as J
    script = tmp_path / "fake_worker.py"
    script.write_text(WORKER)
    root = tmp_path / "w"
    q = J.JobQueue(root)  # what an earlier server left: one worker still running, one whose worker is gone
    alive_id, alive_dir = q.new_folder()
    q.submit(alive_id, "test", "still running", {"mode": "sleep"})
    proc = subprocess.Popen([sys.executable, str(script), str(alive_dir)], stderr=open(alive_dir / "log.txt", "wb"))
    q._update(alive_id, state=J.RUNNING, pid=proc.pid, started=1.0)
    dead_id, dead_dir = q.new_folder()
    q.submit(dead_id, "test", "worker gone", {"mode": "sleep"})
    (dead_dir / "log.txt").write_text("last words\n")
    q._update(dead_id, state=J.RUNNING, pid=2 ** 22 + 7, started=1.0)  # no such process

    server = start(root, worker=[sys.executable, str(script)])
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        dead = wait(base, dead_id, 10)
        assert dead["state"] == "failed" and "the worker is gone" in dead["error"] and "last words" in dead["error"]
        alive = wait(base, alive_id, 10, until=lambda j: j["progress"].startswith("step") or j["state"] != "running")
        assert alive["state"] == "running", (alive["error"], alive.get("pid"), proc.pid, (alive_dir / "log.txt").read_text()[-500:], proc.poll())
        assert request(base, "POST", f"/jobs/{alive_id}/stop", headers={"Content-Length": "0"})[0] == 303
        assert wait(base, alive_id, 20)["state"] == "stopped"
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        stop(server)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 16])
def test_multipart_reader_splits_exactly_at_any_chunk_size(tmp_path, monkeypatch, chunk):
    import io

    from doppel.ui import upload

    from .client import multipart
    monkeypatch.setattr(upload, "CHUNK", chunk)
    boundary = "b0undary"
    tricky = b"\r\n--" + boundary[:-1].encode() + b"\r\n\r\n--" + b"\0\r\n" * 50  # almost a delimiter, in a file
    body, ctype = multipart({"step": "5", "name": "x"}, [("media", "a.mp4", tricky), ("media", "a.mp4", b"second"),
                                                         ("reference", "", b"")], boundary)
    form = upload.read_form(io.BytesIO(body), len(body), ctype, tmp_path / "in")
    assert form.fields == {"step": "5", "name": "x"}
    assert [p.name for p in form.files["media"]] == ["a.mp4", "a-2.mp4"]  # same name twice: both kept
    assert form.files["media"][0].read_bytes() == tricky and form.files["media"][1].read_bytes() == b"second"
    assert "reference" not in form.files  # a file input left empty
    with pytest.raises(UploadError, match="ended early"):
        upload.read_form(io.BytesIO(body[:-20]), len(body), ctype, tmp_path / "in2")


def test_detect_shows_the_watermark_and_manifest_of_a_doppel_output(ui, data_dir, tmp_path):
    import numpy as np
    from PIL import Image

    from doppel import provenance
    base, _ = ui
    photo = sorted((data_dir / "faces" / "lfw" / "Colin_Powell").glob("*.jpg"))[0]
    marked = tmp_path / "swapped.png"  # labelled, watermarked and signed, as every swap output is
    provenance.write_labeled_image(marked, np.asarray(Image.open(photo).convert("RGB")), "face-swap", parent=photo)
    found = provenance.check(marked)
    assert found["watermark"]["found"] and found["c2pa"]["state"] == "valid"
    job = submit(base, "/detect", {"step": "1"}, [("media", marked.name, marked.read_bytes())])
    done = wait(base, job, 120)
    assert done["state"] == "done", done["error"]
    page = get(base, f"/jobs/{job}")[2]
    assert "<b>Label:</b> doppel synthetic-media label found (kind face-swap" in page
    mark = re.search(r'<p class="prov watermark"><b>Watermark:</b> ([^<]*)</p>', page)
    assert mark and mark.group(1).startswith("found, payload") and f"(run {found['watermark']['run_id']})" in mark.group(1)
    manifest = re.search(r'<p class="prov c2pa"><b>C2PA manifest:</b> ([^<]*)</p>', page)
    assert manifest and manifest.group(1).startswith("valid (signed and intact") and "compositeWithTrainedAlgorithmicMedia" \
        in manifest.group(1)


def test_a_clean_file_says_no_watermark_and_no_manifest():
    from doppel.ui.pages import provenance_lines
    prov = {"label": None, "watermark": {"found": False, "z": 1.23, "key": "tried default"}, "c2pa": None}
    html = provenance_lines(prov)
    assert '<b>Watermark:</b> none found (sync z 1.2' in html and "not evidence of a real file" in html
    assert '<b>C2PA manifest:</b> no manifest' in html
    assert provenance_lines(None) == ""  # a result from before provenance was read: no lines, no error


def test_the_lipsync_tab_offers_the_bundled_model(tmp_path):
    from doppel.lipsync import model
    from doppel.ui.server import LIP_BUNDLED
    assert LIP_BUNDLED == model.BUNDLED.resolve() and (LIP_BUNDLED / "grid_s1.lip").is_file()
    # a stand-in worker that does nothing: the test looks at what the form submitted, not at a lip sync
    server = start(tmp_path / "w", worker=[sys.executable, "-c", "pass"], max_upload_mb=4)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        page = get(base, "/lipsync")[2]
        assert '<option value="grid_s1">grid_s1 (bundled with doppel)</option>' in page
        (server.app.root / "lipsync" / "mine.lip").write_bytes(b"x")  # a model of your own is listed first, as is
        page = get(base, "/lipsync")[2]
        assert page.index("<option>mine.lip</option>") < page.index('<option value="grid_s1">')
        job = submit(base, "/lipsync", {"model": "grid_s1"}, [("video", "v.mp4", b"v" * 10), ("audio", "a.wav", b"a" * 10)])
        assert Path(server.app.queue.get(job)["params"]["model"]) == LIP_BUNDLED / "grid_s1.lip"
        assert model.resolve(server.app.queue.get(job)["params"]["model"]) == LIP_BUNDLED / "grid_s1.lip"
        assert wait(base, job, 20)["state"] == "failed"  # the stand-in wrote no result: closed, not left running
    finally:
        stop(server)


def test_browser_tests_fail_under_ci_and_skip_elsewhere_without_chromium(monkeypatch):
    from .test_browser import missing
    monkeypatch.setenv("CI", "true")  # .ci/run installs chromium and playwright: missing there is a broken setup
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        missing("/usr/bin/chromium")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="make test-browser installs it"):
        missing("/usr/bin/chromium")


def test_detect_with_reference_photos_shows_the_identity_check(ui, data_dir):
    base, _ = ui
    biden, obama = (data_dir / "images" / n for n in ("biden.jpg", "obama.jpg"))
    job = submit(base, "/detect", {"step": "1"}, [("media", biden.name, biden.read_bytes()),
                                                  ("reference", obama.name, obama.read_bytes())])
    done = wait(base, job, 120)
    assert done["state"] == "done", done["error"]
    ident = done["result"]["files"][0]["identity"]
    assert ident["reference"] == ["obama.jpg"] and ident["median"] > 0.6
    line = re.search(r'<p class="identity"><b>Identity:</b> ([^<]*)</p>', get(base, f"/jobs/{job}")[2])
    assert line and "NOT the same person" in line.group(1)
    # a reference that is not a photo or video is refused before any job starts
    status, _, page = post(base, "/detect", {"step": "1"}, [("media", biden.name, biden.read_bytes()),
                                                            ("reference", "notes.txt", b"not a photo")])
    assert status == 400 and "a reference must be a photo or a video, not notes.txt" in page


def test_a_worker_is_alive_from_the_moment_it_starts():
    """Right after Popen returns, /proc/PID/cmdline often reads empty (94 of 200 times here): a Stop or a
    restarted server must not take a starting worker for a dead one."""
    import subprocess

    from doppel.ui.jobs import _alive
    for i in range(20):
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)", f"job-{i}"])
        try:
            assert _alive(proc.pid, f"job-{i}") and not _alive(proc.pid, "another-job")
        finally:
            proc.kill()
            proc.wait()
        assert not _alive(proc.pid, f"job-{i}")
