"""Reports of a scan: JSON (everything), a self-contained HTML page, an annotated video.

The HTML embeds its plots and thumbnails as base64 PNG, so the one file can be
mailed or archived. The annotated video is a derived, synthetic video and so
carries doppel's label, watermark and manifest (provenance.video_writer).
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure

from .. import media, provenance
from . import articulation, cues, identity, scan
from .result import FaceResult, ScanResult, Verdict

BAND_COLOURS = {"FAKE": (220, 40, 40), "UNCERTAIN": (230, 160, 0), "REAL": (40, 170, 60)}  # RGB


def write_json(result: ScanResult, path: str | Path) -> Path:
    """The scan's JSON (ScanResult.to_json), indented, written atomically."""
    with media.atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result.to_json(), indent=1, allow_nan=False))
    return Path(path)


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _image_png(rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", rgb[..., ::-1])
    return base64.b64encode(buf.tobytes()).decode()


def _series(result: ScanResult, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(times, values) of a cue or model logit of the most suspicious face per analysed frame."""
    tops = scan.top_faces(result.frames)
    v = [f.features().get(key) for _, f in tops]
    return np.array([fr.time for fr, _ in tops]), np.array([np.nan if x is None else x for x in v], np.float64)


def score_plot(result: ScanResult) -> str:
    """Fused, CNN, mouth CNN (when there is one) and Fourier logits over time (most suspicious face per frame),
    base64 PNG."""
    fig = Figure(figsize=(8, 2.6))
    ax = fig.add_subplot()
    for key in ("fused", "cnn", "mouth_cnn", "fourier"):
        t, v = _series(result, key)
        if not np.isfinite(v).any():
            continue
        ax.plot(t, v, label=key, lw=2 if key == "fused" else 1)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("logit (> 0 leans fake)")
    ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def cue_plots(result: ScanResult) -> str:
    """One small plot per cue over time, base64 PNG."""
    names = list(cues.CUES)
    fig = Figure(figsize=(9, 1.6 * ((len(names) + 2) // 3)))
    for k, name in enumerate(names):
        ax = fig.add_subplot((len(names) + 2) // 3, 3, k + 1)
        t, v = _series(result, name)
        ax.plot(t, v, lw=1)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    return _png(fig)


def identity_plot(ident: dict) -> str:
    """Distance to the reference person over time with dlib's same-person threshold, base64 PNG."""
    fig = Figure(figsize=(8, 2.2))
    ax = fig.add_subplot()
    t, d = np.array(ident["series"], np.float64).reshape(-1, 2).T
    ax.plot(t, d, "o-", ms=3, lw=1, label="nearest face")
    ax.axhline(ident["threshold"], color="red", lw=1, ls="--", label=f"same person below {ident['threshold']}")
    ax.set_ylim(0, max(1.0, float(np.nanmax(d, initial=0)) + 0.05))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("distance to reference")
    ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def _identity_section(result: ScanResult) -> str:
    ident = result.identity
    if not ident:
        return ""
    refs = html.escape(", ".join(ident["reference"]))
    plot = (f'<img src="data:image/png;base64,{identity_plot(ident)}" alt="identity">' if ident["series"] else "")
    return (f"<h2>Identity</h2><p>{html.escape(identity.sentence(ident))}. Reference: {refs} "
            f"({ident['reference_faces']} faces). A real video of someone else is far too: this says who, "
            f"not whether the video was manipulated.</p>{plot}")


def _speech_measured(result: ScanResult) -> bool:
    """Whether the articulation check had speech to look at (its summary is worth a sentence)."""
    a = result.articulation
    return bool(a) and (a["articulation"] is not None or a["speech_frames"] > 0)


def articulation_plot(a: dict) -> str:
    """Inner-lip opening over time, frames with speech marked, base64 PNG."""
    t, v, speech = (np.array(c) for c in zip(*a["series"]))
    speech = speech.astype(bool)
    fig = Figure(figsize=(9, 2.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(t, v, color="grey", lw=1, label="inner-lip opening")
    ax.scatter(t[speech], v[speech], s=8, color="tab:blue", label="frames with speech", zorder=3)
    if a["articulation"] is not None:  # the spread the check measures: 10th to 90th percentile in speech
        lo, hi = np.percentile(v[speech], [10, 90])
        ax.axhspan(lo, hi, color="tab:blue", alpha=0.12, label=f"10th-90th percentile in speech ({hi - lo:.3f})")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("opening / eye distance")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _articulation_section(result: ScanResult) -> str:
    a = result.articulation
    if not _speech_measured(result):
        return ""
    plot = f'<img src="data:image/png;base64,{articulation_plot(a)}" alt="articulation">' if a["series"] else ""
    how = f" {html.escape(a['note'])}." if a["articulation"] is not None else ""  # else the sentence is the note
    return (f"<h2>Mouth during speech</h2><p>{html.escape(articulation.sentence(a))}.{how} "
            "Lip-sync models tend to under-articulate; a person who mumbles, or a voice that is not the person on "
            f"screen, reads as low too, so this never changes the probability.</p>{plot}")


def overlay(crop: np.ndarray, heat: np.ndarray, size: int = 128) -> np.ndarray:
    """Crop (S, S, 3) uint8 with a heatmap (S, S) in [0, 1] blended on top, resized to `size`."""
    jet = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    mixed = (0.6 * crop + 0.4 * jet).astype(np.uint8)
    pair = np.concatenate([crop, mixed], 1)
    return cv2.resize(pair, (2 * size, size), interpolation=cv2.INTER_NEAREST)


# What a verdict short of FAKE can miss, as measured for a shipped version on its test fakes (people it
# never saw; docs/detect.md, "Known limits"). Weights without an entry get the general sentence.
BLIND_SPOTS = {
    "detect-b289b8ed95": ("What it can miss: in its held-out test (fakes of people it never saw) this version called 75% of "
                          "doppel's GAN-swap clips and 62% of its lip-sync clips REAL, and it calls the "
                          "FaceForensics++ sample fake (the same person's mouth redrawn) REAL; plain doppel "
                          "swaps were never called REAL"),
    "detect-955cedfdb8": ("What it can miss: in its held-out test (fakes of people it never saw) this version called 75% of "
                          "doppel's GAN-swap clips and 50% of its lip-sync clips REAL, and it calls the "
                          "FaceForensics++ sample fake (the same person's mouth redrawn) REAL; plain doppel "
                          "swaps were never called REAL"),
}
BLIND_SPOT_GENERAL = "What it can miss is measured per version in docs/detect.md, Known limits"


def blind_spots(version: str | None) -> str:
    """What a REAL or UNCERTAIN verdict of these weights cannot rule out, in a sentence."""
    return BLIND_SPOTS.get(version or "", BLIND_SPOT_GENERAL) + "."


def summary(result: ScanResult) -> str:
    """Plain-language verdict: what was found and why, in a few sentences."""
    v = result.verdict
    prov = result.provenance or {}
    parts = ["Provenance: " + " | ".join(provenance.check_lines(prov)) + "."] if prov else []
    if v.label == scan.NO_FACE and not prov.get("evidence") and not result.label:
        return " ".join(parts + ["No face was found in this video, so nothing could be judged."])
    if prov.get("evidence"):
        parts.append("This file carries doppel's synthetic-media signals (" + "; ".join(prov["evidence"])
                     + "), so it is FAKE.")
    elif result.label:
        parts.append("This file carries doppel's synthetic-media label: doppel made it, so it is FAKE.")
    if v.model_probability is not None:
        parts.append(f"Over {v.faces_analysed} analysed faces the detectors' calibrated chance of "
                     f"manipulation is {100 * v.model_probability:.0f}% ({_band_words(v.model_label)}).")
        parts.append("Main reasons: " + "; ".join(r for r in v.reasons if not r.startswith(("identity:", "articulation:")))
                     + ".")
        if v.model_label != "FAKE" and not prov.get("evidence") and not result.label:
            parts.append(blind_spots((result.models or {}).get("version")))
    if result.identity:
        line = identity.sentence(result.identity)
        parts.append(line[0].upper() + line[1:] + ".")
    if _speech_measured(result):
        line = articulation.sentence(result.articulation)
        parts.append(line[0].upper() + line[1:] + ".")
    if result.truncated:
        parts.append(f"The file ended early: {result.decoded_frames} of {result.video['frames']} frames "
                     "could be decoded (truncated or damaged?); only those were analysed.")
    b = result.blinks or {}
    if b.get("per_minute") is not None:
        parts.append(f"Blinks seen: {b['count']} ({b['per_minute']} per minute; {b['note']}).")
    parts.append("The probability is calibrated on doppel's own blended fakes; treat it as a pointer, not proof.")
    return " ".join(parts)


def _band_words(label: str) -> str:
    return {"FAKE": "likely manipulated", "REAL": "no sign of manipulation found",
            "UNCERTAIN": "uncertain: look at the plots and faces below"}.get(label, label)


def _thumbs(result: ScanResult) -> str:
    cells = []
    for frame, face, score, crop, heat in result.crops:
        cells.append(f'<figure><img src="data:image/png;base64,{_image_png(overlay(crop, heat))}" alt="face">'
                     f"<figcaption>frame {frame}, face {face}: fused logit {score:+.2f}</figcaption></figure>")
    return "\n".join(cells) or "<p>No faces.</p>"


def _components_table(v: Verdict) -> str:
    """Each model's and cue's weight in the fusion and its share of the score on the faces the verdict rests on."""
    if not v.components:
        return ""
    weight = lambda r: "" if r.weight is None else f"{r.weight:+.3f}"  # noqa: E731
    cells = "".join(f"<tr><td>{html.escape(r.name)}</td><td>{weight(r)}</td><td>{r.contribution:+.2f}</td></tr>"
                    for r in v.components)
    cap = (f" The cues together may lower the CNN's share by at most {v.fusion_cap:g}."
           if v.fusion_cap is not None else "")
    return ("<h2>How the score was made</h2><p><small>Fused logit = the sum of these shares (positive: evidence of "
            f"a fake), averaged over the faces the verdict rests on (the most suspicious half of the analysed "
            f"frames).{cap} Weight: per standard deviation of the feature.</small></p>"
            f"<table><tr><th>model or cue</th><th>weight</th><th>share of the logit</th></tr>{cells}</table>")


def write_html(result: ScanResult, path: str | Path) -> Path:
    """A self-contained HTML report (plots and thumbnails inline), written atomically."""
    v = result.verdict
    colour = "rgb({},{},{})".format(*BAND_COLOURS.get(v.label, (90, 90, 90)))
    has_faces = any(fr.faces for fr in result.frames)
    plots = (f'<h2>Scores over time</h2><img src="data:image/png;base64,{score_plot(result)}" alt="scores">'
             f'<h2>Cues over time</h2><img src="data:image/png;base64,{cue_plots(result)}" alt="cues">'
             if has_faces else "")
    cue_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(t)}</td></tr>" for k, t in cues.CUES.items())
    page = PAGE.format(
        name=html.escape(Path(result.file).name), colour=colour, label=html.escape(v.label),
        prob="n/a" if v.probability is None else f"{100 * v.probability:.0f}%",
        summary=html.escape(summary(result)), reasons="".join(f"<li>{html.escape(r)}</li>" for r in v.reasons),
        rule=html.escape(v.rule), components=_components_table(v), plots=plots + _identity_section(result) + _articulation_section(result),
        thumbs=_thumbs(result), cues=cue_rows,
        models=html.escape(json.dumps(result.models)), video=html.escape(json.dumps(result.video)))
    with media.atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(path)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>doppel detect: {name}</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}}
.verdict{{font-size:1.6em;color:white;background:{colour};padding:.4em .8em;border-radius:6px}}
figure{{display:inline-block;margin:.4em}} figcaption{{font-size:.8em}} td{{padding:2px 8px;font-size:.9em}}
</style></head><body>
<h1>doppel detect: {name}</h1>
<p class="verdict">{label} &middot; {prob}</p>
<p>{summary}</p>
<h2>Why</h2><ul>{reasons}</ul><p><small>Rule: {rule}</small></p>
{components}
{plots}
<h2>Most suspicious faces</h2>
<p>Each pair: the aligned face the CNN saw, and where it looked (Grad-CAM; red = most weight).</p>
{thumbs}
<h2>Cues</h2><table>{cues}</table>
<p><small>Models: {models}<br>Video: {video}</small></p>
</body></html>
"""


def _draw(image: np.ndarray, faces: tuple[FaceResult, ...], platt) -> np.ndarray:
    out = image.copy()
    for f in faces:
        p = float(platt.prob(f.scores.fused))
        colour = BAND_COLOURS[scan.band(p)]
        x0, y0, x1, y1 = (int(round(c)) for c in f.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 2)
        cv2.putText(out, f"fake {p:.2f}", (x0, max(12, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2)
    return out


def annotate(path: str | Path, result: ScanResult, out: str | Path, platt) -> Path:
    """The video with each face's box and per-face calibrated score drawn (labelled as synthetic)."""
    info = media.probe(path)
    analysed = {fr.index: fr.faces for fr in result.frames}
    faces: tuple[FaceResult, ...] = ()
    details = {"source": Path(path).name, "verdict": result.verdict.label}
    with provenance.video_writer(out, info.fps, "detect-annotation", details, parent=path, audio=path) as w:
        for fr in media.iter_frames(path):
            faces = analysed.get(fr.index, faces)  # boxes hold between analysed frames
            w.write(_draw(fr.image, faces, platt))
    return Path(out)


def write_index(results: list[dict], path: str | Path) -> Path:
    """One page for a batch: each file's verdict, probability and reasons, linked to its report."""
    colours = {"FAKE": "#c0392b", "REAL": "#27884b", "UNCERTAIN": "#e6a000"}
    rows = []
    for r in results:
        name = html.escape(Path(r["file"]).name)
        if "error" in r:
            rows.append(f"<tr><td>{name}</td><td>skipped</td><td></td><td>{html.escape(r['error'])}</td></tr>")
            continue
        p = "" if r["probability"] is None else f"{r['probability']:.0%}"
        colour = colours.get(r["label"], "#555")
        rows.append(f"<tr><td><a href='{html.escape(r['report'])}'>{name}</a></td>"
                    f"<td style='color:{colour};font-weight:bold'>{html.escape(r['label'])}</td><td>{p}</td>"
                    f"<td>{html.escape('; '.join(r['reasons'][:3]))}</td></tr>")
    page = ("<!doctype html><meta charset='utf-8'><title>doppel detect: summary</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}td,th{padding:4px 8px;"
            "border-bottom:1px solid #ddd;text-align:left;vertical-align:top}</style>"
            f"<h1>doppel detect: {len(results)} file(s)</h1><table><tr><th>file</th><th>verdict</th>"
            f"<th>p(fake)</th><th>main reasons</th></tr>{''.join(rows)}</table>"
            "<p>p(fake) is calibrated on doppel's own blended fakes: a pointer for a person to check, not proof.</p>")
    with media.atomic_path(path) as tmp:
        Path(tmp).write_text(page)
    return Path(path)
