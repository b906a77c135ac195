"""The model card of a trained detector folder (MODEL_CARD.md), from the metadata `detect train` keeps."""
from __future__ import annotations

import json
from pathlib import Path

from .. import media
from . import detectors, sbi
from .config import CHANGE_LEVEL


def write_card(folder: Path, det: detectors.Detectors, tolerance: float, blend: str) -> None:
    """MODEL_CARD.md beside the weights: data, parameters, validation, the command."""
    m = det.meta
    v = m["validation"]
    no_mouth = lambda k: k == "mouth_cnn" and det.mouth is None  # noqa: E731 (a row with nothing to say)
    aucs = "\n".join(f"| {k} | {a if a is not None else 'n/a'} |" for k, a in v["frame_auc"].items() if not no_mouth(k))
    seen = set(m["config"]["fakes_train"]) | {blend}
    kinds = "\n".join(f"| {k} | {'yes' if k in seen else '**no**'} | {r['faces']} | {r['frame_auc_cnn']} | "
                      f"{r['frame_auc_fused']} | {r['clip_auc_fused']} | {r['clip_mean_p']} | "
                      f"{r['clip_accuracy_at_0.5']} |" for k, r in v.get("by_kind", {}).items())
    fusion = "\n".join(f"| {n} | {c:+.3f} |" for n, c in zip(det.fusion.names, det.fusion.coef) if not no_mouth(n))
    sel = m["fusion_selection"]
    table = ", ".join(f"{k}: {x}" for k, x in sel["table"].items())
    # how the CNN was trained: a refit's (cnn_command) by its CNN's run, not by the refit's own settings
    trained = {**m["config"], **(m.get("cnn_trained_with", {}) if m.get("cnn_command") else {})}
    init = trained.get("init")
    start = ("the average (a uniform weight soup: weights and batch-norm statistics) of the CNNs of "
             + ", ".join(f"`{f}`" for f in init) if isinstance(init, list)
             else f"the CNN of `{init}`" if init else "dlib's face-recognition weights (`dlib_face_recognition_resnet_model_v1`, "
             "face-recognition-models; detect/dlibnet.py)" if m["config"]["cnn"].get("arch") == "dlib" else "random initialisation")
    corpus = {"train": 0, "fusion": 0, **m["data"].get("corpus_identities", {})}
    c = m["config"]["cnn"]
    arch = {"resnet": "a stride-2 stem and one residual block per stage (ResNet-style)",
            "dlib": "dlib's face-recognition ResNet without its last level (a 7x7 stride-2 stem, max-pool, then 3, 4, 3 "
                    "and 3 residual blocks; affine layers, no batch norm; a logit in place of its 128-d projection)"}.get(
        c.get("arch"), "conv-BN-ReLU stages with 2x max-pooling")
    history = "; ".join(f"{h['step']}: {h['loss']}, {h['val_auc']}" for h in m.get("cnn_history", []))
    refit = (f"\n  The CNN was trained by `{m['cnn_command']}`; the run above (`--max-steps 0`) kept it and refitted "
             "the Fourier model, the fusion and the calibration." if m.get("cnn_command") else "")
    if m.get("cnn_soup"):
        refit += "\n  The CNNs averaged (each: its folder, version, steps, best validation AUC and the command that trained it):" \
            + soup_text(m["cnn_soup"])
    jitter = m["config"].get("coverage_jitter") or 0
    cover = f"{100 * c['coverage']:g}% of the crop" + (f"; training crops at {100 * c['coverage']:g} +- {100 * jitter:g}%"
                                                      if jitter and not m.get("cnn_command") else "")
    share = m["config"].get("reenact_share") or 0
    reenact = (f"\nOf the CNN's blends of a face whose clip or person has other faces, {100 * share:g}% are reenactment "
               "blends\n(the person's own mouth or lower face from a frame at least 10 frames away, or another photo,\n"
               "aligned on the lower face and blended through a part mask); the fusion's and calibration's are not."
               if share and not m.get("cnn_command") else "")
    gen = m["config"].get("gen_share") or 0
    if gen and not m.get("cnn_command"):
        reenact += (f"\n{100 * gen:g}% of the other blends are generated blends: the face redrawn by one of a bank of "
                    "small autoencoders\n(simulate.py: transposed-convolution, nearest, bilinear and pixel-shuffle "
                    "upsampling, trained seconds each\nat the start of the run) pasted back through the same masks, "
                    f"{100 * sbi.GENERATED_WHOLE:g}% of them the whole redrawn crop.")
    seg = m["config"].get("seg_weight") or 0
    changes = ""
    if seg and not m.get("cnn_command"):
        changes = (f"\nThe CNN also learnt where each blend changed the face (loss weight {seg:g}): a 1x1 convolution on its "
                    "last\nfeature map, trained on the share of each cell's pixels the blend moved by more than "
                    f"{CHANGE_LEVEL} grey levels\n(Face X-ray's localisation target; faces of fake videos have no mask). "
                    "That head was for training only: it is not shipped.")
    if m.get("cnn_trained_coverage") not in (None, c["coverage"]):
        cover += f"; the CNN was trained on crops at {100 * m['cnn_trained_coverage']:g}%"
    if m.get("cnn_soup") and not m["cnn_steps"]:  # a soup refitted as it is: nothing was trained
        training = (f"Not trained further (`--max-steps 0`): the CNN is {start}. Its AUC on {m['val_faces']} corpus "
                    f"identities of the fusion part (never trained on), real against blends: {m['cnn_best_val_auc']}.")
    else:
        training = TRAINING.format(m=m, t=trained, start=start, history=history or "none")
    if c.get("flip"):
        training = "A face's score is the mean of the logits of its crop and its mirror image. " + training
    part = m["config"].get("part_share", sbi.PART_SHARE)  # weights made before the option: the default
    parts = f"{100 * (1 - part):g}% a face shape (hull,\ninner face or ellipse), {100 * part:g}% a part (lower face, or the mouth)"
    if part != sbi.PART_SHARE:
        parts += f" (the CNN's blends; the fusion's and calibration's: {100 * sbi.PART_SHARE:g}% a part)"
    if c.get("region") == "mouth":
        title, what = "CNN (mouth)", (f"a {c['size']}x{c['size']} RGB crop of the mouth (the face's alignment, "
                                      "centred on the outer lips; the face's")
    else:
        title, what = "Face CNN", f"a {c['size']}x{c['size']} aligned RGB face crop\n  ("
    mouth = ""
    if m.get("mouth_cnn"):
        r, mc = m["mouth_cnn"], det.mouth.cfg
        mouth = (f"\n- **Mouth CNN** (`mouth.safetensors`, the fusion's `mouth_cnn`): a {mc.size}x{mc.size} crop of the "
                 f"mouth at the face CNN's pixel scale (the face's landmark box = {100 * mc.coverage:g}% of the crop, "
                 f"centred on the outer lips), kept as it was trained: `{r['folder']}` (`{r['version']}`, "
                 f"{r['cnn_steps']} steps, best validation AUC {r['cnn_best_val_auc']}): `{r['command']}`.")
    if m.get("partner_cnn"):
        r, pc = m["partner_cnn"], det.partner.cfg
        params = sum(p.numel() for p in det.partner.parameters())
        mouth += (f"\n- **Partner CNN** (`partner.safetensors`): a second face CNN, {pc.arch}, {params} parameters, on a "
                  f"{pc.size}x{pc.size} face crop (landmark box = {100 * pc.coverage:g}% of the crop); a face's `cnn` "
                  "score is the mean of the two CNNs' logits. Kept as it was trained: "
                  f"`{r['folder']}` (`{r['version']}`, {r['cnn_steps']} steps, best validation AUC "
                  f"{r['cnn_best_val_auc']}): `{r['command']}`. The report's heat maps are the face CNN's alone.")
    text = CARD.format(training=training, title=title, what=what, mouth=mouth, parts=parts, m=m, c=c, refit=refit, spread=round(1 - 2 * det.platt.floor, 4), top=round(1 - det.platt.floor, 4), cap=det.fusion.cap, arch=arch, cover=cover, history=history or "none",
                       d=m["data"], start=start, reenact=reenact + changes, corpus=corpus, v=v, aucs=aucs, kinds=kinds, fusion=fusion, platt=det.platt, sel=sel, table=table,
                       tol=tolerance,
                       cfg=json.dumps(m["config"], indent=1), size=_size(folder))
    with media.atomic_path(folder / "MODEL_CARD.md") as tmp:
        tmp.write_text(text)


