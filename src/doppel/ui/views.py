"""The pages: one function per tab (a form and what exists), and each job kind's result view."""
from __future__ import annotations

from pathlib import Path

from ..filetypes import is_image_path
from . import jobs as J
from . import pages as P
from .pages import esc


def home(h) -> None:
    body = ("<p>Make and check face-swap and lip-sync media on this machine. Nothing leaves it: files stay under "
            f"the work folder <code>{esc(h.app.root)}</code>, and the pages load nothing from the internet.</p><ul>"
            "<li><a href=/detect>Detect</a>: is a video or image manipulated, where and why.</li>"
            "<li><a href=/extract>Face sets</a>: extract the faces of one person from videos or photos.</li>"
            "<li><a href=/train>Train</a>: learn a swap model from two face sets (runs in the background).</li>"
            "<li><a href=/swap>Swap</a> and <a href=/lipsync>Lip sync</a>: make a labelled synthetic video.</li></ul>"
            f"<h2>Recent jobs</h2>{P.job_table(h.app.queue.all()[:10])}")
    h.page("doppel", body, "/")


def detect(h) -> None:
    fields = ('<label for=media>Videos or images</label><input type=file id=media name=media multiple '
              'accept="video/*,image/*">'
              '<label for=step>Analyse every N-th frame</label><input type=number id=step name=step value=3 min=1>'
              '<label for=reference>Reference photos or a video of the person the files claim to show '
              '(optional: the identity check)</label><input type=file id=reference name=reference multiple '
              'accept="video/*,image/*">')
    h.page("Detect", "<p>Each file gets a verdict (FAKE, UNCERTAIN or REAL), the reasons, the score over time, "
           "the most suspicious faces with heatmaps, what the label, watermark and C2PA manifest say, "
           "and a full report. With reference photos, each face's distance to that person is shown too.</p>"
           + P.upload_form("/detect", h.app.cap, fields, "Analyse"), "/detect")


def extract(h) -> None:
    rows = "".join(f"<tr><td>{esc(n)}</td></tr>" for n in h.app.facesets()) or "<tr><td class=note>none yet</td></tr>"
    fields = ('<label for=media>Videos or photos of one person</label><input type=file id=media name=media multiple '
              'accept="video/*,image/*"><label for=name>Face set name (new, or an existing one to extend)</label>'
              '<input id=name name=name placeholder="e.g. alice">'
              '<label for=every>Read every N-th video frame</label><input type=number id=every name=every value=1 min=1>'
              '<label for=reference>Reference photo (optional: keep only this person)</label>'
              '<input type=file id=reference name=reference accept="image/*">'
              '<label><input type=checkbox name=detector value=cnn> CNN face detector (slower, better on turned faces)'
              "</label>")
    h.page("Face sets", P.upload_form("/extract", h.app.cap, fields, "Extract")
           + f"<h2>Face sets here</h2><table>{rows}</table>", "/extract")


def train(h) -> None:
    sets = h.app.facesets()
    if len(sets) < 2:
        return h.page("Train", "<p>Training needs two face sets; make them on the <a href=/extract>Face sets</a> "
                      f"tab first (found {len(sets)}).</p>", "/train")
    models = "".join(f"<option>{esc(m)}</option>" for m in h.app.models())
    fields = (f'<label for=faceset_a>Face set A (the face to replace)</label>{P.select("faceset_a", sets, "")}'
              f'<label for=faceset_b>Face set B (the face drawn in)</label>{P.select("faceset_b", sets[1:] + sets[:1], "")}'
              '<label for=model>Model name (an existing one continues with "resume")</label>'
              f'<input id=model name=model list=models><datalist id=models>{models}</datalist>'
              '<label><input type=checkbox name=resume checked> resume the model if it exists</label>'
              '<label for=steps>Train until step</label><input type=number id=steps name=steps value=1000 min=1>'
              '<label for=batch>Faces per person per step</label><input type=number id=batch name=batch value=16 min=1>'
              '<label for=preview_every>Preview every N steps</label>'
              '<input type=number id=preview_every name=preview_every value=50 min=1>'
              '<label for=save_every>Save every N steps</label><input type=number id=save_every name=save_every value=100 min=1>')
    h.page("Train", P.upload_form("/train", h.app.cap, fields, "Start training")
           + "<p class=note>Training runs in the background; the job page shows previews and the loss as it goes, "
           "and Stop saves a checkpoint you can resume.</p>", "/train")


def swap(h) -> None:
    fields = (f'<label for=model>Swap model</label>{P.select("model", h.app.models(), "No model yet: train one first.")}'
              '<label for=media>Video or photo of person A</label><input type=file id=media name=media '
              'accept="video/*,image/*"><label for=to>Draw the face of</label><select id=to name=to>'
              '<option value=b>person B</option><option value=a>person A (reconstruction)</option></select>'
              '<label for=max_frames>Only the first N frames (blank: all)</label>'
              '<input type=number id=max_frames name=max_frames min=1>')
    h.page("Swap", P.upload_form("/swap", h.app.cap, fields, "Swap"), "/swap")


