"""Scan one video: per-face scores every few frames, then a calibrated per-video verdict.

The rule (also in docs/detect.md): every `step`-th frame, each face gets the
CNN logit, the Fourier logit and every cue; the fusion (a logistic regression
over those) gives the face's logit. A frame's score is its most suspicious
face's logit; the video's score is the mean of the more suspicious half of
its frame scores (the top ceil(n/2)), and Platt calibration,
fitted on scores made by this same rule on held-out pseudo-clips, turns it
into a probability. p >= fake_at is FAKE, p <= real_at
is REAL, anything between is UNCERTAIN. A doppel synthetic label in the file
forces FAKE; a video without any face is "no face found", never REAL.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import interrupt, media, provenance
from ..faces import finder
from . import articulation, cues, identity, detectors
from .config import ScanConfig  # noqa: F401 (re-exported)
from .result import Component, Crop, FaceResult, FrameResult, ScanResult, Verdict

log = logging.getLogger(__name__)

# the models' logits, then the cues (named once, in cues.CUES); mouth_cnn is NaN (no evidence) without a mouth CNN
FUSION_FEATURES = ["cnn", "fourier", *cues.FUSED, "mouth_cnn"]
SCORES = ("cnn", "fourier", "mouth_cnn", "fused")  # a face's model scores (the rest of its features are cues)
MODEL_NAMES = {"cnn": "face CNN", "fourier": "Fourier spectrum model", "mouth_cnn": "mouth CNN"}
NO_FACE = "no face found"


def face_scores(det: detectors.Detectors, frame: np.ndarray, landmarks: np.ndarray,
                prev: np.ndarray | None = None, prev_landmarks: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """Every cue and model score of one face, and its CNN crop."""
    feats, crop = face_features(det, frame, landmarks, prev, prev_landmarks)
    finish_scores(det, [feats], crop[None])
    return feats, crop


def face_features(det: detectors.Detectors, frame: np.ndarray, landmarks: np.ndarray,
                  prev: np.ndarray | None = None, prev_landmarks: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """Every cue and the Fourier logit of one face, and its CNN crop (finish_scores adds the CNN and the fusion);
    with a mouth or partner CNN, its crop waits in the features ("_mouth_crop", "_partner_crop") for finish_scores."""
    feats = cues.face_cues(frame, landmarks, prev, prev_landmarks)
    crop = detectors.cnn_crop(frame, landmarks, det.cnn.cfg)
    feats["fourier"] = float(det.fourier.logit(detectors.spectrum(frame, landmarks)[None])[0])
    if det.mouth is not None:
        feats["_mouth_crop"] = detectors.cnn_crop(frame, landmarks, det.mouth.cfg)
    if det.partner is not None and not det.shares_crop:
        feats["_partner_crop"] = detectors.cnn_crop(frame, landmarks, det.partner.cfg)
    return feats, crop


def finish_scores(det: detectors.Detectors, feats: list[dict], crops: np.ndarray) -> None:
    """Adds "cnn" (with a partner CNN, the mean of both face CNNs' logits), "mouth_cnn" (with a mouth CNN; the
    fusion reads a missing one as no evidence) and "fused" to each face's features (in place); each CNN scores its
    crops as one batch."""
    if det.mouth is not None and feats:
        for f, m in zip(feats, detectors.cnn_logits(det.mouth, np.stack([f.pop("_mouth_crop") for f in feats]))):
            f["mouth_cnn"] = float(m)
    partner = np.stack([f.pop("_partner_crop") for f in feats]) if feats and "_partner_crop" in feats[0] else None
    for f, logit in zip(feats, det.face_logits(crops, partner)):
        f["cnn"] = float(logit)
        f["fused"] = float(det.fusion.logit(feature_row(f, det.fusion.names))[0])


def feature_row(feats: dict, names: list[str] | None = None) -> np.ndarray:
    """(1, F) fusion input in the order of `names` (default FUSION_FEATURES; a fusion's own names for
    weights trained with another feature list)."""
    return np.array([[feats.get(k, np.nan) for k in (names or FUSION_FEATURES)]], np.float64)


BATCH = 16  # faces whose CNN crops are scored together (a batch costs ~20% less a face than one at a time)


def _analyse_frame(det, tracker, fr, prev, cfg, reference: np.ndarray | None = None) -> tuple[list[dict], list]:
    """The frame's face entries, their scores still to come: [(frame index, entry, features, CNN crop)]
    for _score_faces to finish."""
    faces = tracker(fr.image)[: cfg.max_faces]
    out, pending = [], []
    for i, face in enumerate(faces):
        prev_lm = finder.landmarks68(prev, face.box) if prev is not None else None
        feats, crop = face_features(det, fr.image, face.landmarks, prev, prev_lm)
        out.append({"face": i, "box": [round(float(v), 1) for v in face.box], "tracked": face.tracked,
                    "scores": None, "cues": None})
        pending.append((fr.index, out[-1], feats, crop))
    if reference is not None:
        identity.distances(fr.image, out, [f.landmarks for f in faces], reference)
    return out, pending


def _score_faces(det, pending: list) -> list:
    """Scores the pending faces (CNN in one batch) into their entries; their (frame, face, fused, crop)."""
    if not pending:
        return []
    feats = [p[2] for p in pending]
    finish_scores(det, feats, np.stack([p[3] for p in pending]))
    crops = []
    for (index, entry, _, crop), f in zip(pending, feats):
        entry["scores"] = {k: _num(f.pop(k)) for k in SCORES if k in f}  # mouth_cnn only with a mouth CNN
        entry["cues"] = {k: _num(v) for k, v in f.items()}
        crops.append((index, entry["face"], entry["scores"]["fused"], crop))
    return crops


def _num(v: float) -> float | None:
    return round(float(v), 4) if v is not None and np.isfinite(v) else None


def scan(path: str | Path, det: detectors.Detectors, cfg: ScanConfig = ScanConfig(), progress: bool = True,
         reference: dict | None = None) -> ScanResult:
    """Analyse one video (or image) file; raises MediaError for unreadable input.

    `reference` (identity.reference_embedding) adds each face's distance to the claimed person on about
    one analysed frame a second, and the result's `identity`; it does not change the verdict's probability.
    """
    t0 = time.monotonic()
    info = media.probe(path)
    tracker = finder.FaceTracker(cfg.detect)
    # the watermark is read from this scan's own decode (not a second pass over the file)
    marks = None if info.is_image and not Path(path).is_dir() else provenance.MarkReader(info)
    frames, crops, pending, prev, decoded = [], [], [], None, 0
    embed_every = max(1, round(identity.EVERY_S * (info.fps or 1) / cfg.step)) * cfg.step  # in frames
    bar = tqdm(total=info.frame_count or None, desc=Path(path).name, unit="f", disable=not progress, leave=False)

    def keep(c: list) -> list:  # the most suspicious faces (with their crops) for the report
        return sorted(crops + c, key=lambda t: -(t[2] if t[2] is not None else -1e9))[: cfg.keep_crops]

    def decoded_frames():  # run ahead in a second thread, reading the watermark as it goes
        for fr in media.iter_frames(path):
            if marks is not None and marks.wanted(fr.index):
                marks.add(fr.image)
            yield fr

    for fr in media.prefetch(decoded_frames()):
        interrupt.check()
        if fr.index % cfg.step == 0:
            ref = reference["mean"] if reference is not None and fr.index % embed_every == 0 else None
            faces, p = _analyse_frame(det, tracker, fr, prev, cfg, ref)
            frames.append({"index": fr.index, "time": round(fr.time, 3), "faces": faces})
            pending += p
            if len(pending) >= BATCH:
                crops, pending = keep(_score_faces(det, pending)), []
        prev = fr.image
        decoded += 1
        bar.update(1)
    crops = keep(_score_faces(det, pending))
    bar.close()
    frames = tuple(FrameResult.from_json(f) for f in frames)  # every face scored: freeze them
    label = provenance.read_label(path)
    # label, watermark, C2PA: read first, reported first
    prov = provenance.check(path, mark=marks.result() if marks is not None else None)
    call = verdict(frames, det, cfg, prov["evidence"])
    ident = identity.summarise(frames, reference) if reference is not None else None
    if ident is not None:
        call = dataclasses.replace(call, reasons=(*call.reasons, identity.sentence(ident)))
    speech = None if info.is_image else articulation.measure(path, frames)
    if speech is not None and speech["low"]:
        call = dataclasses.replace(call, reasons=(*call.reasons, articulation.sentence(speech)))
    return ScanResult(
        file=str(path), video=_info(info), frames=frames,
        config={"step": cfg.step, "face_finder": cfg.detect.record()}, label=label,
        models={"version": det.version, **det.meta.get("models", {})}, provenance=prov, verdict=call,
        identity=ident, blinks=blinks(frames, info.fps / cfg.step), decoded_frames=decoded,
        frames_without_face=sum(1 for f in frames if not f.faces),
        truncated=bool(info.frame_count and decoded < 0.9 * info.frame_count),
        elapsed_s=round(time.monotonic() - t0, 2), articulation=speech,
        crops=tuple(Crop(f, i, s, c, detectors.gradcam(det.cnn, c)) for f, i, s, c in crops))


def _info(info: media.VideoInfo) -> dict:
    return {"width": info.width, "height": info.height, "fps": round(info.fps, 3),
            "frames": info.frame_count, "duration": round(info.duration, 3)}


def top_faces(frames: Sequence[FrameResult]) -> list[tuple[FrameResult, FaceResult]]:
    """(frame, its most suspicious face) for every analysed frame with a face."""
    return [(fr, max(fr.faces, key=lambda f: f.scores.fused)) for fr in frames if fr.faces]


def frame_scores(frames: Sequence[FrameResult]) -> np.ndarray:
    """Per analysed frame with faces: the most suspicious face's fused logit."""
    return np.array([f.scores.fused for _, f in top_faces(frames)])


