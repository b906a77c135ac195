"""Server-rendered HTML: plain pages, inline CSS, one tiny inline script, nothing fetched from elsewhere."""
from __future__ import annotations

import html
import json
import time
from pathlib import Path
from urllib.parse import quote

from . import jobs as J

TABS = [("/detect", "Detect"), ("/extract", "Face sets"), ("/train", "Train"), ("/swap", "Swap"),
        ("/lipsync", "Lip sync"), ("/jobs", "Jobs")]
BAND = {"FAKE": "#c62828", "UNCERTAIN": "#b26a00", "REAL": "#2e7d32"}
STATE = {J.QUEUED: "#666", J.RUNNING: "#1565c0", J.DONE: "#2e7d32", J.FAILED: "#c62828", J.STOPPED: "#6d4c41"}

CSS = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:0 auto;padding:0 1em 3em;color:#222;line-height:1.4}
nav{display:flex;gap:.2em;flex-wrap:wrap;border-bottom:2px solid #ddd;margin-bottom:1em;padding-top:.6em}
nav a{padding:.45em .9em;text-decoration:none;color:#124;border-radius:6px 6px 0 0}
nav a.on{background:#124;color:#fff} nav .brand{font-weight:bold;color:#000;margin-right:1em}
.badge{display:inline-block;color:#fff;padding:.15em .6em;border-radius:4px;font-weight:bold}
.verdict{font-size:1.5em;padding:.3em .8em}
.synthetic{background:#6a1b9a;color:#fff;padding:.5em .8em;border-radius:6px;margin:.4em 0;font-weight:bold}
.warn{background:#fdecea;border:1px solid #c62828;padding:.6em .9em;border-radius:6px;white-space:pre-wrap}
.remote{background:#c62828;color:#fff;padding:.5em 1em;font-weight:bold}
.note{color:#555;font-size:.92em} pre{background:#f4f4f4;padding:.6em;overflow:auto;font-size:.85em}
form{background:#f7f7f9;padding:1em;border-radius:8px} label{display:block;margin:.6em 0 .2em;font-weight:600}
input[type=number]{width:7em} button{display:block;font-size:1em;padding:.45em 1.2em;margin-top:.9em}
table{border-collapse:collapse} td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:left}
figure{display:inline-block;margin:.3em} figcaption{font-size:.8em} img,video{max-width:100%}
.file{border:1px solid #ddd;border-radius:8px;padding:.8em 1em;margin:1em 0}"""

# refuses an upload over the cap before sending it (the server refuses it too)
SIZE_CHECK = """<script>
for (const f of document.querySelectorAll('form[data-cap]')) f.addEventListener('submit', e => {
  let total = 0;
  for (const i of f.querySelectorAll('input[type=file]')) for (const x of i.files) total += x.size;
  if (total > +f.dataset.cap) { e.preventDefault(); const m = f.querySelector('.msg'); m.style.display = 'block';
    m.textContent = 'These files are ' + (total / 1048576).toFixed(0) +
      ' MB; the limit is ' + (f.dataset.cap / 1048576).toFixed(0) + ' MB (doppel ui --max-upload-mb).'; }
});
</script>"""


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def file_url(workdir: Path, path: Path) -> str:
    return "/files/" + quote(str(Path(path).resolve().relative_to(workdir.resolve())))


def layout(title: str, body: str, active: str = "", refresh: int | None = None, remote: str | None = None) -> str:
    tabs = "".join(f'<a href="{h}"{" class=on" if h == active else ""}>{esc(t)}</a>' for h, t in TABS)
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    banner = (f'<div class="remote">This app is reachable from other machines ({esc(remote)}). It has no login: '
              "anyone who can reach it can upload files and run jobs.</div>") if remote else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{meta}<title>{esc(title)} · doppel</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
            f'{banner}<nav><a class="brand" href="/">doppel</a>{tabs}</nav><h1>{esc(title)}</h1>{body}'
            f"{SIZE_CHECK}</body></html>")


def message(title: str, text: str, back: str = "/") -> str:
    return f'<p class="warn">{esc(text)}</p><p><a href="{esc(back)}">Back</a></p>'


def upload_form(action: str, cap: int, fields: str, button: str) -> str:
    return (f'<form method="post" action="{action}" enctype="multipart/form-data" data-cap="{cap}">{fields}'
            f'<p class="msg warn" style="display:none"></p><button type="submit">{esc(button)}</button>'
            f'<p class="note">Up to {cap >> 20} MB per upload. Files stay on this machine, under the work folder.</p>'
            "</form>")


def select(name: str, options: list[str], empty: str, shown: dict[str, str] | None = None) -> str:
    """A drop-down of `options` (each shown as `shown[option]` when given), or the note `empty` when there are none."""
    if not options:
        return f'<p class="note">{esc(empty)}</p>'
    shown = shown or {}
    return (f'<select name="{name}" id="{name}">' + "".join(
        f'<option value="{esc(o)}">{esc(shown[o])}</option>' if o in shown else f"<option>{esc(o)}</option>"
        for o in options) + "</select>")


def job_table(jobs: list[dict]) -> str:
    if not jobs:
        return "<p class=note>No jobs yet.</p>"
    rows = "".join(f'<tr><td><a href="/jobs/{j["id"]}">{esc(j["title"])}</a></td><td>{state_badge(j["state"])}</td>'
                   f'<td>{when(j["created"])}</td></tr>' for j in jobs)
    return f"<table><tr><th>job</th><th>state</th><th>submitted</th></tr>{rows}</table>"


def state_badge(state: str) -> str:
    return f'<span class="badge state" style="background:{STATE.get(state, "#666")}">{esc(state)}</span>'


def when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def job_header(job: dict, log_tail: str) -> str:
    """State, times, progress, the Stop button, the error, the log."""
    parts = [f'<p>{state_badge(job["state"])} submitted {when(job["created"])}, started {when(job["started"])}, '
             f'finished {when(job["finished"])}</p>']
    if job["state"] in (J.QUEUED, J.RUNNING):
        wait = "stopping (saving first)..." if job.get("stop_requested") else job.get("progress") or "waiting for its turn"
        parts.append(f'<p><b>Progress:</b> <code class="progress">{esc(wait)}</code></p>'
                     f'<form method="post" action="/jobs/{job["id"]}/stop" style="padding:.3em">'
                     '<button type="submit">Stop</button></form> <span class=note>This page refreshes itself; '
                     "closing it does not stop the job.</span>")
    if job.get("error"):
        title = "Stopped" if job["state"] == J.STOPPED else "Error"  # a stop the user asked for is no error
        parts.append(f'<h2>{title}</h2><p class="warn error">{esc(job["error"])}</p>')
    parts.append(f"<details><summary>Log</summary><pre>{esc(log_tail)}</pre></details>")
    return "".join(parts)


def synthetic_badge(label: dict | None, what: str) -> str:
    """The label read back from an output file, shown beside it."""
    if label:
        return (f'<div class="synthetic">SYNTHETIC: this {esc(what)} was made by doppel ({esc(label.get("kind"))}); '
                "the synthetic-media label is embedded in the file.</div>")
    return f'<div class="warn">This {esc(what)} carries no doppel synthetic label (it should; treat it as synthetic).</div>'


def detect_file(d: dict, url) -> str:
    """One analysed file: verdict, reasons, label finding, score plot, suspicious faces, report link."""
    if "error" in d:
        return f'<div class="file"><h2>{esc(d["file"])}</h2><p class="warn error">Could not analyse: {esc(d["error"])}</p></div>'
    prob = "n/a" if d["probability"] is None else f'{100 * d["probability"]:.0f}%'
    lab = d.get("label")
    label = (f'<p><b>Label:</b> doppel synthetic-media label found (kind {esc(lab.get("kind"))}, '
             f'{esc(lab.get("tool", ""))}, {esc(lab.get("created", ""))}): doppel made this file.</p>' if lab else
             "<p><b>Label:</b> no doppel synthetic label in the file (a missing label is no evidence of a real video).</p>")
    label += provenance_lines(d.get("provenance")) + identity_line(d.get("identity"))
    plot = f'<h3>Scores over time</h3><img src="{url(d["plot"])}" alt="scores over time">' if d.get("plot") else ""
    faces = "".join(f'<figure><img src="{url(f["image"])}" alt="face"><figcaption>frame {f["frame"]}, face {f["face"]}: '
                    f'fused logit {f["score"]:+.2f}</figcaption></figure>' for f in d["faces"])
    faces = ("<h3>Most suspicious faces</h3><p class=note>Each pair: the aligned face the CNN saw and where it looked "
             f"(red = most weight).</p>{faces}") if faces else ""
    reasons = "".join(f"<li>{esc(r)}</li>" for r in d["reasons"])
    colour = BAND.get(d["verdict"], "#555")
    return (f'<div class="file"><h2>{esc(d["file"])}</h2><p><span class="badge verdict" style="background:{colour}">'
            f'{esc(d["verdict"])} · {prob}</span></p><p>{esc(d["summary"])}</p><h3>Why</h3><ul class="reasons">{reasons}'
            f'</ul>{label}{plot}{faces}<p><a href="{url(d["report"])}">Full report (HTML)</a></p></div>')


def identity_line(ident: dict | None) -> str:
    """The identity check against the reference photos, when there were any."""
    if not ident:
        return ""
    from ..detect import identity  # numpy and dlib only when a result has an identity check
    return f'<p class="identity"><b>Identity:</b> {esc(identity.sentence(ident))}.</p>'


def provenance_lines(prov: dict | None) -> str:
    """The watermark and C2PA manifest findings, one line each, in the words `doppel provenance check` uses."""
    if not prov:
        return ""
    from .. import provenance  # imported here: the server's pages should not pay for the media stack up front
    names = {"watermark": "Watermark", "c2pa": "C2PA manifest"}
    out = []
    for line in provenance.check_lines(prov)[1:]:  # the first is the label, which has its own line above
        key, text = line.split(": ", 1)
        out.append(f'<p class="prov {key}"><b>{names.get(key, key)}:</b> {esc(text)}</p>')
    return "".join(out)


def loss_svg(log_path: Path, width: int = 640, height: int = 220) -> str:
    """Loss A and B over steps from a training run's log.jsonl, as an inline SVG."""
    rows = []
    try:
        for line in log_path.read_text().splitlines():
            r = json.loads(line)
            if isinstance(r.get("loss_a"), (int, float)) and isinstance(r.get("loss_b"), (int, float)):
                rows.append((r["step"], r["loss_a"], r["loss_b"]))
    except (OSError, ValueError):
        pass
    if len(rows) < 2:
        return "<p class=note>The loss plot appears after the first logged steps.</p>"
    s0, s1 = rows[0][0], max(rows[-1][0], rows[0][0] + 1)
    lo, hi = min(min(a, b) for _, a, b in rows), max(max(a, b) for _, a, b in rows)
    hi = hi if hi > lo else lo + 1e-6

    def line(k: int, colour: str) -> str:
        pts = " ".join(f"{40 + (r[0] - s0) / (s1 - s0) * (width - 50):.1f},{10 + (hi - r[k]) / (hi - lo) * (height - 40):.1f}"
                       for r in rows)
        return f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>'
    return (f'<svg class="loss" width="{width}" height="{height}" role="img" aria-label="loss plot">'
            f'<rect width="{width}" height="{height}" fill="#fafafa"/>{line(1, "#1565c0")}{line(2, "#c62828")}'
            f'<text x="40" y="{height - 8}" font-size="11">step {s0}</text>'
            f'<text x="{width - 90}" y="{height - 8}" font-size="11">step {rows[-1][0]}</text>'
            f'<text x="2" y="14" font-size="11">{hi:.4f}</text><text x="2" y="{height - 30}" font-size="11">{lo:.4f}</text>'
            f'<text x="{width - 200}" y="14" font-size="11" fill="#1565c0">loss A {rows[-1][1]:.4f}</text>'
            f'<text x="{width - 100}" y="14" font-size="11" fill="#c62828">loss B {rows[-1][2]:.4f}</text></svg>')
