"""Compare detector weight folders on the same held-out faces and the same doppel blends.

Usage: python benchmarks/detect_heldout.py [WEIGHTS_DIR ...] [--limit N] [--corpus N] [--clips N]
       [--seed S] [--cache DIR] [--fakes DIR] [--mark-reals] [--bootstrap N] [--reenact]
Default: the shipped weights only. Three held-out sets, each face scored as it is
and as a fresh doppel blend (self-blended or X-ray, train.features), both through
the same random degradations, with one seed, so every folder sees identical inputs:
- calib: every 3rd frame (up to --limit) of the calibration clips (held out of CNN
  and fusion training, but they fitted every trained folder's Platt map);
- corpus: --corpus photos of corpus identities of the test part (dataset.corpus_part:
  never trained on, fused or calibrated by `detect train --corpus`), no temporal cues;
- clips: --clips frames (every 3rd) of each real clip of corpus/talking (MEAD and the
  two presenters: used by no `detect train`), with temporal cues.
With --reenact, the faces of the clip sets also get reenactment blends (kind "reenact": the face's own
mouth or lower face from another frame of its clip, what `detect train --reenact-share` trains on).
The blends, degradations and cues are drawn and measured once (`--samples DIR` keeps
them for later runs) and each folder's CNN, Fourier model and fusion score them.
Prints per set and folder the frame-level AUC of the CNN and of the fusion, the
pseudo-clip AUC (video rule) where there are clips, and for the clips the share of
real pseudo-clips the calibrated verdict calls FAKE (p >= 0.7); then the ratio of each
AUC to the first folder's (the baseline, measured in the same run). With --bootstrap N, each
folder's fused frame-AUC difference to the first, per kind, with a 95% interval over N
resamplings of whole clips: whether a difference is more than the few clips' noise.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from tqdm import tqdm

from doppel import media
from doppel.detect import augment, cues, dataset, detectors, scan, train
from doppel.faces import finder

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REENACT = "reenact"  # kind of the reenactment blends of --reenact


def calib_faces(limit: int, cache: str | None, clips: tuple[str, ...] = train.CALIB_CLIPS) -> list:
    """Faces (with previous frames) of every 3rd frame, up to `limit` a clip, of sample clips (by default the
    calibration clips of `detect train`)."""
    faces = []
    for clip in clips:
        path = next(DATA.glob(f"*/{clip}.mp4"))
        faces += dataset.cached(cache, {"clip": str(path.resolve()), "every": 3, "limit": limit},
                                lambda: dataset.faces_from_video(path, 3, limit))
    return faces


def test_clips(limit: int, cache: str | None) -> list:
    """Faces of the corpus's real talking clips: MEAD (3 speakers x 8 emotions) and two presenters."""
    faces = []
    for path in sorted((DATA / "corpus" / "talking").rglob("*.mp4")):
        faces += dataset.cached(cache, {"clip": str(path.resolve()), "every": 3, "limit": limit},
                                lambda: dataset.faces_from_video(path, 3, limit))
    return faces