def band(p: float, cfg: ScanConfig = ScanConfig()) -> str:
    """The verdict band of a calibrated probability."""
    return "FAKE" if p >= cfg.fake_at else "REAL" if p <= cfg.real_at else "UNCERTAIN"


def video_score(scores: np.ndarray) -> float:
    """The per-video score: mean of the more suspicious half of the frame scores (the top ceil(n/2); a
    fixed share, so it does not grow with the video's length as a top-k mean would)."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    return float(s[: (len(s) + 1) // 2].mean())


def verdict(frames: Sequence[FrameResult], det: detectors.Detectors, cfg: ScanConfig,
            label: list[str] | None) -> Verdict:
    """REAL / FAKE / UNCERTAIN / no face found, the calibrated probability and the reasons.

    `label` lists the provenance evidence (provenance.check) that the file is synthetic.
    """
    rule = ("p = Platt(mean of the more suspicious half (top ceil(n/2)) of the frame scores; "
            "frame score = the most suspicious face's fused logit)")
    scores = frame_scores(frames)
    out = Verdict(NO_FACE, None, None, (), rule, int(sum(len(f.faces) for f in frames)))
    if scores.size:
        score = video_score(scores)
        p = float(det.platt.prob(score))
        called = band(p, cfg)
        contrib = _contributions(frames, det)  # once: both the reasons and the components table read it
        out = dataclasses.replace(out, score=round(score, 4), probability=round(p, 4), label=called,
                                  model_probability=round(p, 4), model_label=called,
                                  reasons=tuple(reasons(contrib, det, p > cfg.real_at)),
                                  components=components(contrib, det), fusion_cap=det.fusion.cap)
    if label:  # provenance evidence (label, watermark, manifest); its absence says nothing
        out = dataclasses.replace(out, reasons=(*label, *out.reasons), label="FAKE", probability=1.0,
                                  forced_by="; ".join(label))
    return out


def _contributions(frames: Sequence[FrameResult], det: detectors.Detectors) -> np.ndarray:
    """Each fusion feature's mean share of the fused logit (after the cap) over the faces the video score
    averages (video_score's more suspicious half), so the shares plus the constant sum to that score."""
    faces = sorted((f for _, f in top_faces(frames)), key=lambda f: -f.scores.fused)
    rows = [feature_row(f.features(), det.fusion.names)[0] for f in faces[: (len(faces) + 1) // 2]]
    return det.fusion.contributions(np.array(rows)).mean(0)  # None -> NaN -> no evidence


def components(contrib: np.ndarray, det: detectors.Detectors) -> tuple[Component, ...]:
    """Every model and cue of the fusion with its weight (per standard deviation) and its mean share of the
    fused logit (`contrib`, from _contributions) on the faces the verdict rests on, largest share first; then
    the fusion's constant."""
    out = [Component(n, round(float(w), 4), round(float(c), 4))
           for n, w, c in zip(det.fusion.names, det.fusion.coef, contrib)]
    out.sort(key=lambda r: -abs(r.contribution))
    return (*out, Component("constant", None, round(float(det.fusion.intercept), 4)))


def reasons(contrib: np.ndarray, det: detectors.Detectors, suspicious: bool, top: int = 3) -> list[str]:
    """The models and cues that pushed the verdict most (towards FAKE, or towards REAL); `contrib` from
    _contributions."""
    order = np.argsort(-contrib if suspicious else contrib)
    out = []
    for k in order[:top]:
        c = contrib[k]
        if (c > 0.1) if suspicious else (c < -0.1):
            name = det.fusion.names[k]
            side = "points to fake" if c > 0 else "points to real"
            what = "face CNNs (two, their logits averaged)" if name == "cnn" and det.partner is not None else \
                MODEL_NAMES.get(name) or cues.CUES[name]
            out.append(f"{name}: {what}: {side} ({c:+.2f} logit)")
    return out or ["no single model or cue stood out"]


def blinks(frames: Sequence[FrameResult], rate: float) -> dict:
    """Blink count and rate of the most prominent face (eye aspect ratio < 0.2)."""
    ear = [fr.faces[0].cues.get("eye_aspect_ratio") for fr in frames if fr.faces]
    ear = np.array([np.nan if e is None else e for e in ear])
    n = cues.count_blinks(ear)
    minutes = len(frames) / max(rate, 1e-6) / 60
    return {"count": n, "per_minute": round(n / minutes, 2) if minutes > 0 else None,
            "note": "sampled frames can miss short blinks; humans blink ~8-20 times a minute"}
