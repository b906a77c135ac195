"""The typed result of one `doppel detect` scan: the verdict, the analysed frames and their faces.

scan.scan() returns a ScanResult; the reports, the CLI, the cluster worker and the web
app read its attributes. `to_json()` is the report JSON (docs/detect.md), key for key
and in the same order as the `.json` report; `from_json()` reads one back (the cluster
store keeps results as JSON and rebuilds reports from them).

Cue names are defined once, in cues.CUES: a face's cues stay a dict keyed by those
names rather than one field per cue. What other modules make stays their plain JSON
dicts inside the typed result: `video` (the file's size, rate and length), `config`
(the scan's step and face-finder settings), `label` (provenance.read_label), `models`
(the detectors' versions), `provenance` (provenance.check), `blinks` (scan.blinks) and
`identity` (identity.summarise) and `articulation` (articulation.summarise). Treat them as read-only; `to_json()` hands out copies.

Light on purpose (no torch, OpenCV or dlib), so anything may import it.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import DoppelError

if TYPE_CHECKING:
    import numpy as np


class Crop(NamedTuple):
    """A face kept for the report's thumbnails (not serialised): the CNN's aligned crop and its Grad-CAM."""
    frame: int  # frame index
    face: int  # face index within the frame
    score: float  # the face's fused logit
    image: np.ndarray  # (S, S, 3) uint8 RGB
    heatmap: np.ndarray  # (S, S) in [0, 1]


@dataclass(frozen=True)
class FaceScores:
    """The learned models' logits of one face (> 0 leans fake; None where not finite)."""
    cnn: float | None
    fourier: float | None
    fused: float | None  # the fusion of the CNN, the Fourier model and the cues
    mouth_cnn: float | None = None  # the mouth CNN's logit; None without one (then left out of the JSON)

    def to_json(self) -> dict:
        out = {"cnn": self.cnn, "fourier": self.fourier, "fused": self.fused}
        return out if self.mouth_cnn is None else {**out, "mouth_cnn": self.mouth_cnn}


@dataclass(frozen=True)
class FaceResult:
    """One face of an analysed frame."""
    face: int  # index within its frame
    box: tuple[float, ...]  # x0, y0, x1, y1 in pixels
    tracked: bool  # found by tracking from an earlier frame, not by the detector
    scores: FaceScores
    cues: Mapping[str, float | None]  # cues.CUES name -> value (None: not measurable on this face)
    identity: float | None = None  # distance to the --reference person; only on the frames checked

    def features(self) -> dict[str, float | None]:
        """The cues and the model logits by name (the fusion's inputs and its output)."""
        return {**self.cues, **self.scores.to_json()}

    def to_json(self) -> dict:
        out = {"face": self.face, "box": list(self.box), "tracked": self.tracked,
               "scores": self.scores.to_json(), "cues": dict(self.cues)}
        if self.identity is not None:
            out["identity"] = self.identity
        return out

    @classmethod
    def from_json(cls, d: dict) -> FaceResult:
        s = d["scores"]
        return cls(d["face"], tuple(d["box"]), d["tracked"], FaceScores(s["cnn"], s["fourier"], s["fused"], s.get("mouth_cnn")),
                   dict(d["cues"]), d.get("identity"))


@dataclass(frozen=True)
class FrameResult:
    """One analysed frame (every `step`-th) and its faces (none when no face was found)."""
    index: int
    time: float  # seconds
    faces: tuple[FaceResult, ...]

    def to_json(self) -> dict:
        return {"index": self.index, "time": self.time, "faces": [f.to_json() for f in self.faces]}

    @classmethod
    def from_json(cls, d: dict) -> FrameResult:
        return cls(d["index"], d["time"], tuple(FaceResult.from_json(f) for f in d["faces"]))


@dataclass(frozen=True)
class Component:
    """One model or cue of the fusion: its weight and its mean share of the fused logit."""
    name: str  # "cnn", "fourier", a cues.CUES name, or "constant"
    weight: float | None  # per standard deviation of the feature; None for the constant
    contribution: float  # logit

    def to_json(self) -> dict:
        return {"name": self.name, "weight": self.weight, "contribution": self.contribution}