def soup_text(parts: list[dict]) -> str:
    """The card's lines on the CNNs a soup averaged: version, best validation AUC and how each was trained."""
    return "".join(f"\n  - `{p['folder']}` (`{p['version']}`, {p['cnn_steps']} steps, best validation AUC "
                   f"{p['cnn_best_val_auc']}): `{p['command']}`" for p in parts)


def _size(folder: Path) -> str:
    return f"{sum(p.stat().st_size for p in folder.glob('*') if p.is_file()) / 1024:.0f} KiB"


TRAINING = """{m[cnn_steps]} Adam steps of
  {t[batch]} crops (half fake) in {m[cnn_seconds]} s, peak learning rate {t[lr]:g} (cosine),
  {t[threads]} torch threads; started from: {start}. Checkpointed and validated every
  {t[checkpoint_minutes]:g} minutes on {m[val_faces]} corpus identities of the fusion part (never
  trained on), real against blends; the weights kept are the best validated (step {m[cnn_best_step]},
  AUC {m[cnn_best_val_auc]}). Validation as it trained (step: training loss, AUC): {history}."""

CARD = """# doppel detect: model card

Version `{m[version]}`, made {m[created]} by

    {m[command]}

in {m[seconds]} s ({m[gather_seconds]} s of it finding faces), torch threads: {m[torch_threads]}.
Files: `cnn.safetensors` (CNN weights, config in its metadata; a second CNN's file is named below) and `models.json`
(CNN config, Fourier and fusion logistic regressions, Platt calibration, this
metadata); {size} in all, no pickle.

## Models
- **{title}**: {m[cnn_params]} parameters, {arch} on {what}landmark box = {cover}), widths {c[widths]}, one
  logit. {training}{refit}{mouth}
- **Fourier model**: logistic regression on the azimuthally averaged log power
  spectrum (32 radii) of the 64x64 grey inner-face crop.
- **Fusion**: logistic regression over standardised features (coefficients below),
  fitted on the fusion clips. Its feature set (CNN alone; CNN + mouth CNN, when there is one; CNN +
  Fourier; every cue) and L2 strength were chosen by leave-one-clip-out log-loss on those clips,
  simplest and most regularised first, a richer one kept only if it lowers the
  loss by {tol}: chosen **{sel[features]}**, C = {sel[c]:g} (CV log-loss {sel[cv_log_loss]}).
  The cues together can lower the CNN's share of the fused logit by at most {cap} (their
  negative shares are scaled down to fit), so they cannot cancel what the CNN sees.
- **Video rule**: frame score = the most suspicious face's fused logit; video score
  = mean of the more suspicious half of the frame scores (the top ceil(n/2)).
- **Calibration**: Platt scaling p = {platt.floor:g} + {spread:g} * sigmoid({platt.a:.3f} * score + {platt.b:.3f}) (p stays
  within [{platt.floor:g}, {top:g}]: the calibration clips hold only doppel's kinds of fake), fitted at
  the level it is applied: video scores (the rule above) of pseudo-clips of the
  calibration clips and of the fusion clips, these scored by a fusion fitted without the clip
  ({m[config][chunk]} analysed frames, every {m[config][heldout_every]}rd frame, start every
  {m[config][chunk_stride]}; real, or one kind of fake throughout), every kind of fake together and the two
  classes weighted alike, with Platt's smoothed targets and L2, so a few separable points cannot make
  it a step. Kinds of fake video outside `fakes_train` are seen by nothing before the calibration, so
  its probabilities also reflect a manipulation the models never saw.

## Data (`data/deepfake/` is never used)
- Training (CNN, Fourier): {d[train_faces]} faces: every LFW photo (up to {m[config][per_person]} a person),
  images/, and every {m[config][video_every]}nd frame (up to {m[config][video_limit]}) of each training clip; groups
  {d[train_groups]}; plus {corpus[train]} corpus identities of the train part (one photo each,
  corpus/lfw and corpus/utkface alternately; `dataset.corpus_part` splits them by identity).
- Fusion: {d[fusion_faces]} faces (with their previous frames; every {m[config][heldout_every]}rd frame, up to
  {m[config][heldout_limit]} a clip) from {d[fusion_groups]}; of these, {corpus[fusion]} are corpus
  photos of the fusion part (no previous frame, so no temporal cues), in 4 folds by identity.
- Calibration and validation: {d[calib_faces]} faces, the same way, from {d[calib_groups]}.
- Fake videos made by doppel (`--fakes`: `python scripts/make_detect_fakes.py --swap-model M
  --lip-model L -o DIR`; its docstring says how M and L were made), faces by part and kind:
  {d[fake_faces]}; kinds for the CNN and the fusion: {m[config][fakes_train]}
  ({m[config][fake_share]} of the CNN's fakes when any); clips {d[fake_groups]}.

Every fake in training, fusion and calibration is made by doppel from those real
faces: a doppel swap or lip-sync of the clip (above), or a self-blended image
(the face blended into a colour-, quality- and geometry-jittered copy of itself
through a deformed landmark mask) or, for 30%, a face-X-ray-style blend of
another real face aligned by landmarks. Mask shapes: {parts}; eroded or
dilated, feathered, blend ratio 0.5-1.{reenact}
Both classes get the same class-neutral degradations (`detect/augment.py`):
downscale-upscale (30%, x0.35-0.9), blur (15%), noise (15%), an H.264 re-encode
through PyAV (20%, CRF 20-38) and JPEG (45%, quality 30-96); in the fusion and
calibration data a frame and its previous frame get the same chain.

## Validation (calibration clips, never seen in training or fusion)
Frame-level AUC, real faces against doppel's own blends of the same faces (both
through the same random degradations):

| score | AUC |
|---|---|
{aucs}

Pseudo-clips ({v[pseudo_clips]}, overlapping, of the calibration clips, scored by the video rule):
AUC of the CNN alone {v[clip_auc][cnn]}, of the fusion {v[clip_auc][fused]}; accuracy at p = 0.5:
{v[clip_accuracy_at_0.5]}; share outside the UNCERTAIN band: {v[clip_decided_share]}; accuracy of those:
{v[clip_accuracy_when_decided]}; real pseudo-clips below p = 0.5: {v[real_clip_accuracy_at_0.5]}.
(The calibration was fitted on these same pseudo-clips.)

By kind of fake (each against all the real faces of the calibration clips; "seen" = used to
train the CNN and the fusion):

| kind | seen | faces | frame AUC, CNN | frame AUC, fused | pseudo-clip AUC | mean p | pseudo-clips at p >= 0.5 |
|---|---|---|---|---|---|---|---|
{kinds}

Fusion candidates, class-balanced log-loss on the fusion clips, each clip held out in turn
(and each kind of fake, when there are several: {sel[kinds_held_out]}):
{table}

## Fusion coefficients (per standardised feature; positive = evidence of a fake)
| feature | coefficient |
|---|---|
{fusion}

## Honest limits
- The calibration set holds only doppel's own fakes (blends, and swaps, GAN swaps
  and lip-syncs when `--fakes` was given) and real clips; the probabilities are
  calibrated for *those* kinds of fake. On other tools' manipulations (other face
  swap generators, reenactment, whole generated talking heads, diffusion) expect them to be
  over- or under-confident: read UNCERTAIN as "look yourself".
- Kinds the models never saw score near the real clips: see "By kind" above
  for the calibration clips' lip-syncs (mouth only, the clip's own texture).
  Subtle, local manipulations mostly go unnoticed; what the fusion flags is
  mainly blending and resolution loss over the whole face.
- Identities: 5 LFW people and ~20 clips, plus {corpus[train]} corpus identities (one photo
  each) for the CNN; the models are small and will miss well-made fakes. Run `benchmarks/detect_eval.py` on your own labelled
  videos before trusting a figure.

## Configuration
```
{cfg}
```
"""