def lipsync(h) -> None:
    models, own = h.app.lip_models(), h.app.root / "lipsync"
    bundled = {n: f"{n} (bundled with doppel)" for n, p in models.items() if p.parent != own}
    fields = (f'<label for=model>Lip-sync model</label>'
              f'{P.select("model", list(models), "No model: put a LIPMODEL made by doppel lipsync train in " + str(own), bundled)}'
              f'<p class=note>Your own models: copy a file made by <code>doppel lipsync train</code> into {esc(own)}.</p>'
              '<label for=video>Video of the speaker</label><input type=file id=video name=video accept="video/*">'
              '<label for=audio>Speech (audio or video file)</label><input type=file id=audio name=audio '
              'accept="audio/*,video/*"><label for=texture>Mouth texture</label><select id=texture name=texture>'
              "<option>median</option><option>autoencoder</option></select>")
    h.page("Lip sync", P.upload_form("/lipsync", h.app.cap, fields, "Lip sync"), "/lipsync")


def job_list(h) -> None:
    h.page("Jobs", P.job_table(h.app.queue.all()), "/jobs")


# ---- a job's result

def job_body(app, job: dict) -> str:
    out = app.queue.folder(job["id"]) / "out"

    def url(name: str) -> str:
        return P.file_url(app.root, out / name)
    return VIEWS.get(job["kind"], lambda *a: "")(app, job, out, url)


def _detect(app, job, out, url) -> str:
    res = job.get("result") or J.read_json(out / "files.json") or {}
    files = res.get("files", [])
    left = len(job["params"]["files"]) - len(files)
    more = f"<p class=note>{left} more file(s) to analyse.</p>" if left and job["state"] not in J.FINISHED else ""
    return "".join(P.detect_file(d, url) for d in files) + more


def _extract(app, job, out, url) -> str:
    r = job.get("result")
    if not r:
        return ""
    return (f'<h2>Face set {esc(r["faceset"])}</h2><pre>{esc(r["summary"])}</pre>'
            f'<h3>Contact sheet: kept faces, then dropped ones by reason</h3><img class="sheet" src="{url(r["sheet"])}" '
            f'alt="contact sheet"><details><summary>Face set details</summary><pre>{esc(r["info"])}</pre></details>'
            "<p><a href=/train>Train a model with it</a></p>")


def _train(app, job, out, url) -> str:
    from .. import provenance
    model = Path(job["params"]["model"])
    previews = sorted((model / "previews").glob("step_*.png"))
    parts = [f"<h2>Model {esc(model.name)}</h2>"]
    if previews:
        last = previews[-1]
        parts.append(f"<h3>Latest preview ({esc(last.stem.replace('_', ' '))})</h3>"
                     + P.synthetic_badge(provenance.read_label(last), "preview")
                     + f'<img class="preview" src="{P.file_url(app.root, last)}" alt="training preview">'
                     "<p class=note>Rows: A, A rebuilt, A drawn as B; B, B rebuilt, B drawn as A.</p>")
    else:
        parts.append("<p class=note>The first preview appears after the first preview interval.</p>")
    parts.append(f'<h3>Loss</h3>{P.loss_svg(model / "log.jsonl")}')
    r = job.get("result")
    if r:
        parts.append(f'<p>Trained to step {r["step"]} ({r["steps_run"]} steps in {r["seconds"]} s). '
                     "<a href=/swap>Use it on the Swap tab</a>.</p>")
    if job["state"] == J.STOPPED and (model / "model.safetensors").is_file():
        parts.append("<p>The checkpoint was saved: start training again with the same model name and "
                     "&ldquo;resume&rdquo; to continue.</p>")
    return "".join(parts)


def _output(app, job, out, url) -> str:
    """A synthesized video or photo with its label, the preview strip, and the run's numbers."""
    from .. import provenance
    r = job.get("result")
    if not r:
        return ""
    path = out / r["output"]
    shown = (f'<img class="output" src="{url(r["output"])}" alt="output">' if is_image_path(path)
             else f'<video class="output" src="{url(r["output"])}" controls preload="metadata"></video>')
    parts = [P.synthetic_badge(provenance.read_label(path), "output"), shown,
             f'<p><a href="{url(r["output"])}" download>Download {esc(r["output"])}</a></p>']
    if (out / r.get("preview", "")).is_file():
        parts += ["<h3>Preview strip</h3>", P.synthetic_badge(provenance.read_label(out / r["preview"]), "preview"),
                  f'<img class="strip" src="{url(r["preview"])}" alt="preview strip">']
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in r.items() if k not in ("output", "preview"))
    return "".join(parts) + f"<table>{rows}</table>"


VIEWS = {"detect": _detect, "extract": _extract, "train": _train, "swap": _output, "lipsync": _output}