def prepare(faces: list, seed: int, desc: str, fakes: list = (), mark: bool = False, reenact: bool = False) -> dict:
    """Every face as it is and as a fresh blend, degraded, landmarks refitted, cues measured: the
    inputs of train.features, drawn draw for draw as it draws them, but without any model, so the
    cues (most of the cost) are measured once for every folder. Returns arrays (npz-able).
    With `mark`, real faces and blends get doppel's watermark first (train.mark_alike), as doppel's
    fake videos have it: the mark is then in every sample and tells nothing about the class.
    With `reenact`, every face with another face of its clip far enough away (dataset.same_person)
    also gets a reenactment blend of kind "reenact" (sbi.reenact_blend), drawn after all the rest,
    so the other rows stay those of a run without it."""
    rng = np.random.default_rng(seed)
    mark_rng = np.random.default_rng(seed + 1)  # its own stream: the other draws stay those of an unmarked run
    out = {k: [] for k in ("image", "landmarks", "spectrum", "cues", "y", "group", "kind")}

    def add(pair: list, landmarks: np.ndarray, y: int, group: str, kind: str) -> None:
        box = finder.box_from_landmarks(landmarks)
        pair = [p for p in pair if p is not None]
        if mark and kind in ("real", train.BLEND):
            pair = train.mark_alike(pair, mark_rng)
        img, *prev = augment.degrade(pair, rng)
        prev = prev[0] if prev else None
        lm = finder.landmarks68(img, box)
        feats = cues.face_cues(img, lm, prev, finder.landmarks68(prev, box) if prev is not None else None)
        for k, v in (("image", img), ("landmarks", lm), ("spectrum", detectors.spectrum(img, lm)),
                     ("cues", [feats.get(n, np.nan) for n in scan.FUSION_FEATURES]), ("y", y), ("group", group),
                     ("kind", kind)):
            out[k].append(v)

    for f in tqdm(faces, desc=desc, unit="face", leave=False):
        fake, fake_prev = dataset.make_fake(f, [d for d in faces if d.group != f.group], rng)
        add([f.image, f.prev_image], f.landmarks, 0, f.group, "real")
        add([fake, fake_prev], f.landmarks, 1, f.group, train.BLEND)
    for f in tqdm(fakes, desc=desc + " (fake videos)", unit="face", leave=False):
        add([f.image, f.prev_image], f.landmarks, 1, f.group, f.kind)
    if reenact:
        r, groups = np.random.default_rng(seed + 2), dataset.by_group(faces)
        for i, f in enumerate(tqdm(faces, desc=desc + " (reenactment blends)", unit="face", leave=False)):
            same = dataset.same_person(faces, groups, i, r)
            if same is not None:
                fake, fake_prev = dataset.make_fake(f, [], r, same=same, reenact_share=1.0)
                add([fake, fake_prev], f.landmarks, 1, f.group, REENACT)
    return {k: np.array(v, dtype=np.float64 if k == "cues" else None) for k, v in out.items()}


def prepared(faces: list, seed: int, name: str, folder: str | None, fakes: list = (), mark: bool = False,
             reenact: bool = False) -> dict:
    """prepare(), kept in `folder` (a run with the same faces, seed, marking and reenactment reuses it)."""
    if not folder:
        return prepare(faces, seed, name, fakes, mark, reenact)
    path = Path(folder) / (f"heldout-{name}-{len(faces)}-{len(fakes)}-{seed}{'-marked' if mark else ''}"
                           f"{'-reenact' if reenact else ''}.npz")
    if path.is_file():
        with np.load(path) as z:
            kept = {k: z[k] for k in z.files}
        if kept["cues"].shape[1] == len(scan.FUSION_FEATURES):  # else kept under another feature list: redo
            return kept
    prep = prepare(faces, seed, name, fakes, mark, reenact)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **prep)
    return prep


def crops(prep: dict, cfg: detectors.CNNConfig) -> np.ndarray:
    """(N, S, S, 3) CNN crops (face or mouth, by `cfg`) of the prepared faces."""
    return np.stack([detectors.cnn_crop(i, lm, cfg) for i, lm in zip(prep["image"], prep["landmarks"])])


def rows(det: detectors.Detectors, prep: dict) -> np.ndarray:
    """The fusion features of prepared faces under one folder's models (what train.features gives),
    in the columns that folder's fusion reads (older weights read fewer cues)."""
    x = prep["cues"].copy()
    x[:, scan.FUSION_FEATURES.index("cnn")] = det.face_logits(
        crops(prep, det.cnn.cfg), crops(prep, det.partner.cfg) if det.partner is not None and not det.shares_crop else None)
    x[:, scan.FUSION_FEATURES.index("fourier")] = det.fourier.logit(prep["spectrum"])
    if det.mouth is not None:  # the second CNN, on the mouth's crop (else the column stays NaN: no evidence)
        x[:, scan.FUSION_FEATURES.index("mouth_cnn")] = detectors.cnn_logits(det.mouth, crops(prep, det.mouth.cfg))
    return x[:, [scan.FUSION_FEATURES.index(n) for n in det.fusion.names]]