@dataclass(frozen=True)
class Verdict:
    """The per-video call (docs/detect.md, "The verdict").

    The model fields (model_probability, model_label, components, fusion_cap) are set only when a face was
    scored, and `forced_by` only when provenance evidence forced FAKE; the JSON leaves out what is unset.
    """
    label: str  # FAKE, REAL, UNCERTAIN or scan.NO_FACE
    probability: float | None  # calibrated p(fake); 1.0 when forced
    score: float | None  # the video score (logit) the calibration maps
    reasons: tuple[str, ...]
    rule: str
    faces_analysed: int
    model_probability: float | None = None  # the models' own p, before any provenance evidence
    model_label: str | None = None
    components: tuple[Component, ...] = ()
    fusion_cap: float | None = None
    forced_by: str | None = None  # the provenance evidence, "; "-joined

    def to_json(self) -> dict:
        out = {"label": self.label, "probability": self.probability, "score": self.score,
               "reasons": list(self.reasons), "rule": self.rule, "faces_analysed": self.faces_analysed}
        if self.model_probability is not None:
            out.update(model_probability=self.model_probability, model_label=self.model_label,
                       components=[c.to_json() for c in self.components], fusion_cap=self.fusion_cap)
        if self.forced_by is not None:
            out["forced_by"] = self.forced_by
        return out

    @classmethod
    def from_json(cls, d: dict) -> Verdict:
        parts = tuple(Component(c["name"], c["weight"], c["contribution"]) for c in d.get("components", ()))
        return cls(d["label"], d["probability"], d["score"], tuple(d["reasons"]), d["rule"], d["faces_analysed"],
                   d.get("model_probability"), d.get("model_label"), parts, d.get("fusion_cap"), d.get("forced_by"))


@dataclass(frozen=True)
class ScanResult:
    """Everything one scan found; the fields in the order of the JSON report. `identity` is None (and absent
    from the JSON) without --reference; `crops` (the report's thumbnails) is not serialised."""
    file: str
    video: dict  # width, height, fps, frames, duration
    frames: tuple[FrameResult, ...]
    config: dict  # step, face_finder
    label: dict | None
    models: dict  # version, and the models' own facts
    provenance: dict  # label, watermark, c2pa, evidence
    verdict: Verdict
    identity: dict | None
    blinks: dict  # count, per_minute, note
    decoded_frames: int
    frames_without_face: int  # of the analysed frames
    truncated: bool  # decoding stopped well before the frame count the container claims
    elapsed_s: float
    articulation: dict | None = None  # articulation.summarise (None for an image)
    crops: tuple[Crop, ...] = field(default=(), compare=False, repr=False)

    def to_json(self) -> dict:
        """The JSON report: a fresh dict of plain JSON types (changing it leaves the result alone)."""
        c = copy.deepcopy  # the plain dicts: a caller's edits must not reach the frozen result
        out = {"file": self.file, "video": c(self.video), "frames": [f.to_json() for f in self.frames],
               "config": c(self.config), "label": c(self.label), "models": c(self.models),
               "provenance": c(self.provenance), "verdict": self.verdict.to_json()}
        if self.identity is not None:
            out["identity"] = c(self.identity)
        if self.articulation is not None:
            out["articulation"] = c(self.articulation)
        out.update(blinks=c(self.blinks), decoded_frames=self.decoded_frames,
                   frames_without_face=self.frames_without_face, truncated=self.truncated, elapsed_s=self.elapsed_s)
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any], crops: tuple[Crop, ...] = ()) -> ScanResult:
        """A result from its JSON report; DoppelError when a part is missing."""
        try:
            c = copy.deepcopy  # the caller keeps its dict
            return cls(d["file"], c(d["video"]), tuple(FrameResult.from_json(f) for f in d["frames"]),
                       c(d["config"]), c(d["label"]), c(d["models"]), c(d["provenance"]),
                       Verdict.from_json(d["verdict"]), c(d.get("identity")), c(d["blinks"]), d["decoded_frames"],
                       d["frames_without_face"], d["truncated"], d["elapsed_s"], c(d.get("articulation")),
                       tuple(crops))
        except (KeyError, TypeError) as e:
            raise DoppelError(f"not a doppel detect result: {e.__class__.__name__} {e}") from e