def scores(det: detectors.Detectors, x: np.ndarray, prep: dict, clips: bool) -> dict:
    """AUCs (and for clips the calibrated verdict's calls) of one folder's models, given its rows(): real
    against blends, then real against each kind of doppel fake video there is."""
    y, g, k = prep["y"].astype(int), np.array(prep["group"]), np.array(prep["kind"])
    fused, cnn = det.fusion.logit(x), x[:, det.fusion.names.index("cnn")]
    cfg, out = train.TrainConfig(), {}
    for kind in [train.BLEND] + sorted(set(k) - {"real", train.BLEND}):
        m = np.isin(k, ["real", kind])
        tag = "" if kind == train.BLEND else f"{kind} "
        out.update({f"{tag}cnn frame": train._auc(y[m], cnn[m]), f"{tag}fused frame": train._auc(y[m], fused[m])})
        if not clips:
            continue
        cf, cy, _ = train.pseudo_clips(fused[m], y[m], list(g[m]), cfg, list(k[m]))
        cc, _, _ = train.pseudo_clips(cnn[m], y[m], list(g[m]), cfg, list(k[m]))
        p = det.platt.prob(cf)
        out.update({f"{tag}cnn clip": train._auc(cy, cc), f"{tag}fused clip": train._auc(cy, cf)})
        if kind == train.BLEND:
            out["real clips FAKE"] = round(float((p[cy == 0] >= scan.ScanConfig.fake_at).mean()), 3)
        out[f"{kind} clips FAKE"] = round(float((p[cy == 1] >= scan.ScanConfig.fake_at).mean()), 3)
        out[f"{kind} clips REAL"] = round(float((p[cy == 1] <= scan.ScanConfig.real_at).mean()), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="*", default=[str(detectors.WEIGHTS_DIR)])
    ap.add_argument("--limit", type=int, default=48, help="faces per calibration clip (0: leave that set out)")
    ap.add_argument("--corpus", type=int, default=0, help="test-part corpus identities (0: none)")
    ap.add_argument("--clips", type=int, default=0, help="faces per corpus/talking clip (0: none)")
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--cache", help="face cache folder (as for detect train --cache)")
    ap.add_argument("--samples", help="folder keeping the prepared (blended, degraded, cue-measured) faces")
    ap.add_argument("--fakes", help="folder of doppel's fake videos of the corpus/talking clips, <kind>_<clip>.mp4 "
                                    "(scripts/make_test_fakes.py): added to the clips set, scored per kind")
    ap.add_argument("--mark-reals", action="store_true",
                    help="give every real face and blend doppel's watermark first, as the fake videos have it: "
                         "AUCs that the mark cannot help")
    ap.add_argument("--bootstrap", type=int, default=0, metavar="N",
                    help="also give each folder's fused frame-AUC difference to the first folder, per kind, with a "
                         "95%% interval from N resamplings of whole clips (a clip's real faces, one fake video, one "
                         "clip's blends: the units that vary together)")
    ap.add_argument("--reenact", action="store_true",
                    help="also score reenactment blends of the clips' faces (each face's own mouth or lower face "
                         "from another frame of its clip: sbi.reenact_blend), kind 'reenact'")
    ap.add_argument("--card", help="weights folder whose MODEL_CARD.md gets these figures as its Test section")
    a = ap.parse_args()
    torch.set_num_threads(1)
    sets = {"calib": (calib_faces(a.limit, a.cache), True)} if a.limit else {}
    if a.corpus:
        sets["corpus"] = (train.corpus(DATA, "test", a.corpus, a.cache), False)
    if a.clips:
        sets["clips"] = (test_clips(a.clips, a.cache), True)
    lines = []
    models = {w: detectors.Detectors.load(w) for w in a.weights}
    for name, (faces, clips) in sets.items():
        fakes = fake_faces(Path(a.fakes), a.clips) if a.fakes and name == "clips" else []
        prep = prepared(faces, a.seed, name, a.samples, fakes, a.mark_reals, a.reenact and clips)
        xs = {w: rows(det, prep) for w, det in models.items()}  # the CNN's logits: once a folder and set
        table = {w: scores(models[w], xs[w], prep, clips) for w in a.weights}
        base = table[a.weights[0]]
        lines.append(f"[{name}] {len(faces)} held-out faces (x2: real and blended{', all with the mark' if a.mark_reals else ''})"
                     + (f" and {len(fakes)} faces of doppel's fake videos" if fakes else "")
                     + f"; AUC (ratio to {a.weights[0]})")
        lines += [f"  {w}: " + ", ".join(_cell(k, v, base.get(k)) for k, v in r.items()) for w, r in table.items()]
        if a.bootstrap and len(a.weights) > 1:
            lines += intervals(a.weights, [models[w].fusion.logit(xs[w]) for w in a.weights], prep, a.bootstrap, a.seed)
        print("\n".join(lines[-1 - len(table) - (len(a.weights) - 1 if a.bootstrap else 0):]), flush=True)
    if a.card:
        write_test_section(Path(a.card), lines, a)


def intervals(weights: list[str], fused: list[np.ndarray], prep: dict, n: int, seed: int) -> list[str]:
    """Per folder after the first, per kind: fused frame AUC (`fused`: each folder's fused logits of the
    prepared faces) minus the first folder's, on the same faces,
    with the 2.5 and 97.5 percentiles of that difference over `n` resamplings (with replacement) of the
    real units (a clip, or for photos an identity) and of the fake units of the kind (a fake video, or
    one clip's or identity's blends), drawn alike for both folders. A held-out set of a few clips gives
    wide intervals: a difference inside one is noise."""
    from sklearn.metrics import roc_auc_score
    y, k, g = prep["y"].astype(int), np.array(prep["kind"]), np.array(prep["group"])
    unit = np.array([f"{a}|{b}" for a, b in zip(g, k)])
    out = []
    for j, w in enumerate(weights[1:], 1):
        cells = []
        for kind in [train.BLEND] + sorted(set(k) - {"real", train.BLEND}):
            rng = np.random.default_rng(seed)
            reals, fakes = sorted(set(unit[k == "real"])), sorted(set(unit[k == kind]))
            at = {u: np.flatnonzero(unit == u) for u in reals + fakes}
            whole = np.flatnonzero(np.isin(k, ["real", kind]))
            diff = lambda ix: roc_auc_score(y[ix], fused[j][ix]) - roc_auc_score(y[ix], fused[0][ix])  # noqa: E731
            draws = []
            for _ in range(n):
                ix = np.concatenate([at[u] for u in rng.choice(reals, len(reals))] +
                                    [at[u] for u in rng.choice(fakes, len(fakes))])
                if len(set(y[ix])) == 2:
                    draws.append(diff(ix))
            lo, hi = np.percentile(draws, [2.5, 97.5]) if draws else (np.nan, np.nan)
            cells.append(f"{kind} {diff(whole):+.3f} [{lo:+.3f}, {hi:+.3f}] ({len(reals)} real units, {len(fakes)} fake units)")
        out.append(f"  {w} - {weights[0]}, fused frame AUC, 95% interval over clips: " + "; ".join(cells))
    return out


def fake_faces(folder: Path, limit: int, clips: tuple[str, ...] | None = None, cache: str | None = None) -> list:
    """Faces (with previous frames) of every 3rd frame, up to `limit` a video, of the fake videos in `folder`
    (only those made of `clips`, when given; through the face cache, when given); group: the clip it was
    made from (so its pseudo-clips pair with that clip's reals), kind: from the name."""
    out = []
    for p in sorted(q for q in folder.glob("*") if media.is_video_path(q)):
        kind, clip = train.fake_kind(p)
        if clips is not None and clip not in clips:
            continue
        for f in dataset.cached(cache, {"fake": str(p.resolve()), "every": 3, "limit": limit},
                                lambda: dataset.faces_from_video(p, 3, limit)):
            f.group, f.kind = clip, kind
            out.append(f)
    return out


def write_test_section(folder: Path, lines: list[str], a: argparse.Namespace) -> None:
    """Replace the model card's Test section with these figures and the command that made them."""
    card = folder / "MODEL_CARD.md"
    text = card.read_text()
    text = text.split("\n## Test (held out", 1)[0].rstrip() + "\n"
    cmd = "python benchmarks/detect_heldout.py " + " ".join(a.weights) + f" --limit {a.limit} --corpus {a.corpus} " \
          f"--clips {a.clips} --seed {a.seed}" + (f" --fakes {a.fakes}" if a.fakes else "") + \
          (" --mark-reals" if a.mark_reals else "") + (f" --bootstrap {a.bootstrap}" if a.bootstrap else "") + \
          (" --reenact" if a.reenact else "")
    text += ("\n## Test (held out, scored once after training)\n"
             "Identities and clips no training, fusion or calibration step used: corpus photos of the test\n"
             "part and the corpus/talking clips (MEAD, two presenters), each real and as a fresh blend; with\n"
             "doppel's own fake videos of those clips by kind where given. 'FAKE'/'REAL': share of pseudo-clips\n"
             "the calibrated verdict calls so (p >= 0.7 / p <= 0.3). The first folder is the baseline.\n\n"
             f"    {cmd}\n\n```\n" + "\n".join(lines) + "\n```\n")
    with media.atomic_path(card) as tmp:
        tmp.write_text(text)


def _cell(key: str, value: float | None, base: float | None) -> str:
    if value is None:
        return f"{key} n/a"
    ratio = f" ({value / base:.2f}x)" if base and "clips" not in key else ""  # shares have no useful ratio
    return f"{key} {value:.3f}{ratio}"


if __name__ == "__main__":
    main()
