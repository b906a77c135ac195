"""`doppel detect train`: learn the CNN, the Fourier model, the fusion and the calibration.

Only real faces are needed: fakes are self-blended or X-ray-blended on the fly
(detect/sbi.py, kind "blend"). The sample clips are split by clip/identity into
three disjoint parts: training (CNN, Fourier), fusion (the logistic regression
over all scores) and calibration (Platt scaling and the validation figures in
the model card). data/deepfake/ is never used.

With `--fakes DIR` (videos doppel made of the same clips, named <kind>_<clip>.mp4,
see scripts/make_detect_fakes.py) each fake video goes where its clip goes: fakes
of training clips whose kind is in `fakes_train` become CNN training fakes; fakes
of fusion clips join the fusion if their kind is in `fakes_train`; fakes of
calibration clips of every kind join the calibration. So a kind left out of
`fakes_train` (lipsync by default) is never seen before the calibration, which
therefore also learns how sure to be about a manipulation the models never saw.
"""
from __future__ import annotations

import collections
import datetime as _dt
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from .. import media, provenance
from ..errors import DoppelError
from ..faces import align, finder
from . import augment, card, cnn_fit, dataset, detectors, scan, simulate
from .config import CALIB_CLIPS, CHANGE_LEVEL, FUSION_CLIPS, TrainConfig  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

CNN_SIDE = 160  # central part of the context window that the CNN's training crops are cut from
# the loosest CNN crop that fits in it (the landmark box spans dataset.CONTEXT_COVERAGE of the context window):
# a looser one would take in replicated border that no scan sees
LOOSEST_COVERAGE = dataset.CONTEXT * dataset.CONTEXT_COVERAGE / CNN_SIDE
BATCH_TIMEOUT = 300  # seconds to wait for a batch from the worker before giving up
BATCH_WORKERS = 2  # batch-making processes: a batch (blends, degradations) costs ~3x a training step
FUSION_SETS = {"cnn": ["cnn"], "mouth": ["cnn", "mouth_cnn"], "models": ["cnn", "fourier"],  # simplest first
               "all": list(scan.FUSION_FEATURES)}
FUSION_C = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # L2 inverse strengths tried for the fusion
FUSION_CAP = 1.5  # logits the cues together may take off the CNN's (an unseen fake's cues can look clean)
# least calibrated p (and 1 - the most): on the test clips' lip-syncs and the FF++ fake, kinds no calibration
# clip holds, the plain map said REAL at p < 0.001; what it never saw it must not be that sure of
PLATT_FLOOR = 0.05
FUSION_TOLERANCE = 0.005  # a simpler or more regularised fusion wins unless CV log-loss is this much worse
FAKE_KINDS = ("swap", "gan", "lipsync")  # name prefixes of the videos of a --fakes folder; others are "other"
BLEND = "blend"  # kind of the fakes made on the fly (self-blended or X-ray)
CNN_RECORD = ("cnn_steps", "cnn_seconds", "cnn_history", "cnn_best_step", "cnn_best_val_auc", "val_faces",
              "cnn_final_loss")  # what --max-steps 0 from --init carries over from the init's card
# the training settings the card's CNN paragraph states: a refit (--max-steps 0) keeps its CNN's, not its own
CNN_SETTINGS = ("batch", "lr", "threads", "init", "checkpoint_minutes")
GEN_SIMULATORS = 8  # generator simulators in a --gen-share run's bank (two of each upsampler)
GEN_SECONDS = 25.0  # training seconds each
GEN_FACES = 2000  # training faces they learn from
CORPUS_CHUNK = 250  # corpus photos per cache file
FOURIER_C = 0.1  # L2 inverse strength of the Fourier model (32 correlated radii: strong regularisation)
REST_FIXED_S = 40  # seconds of the budget kept after the CNN for spectra, saving and the card, beside per-face costs
CNN_MIN_SHARE = 0.3  # the CNN gets at least this share of what is left of the budget, however slow the rest
SECONDS_PER_HELDOUT_FACE = 0.15  # measured cost of a held-out face's features (real + fake), to budget the CNN


@dataclass
class Split:
    train: list = field(default_factory=list)  # RealFace for the CNN and Fourier model
    fusion: list = field(default_factory=list)  # RealFace (with previous frames) for the fusion
    calib: list = field(default_factory=list)  # RealFace (with previous frames) for calibration
    train_fakes: list = field(default_factory=list)  # faces of fake videos of training clips, for the CNN
    fusion_fakes: list = field(default_factory=list)  # faces (with previous frames) of fakes of fusion clips
    calib_fakes: list = field(default_factory=list)  # faces (with previous frames) of fakes of calibration clips
    corpus: dict = field(default_factory=dict)  # corpus identities added per part ("train", "fusion")


def gather(data_dir: Path, cfg: TrainConfig) -> Split:
    """Real faces of the sample media, split by clip and identity."""
    if not (Path(data_dir) / "faces").is_dir():
        raise DoppelError(f"not the sample media folder (no faces/ in it): {data_dir}")
    split = Split()
    if cfg.fakes:  # first: a bad --fakes folder fails before a minute of finding real faces
        split.train_fakes, split.fusion_fakes, split.calib_fakes = fake_faces(Path(cfg.fakes), cfg)
    data = str(Path(data_dir).resolve())
    photos = dataset.photos(data_dir, cfg.per_person)
    split.train = dataset.cached(cfg.cache, {"photos": data, "per_person": cfg.per_person, "side": CNN_SIDE},
                                 lambda: dataset.faces_from_images(photos, dataset.photo_group, side=CNN_SIDE))
    for clip in tqdm(dataset.videos(data_dir), desc="clips", unit="clip"):
        if clip.stem in cfg.fusion_clips or clip.stem in cfg.calib_clips:
            part = split.fusion if clip.stem in cfg.fusion_clips else split.calib
            key = {"clip": str(clip.resolve()), "every": cfg.heldout_every, "limit": cfg.heldout_limit}
            part.extend(dataset.cached(cfg.cache, key, lambda: dataset.faces_from_video(
                clip, cfg.heldout_every, cfg.heldout_limit)))
        else:  # training faces need no previous frame and only the CNN's central window
            key = {"clip": str(clip.resolve()), "every": cfg.video_every, "limit": cfg.video_limit, "side": CNN_SIDE}
            split.train.extend(dataset.cached(cfg.cache, key, lambda: dataset.faces_from_video(
                clip, cfg.video_every, cfg.video_limit, False, CNN_SIDE)))
    more = corpus(data_dir, "train", cfg.corpus, cfg.cache, CNN_SIDE)
    split.train += more
    split.corpus["train"] = len(more)
    more = corpus(data_dir, "fusion", cfg.corpus_fusion, cfg.cache)
    for f in more:
        # a few folds, not one group per identity: the fusion's leave-one-group-out stays affordable
        f.group = f"corpus_fold{int(hashlib.sha1(f.group.encode()).hexdigest()[:4], 16) % 4}"
    split.fusion += more
    split.corpus["fusion"] = len(more)
    log.info("faces: %d train, %d fusion, %d calibration; of fake videos: %d train, %d fusion, %d calibration",
             len(split.train), len(split.fusion), len(split.calib), len(split.train_fakes),
             len(split.fusion_fakes), len(split.calib_fakes))
    if not split.train or not split.fusion or not split.calib:
        raise DoppelError(f"too few faces found in {data_dir} to train")
    return split


def corpus(data_dir: Path, part: str, n: int, cache: str | None, side: int | None = None) -> list:
    """Faces of `n` corpus identities of `part` (dataset.corpus_faces), through the cache."""
    if n <= 0:
        return []
    if not (Path(data_dir) / "corpus").is_dir():
        raise DoppelError(f"--corpus: no corpus/ folder in {data_dir}")
    paths = dataset.corpus_photos(Path(data_dir), part, n)
    out = []
    for i in range(0, len(paths), CORPUS_CHUNK):  # cached in chunks: an interrupted caching run keeps most
        chunk = paths[i:i + CORPUS_CHUNK]
        key = {"corpus": [str(chunk[0].resolve()), str(chunk[-1].resolve()), len(chunk)], "side": side}
        out += dataset.cached(cache, key, lambda: dataset.corpus_faces(chunk, side))
    return out


LABEL_KINDS = {"face-swap": "swap", "lipsync": "lipsync"}  # doppel label kind -> fake kind


def fake_kind(path: Path, label: dict | None = None) -> tuple[str, str]:
    """(kind, clip) of a fake video: the kind from its doppel label (a swap by a GAN model, whose label
    says `variant: gan`, is "gan"), else from a name <kind>_<clip>.<ext> ("other" if neither says); the
    clip is the name without the kind prefix."""
    prefix, _, rest = Path(path).stem.partition("_")
    named = prefix in FAKE_KINDS and rest
    label = label or {}
    kind = LABEL_KINDS.get(label.get("kind"), prefix if named else "other")
    if kind == "swap" and (label.get("details") or {}).get("variant") == "gan":
        kind = "gan"
    return kind, rest if named else Path(path).stem


def fake_faces(folder: Path, cfg: TrainConfig) -> tuple[list, list, list]:
    """Faces of the fake videos in `folder`, split by the clip each was made from: (training fakes,
    fusion fakes, calibration fakes).

    A video whose file name or doppel label names a fusion or calibration clip belongs to that
    clip; any other is a training fake (group: its name without the kind prefix). Fakes of
    held-out clips keep their previous frames and take the clip as group (so clip-wise
    cross-validation keeps them with their real clip); fakes of kinds outside `fakes_train` go
    only to the calibration.
    """
    if not folder.is_dir():
        raise DoppelError(f"--fakes: not a folder: {folder}")
    held = cfg.fusion_clips + cfg.calib_clips
    train, fusion, calib = [], [], []
    for p in tqdm(sorted(q for q in folder.rglob("*") if media.is_video_path(q)), desc="fakes", unit="clip"):
        label = provenance.read_label(p)
        kind, clip = fake_kind(p, label)
        text = p.name + json.dumps(label or {})
        clip = next((h for h in held if h in text), clip)
        used = kind in cfg.fakes_train
        if clip not in held:
            if used:
                train += [dataset.RealFace(f.image, f.landmarks, clip, kind=kind)
                          for f in dataset.faces_from_video(p, cfg.video_every, cfg.fake_limit, False, CNN_SIDE)]
            continue
        if clip in cfg.fusion_clips and not used:
            continue  # an unused kind stays unseen until the calibration
        faces = dataset.faces_from_video(p, cfg.heldout_every, cfg.heldout_limit // 2)
        for f in faces:
            f.group, f.kind = clip, kind
        (fusion if clip in cfg.fusion_clips else calib).extend(faces)
    if not (train or fusion or calib):
        raise DoppelError(f"--fakes: no faces found in the videos of {folder}")
    return train, fusion, calib


def mark_shares(fake_share: float, mark_share: float, fakes: bool) -> tuple[float, float]:
    """(share of real faces, share of blends) given doppel's watermark, so that as many real faces as fakes
    carry it: every face of a fake video does (doppel marks all it writes), `mark_share` of the blends."""
    share = fake_share if fakes else 0.0
    return share + (1 - share) * mark_share, mark_share


def mark_like_an_output(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The face as if cut from a doppel output: the watermark (a random run id, 0.7-1x strength) with
    cells of 1-1.8x CNN_SIDE / 120 px at a random phase. In the CNN_SIDE window of marked 480x480,
    700x700 and 1280x720 frames the mark's mean spatial frequency was 0.18, 0.12 and 0.12 cycles/px,
    here 0.10-0.18 (the same in a whole context window: the cells are set in pixels). Its gain depends
    only on each pixel's neighbourhood, so the face gets the mark an output would give it."""
    return mark_alike([image], rng)[0]


def mark_alike(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """mark_like_an_output with one draw for every image of the list (a frame and its previous frame:
    an output's mark stays put from frame to frame)."""
    import cv2
    from ..provenance import watermark
    h, w = images[0].shape[:2]
    cell = rng.uniform(1.0, 1.8) * CNN_SIDE / watermark.MarkSettings.work  # px per cell of the mark's grid
    top, left = (int(rng.integers(0, int(watermark.TILE * cell) + 1)) for _ in range(2))  # the tile's phase
    settings = watermark.MarkSettings(work=max(watermark.TILE, round(min(h + top, w + left) / cell)),
                                      strength=watermark.MarkSettings.strength * rng.uniform(0.7, 1.0))
    payload = watermark.make_payload(int(rng.integers(2 ** 32)))
    out = []
    for image in images:
        canvas = cv2.copyMakeBorder(image, top, 0, left, 0, cv2.BORDER_REFLECT_101)
        out.append(np.ascontiguousarray(watermark.embed(canvas, payload, settings)[top:, left:]))
    return out


def changed(real: np.ndarray, fake: np.ndarray) -> np.ndarray:
    """(H, W) uint8 1 where `fake` differs from `real` by more than CHANGE_LEVEL in any channel, else 0."""
    return (np.abs(fake.astype(np.int16) - real.astype(np.int16)).max(2) > CHANGE_LEVEL).astype(np.uint8)


def sample(faces: list, rng: np.random.Generator, fake: bool, fakes: list = (),
           fake_share: float = 0.0, mark_share: float = 0.0, groups: dict | None = None,
           reenact_share: float = 0.0, part_share: float | None = None, with_change: bool = False,
           bank: list | None = None, gen_share: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One (image, landmarks, change mask) training sample at context resolution: real, or a fake (a fresh blend,
    or with probability `fake_share` a face of a fake video), degraded alike; real faces and blends get
    doppel's watermark as often as `mark_shares` says (fake videos have it already). With
    `reenact_share` and `groups` (dataset.by_group of faces), that share of the blends of a face
    whose group holds other faces are reenactment blends (dataset.make_fake); with a simulator `bank`,
    `gen_share` of the other blends are generated blends. With `with_change`, the change
    mask (uint8 0/1, `changed`) marks the pixels a blend changed: none of a real face; None for a face of a fake
    video (unknown), and always None without `with_change` (the mask takes no draws either way)."""
    if fake and len(fakes) and rng.random() < fake_share:
        f = fakes[int(rng.integers(len(fakes)))]
        return augment.degrade([f.image], rng)[0], f.landmarks, None
    i = int(rng.integers(len(faces)))
    f = faces[i]
    # draws only with the option: runs without it keep their batches
    same = dataset.same_person(faces, groups, i, rng) if fake and reenact_share and groups else None
    img = dataset.make_fake(f, faces, rng, same=same, reenact_share=reenact_share, part_share=part_share,
                            bank=bank, gen_share=gen_share)[0] if fake else f.image
    # before the mark and the degradations, which real faces get alike
    change = changed(f.image, img) if with_change else None
    if mark_share and rng.random() < mark_shares(fake_share, mark_share, len(fakes) > 0)[int(fake)]:
        img = mark_like_an_output(img, rng)
    return augment.degrade([img], rng)[0], f.landmarks, change


def make_batch(faces: list, cfg: TrainConfig, seed: int, fakes: list = ()) -> tuple[np.ndarray, ...]:
    """(crops (B, S, S, 3) uint8, labels (B,) float32): half fake, random flips; with `cfg.seg_weight` also
    the crops' change masks (B, S, S) float16, the share of each pixel a blend changed (NaN: unknown)."""
    rng = np.random.default_rng(seed)
    crops, labels, changes = [], [], []
    groups = dataset.by_group(faces) if cfg.reenact_share else None
    bank = simulate.bank_at(cfg.gen_bank) if cfg.gen_share and cfg.gen_bank else None
    for j in range(cfg.batch):
        img, lm, change = sample(faces, rng, j % 2 == 1, fakes, cfg.fake_share, cfg.mark_share, groups,
                                 cfg.reenact_share, cfg.part_share, with_change=cfg.seg_weight > 0,
                                 bank=bank, gen_share=cfg.gen_share)
        shape = cfg.cnn
        if cfg.coverage_jitter:  # its own draw after the sample's: a run without jitter keeps its batches
            shape = replace(shape, coverage=shape.coverage + rng.uniform(-cfg.coverage_jitter, cfg.coverage_jitter))
        c = detectors.cnn_crop(img, lm, shape)
        flip = rng.random() < 0.5
        crops.append(c[:, ::-1] if flip else c)
        labels.append(j % 2)
        if cfg.seg_weight:
            m = np.full((shape.size, shape.size), np.nan, np.float16) if change is None else \
                align.crop(change * 255, detectors.crop_matrix(lm, shape), shape.size) / 255.0
            changes.append(m[:, ::-1] if flip else m)
    out = (np.ascontiguousarray(np.stack(crops)), np.array(labels, np.float32))
    return out + (np.ascontiguousarray(np.stack(changes), np.float16),) if cfg.seg_weight else out


_WORKER: dict = {}  # the batch-making process's faces and config (set once by its initializer)


def _init_worker(faces: list, cfg: TrainConfig, fakes: list) -> None:
    torch.set_num_threads(1)
    _WORKER.update(faces=faces, cfg=cfg, fakes=fakes)


def _worker_batch(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return make_batch(_WORKER["faces"], _WORKER["cfg"], seed, _WORKER["fakes"])


def batches(faces: list, cfg: TrainConfig, seed: int, fakes: list = (),
            first: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless batches from the `first`-th on (a resumed run gets the ones it would have had), made in
    BATCH_WORKERS other processes when there is a second core; `faces` as gather keeps them (the
    central CNN_SIDE pixels)."""
    seeds = (seed * 1_000_003 + i for i in itertools.count(first))
    if (os.cpu_count() or 1) < 2:
        yield from (make_batch(faces, cfg, s, fakes) for s in seeds)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(BATCH_WORKERS, _init_worker, (faces, cfg, list(fakes))) as pool:
        ahead = collections.deque(pool.apply_async(_worker_batch, (next(seeds),)) for _ in range(2 * BATCH_WORKERS))
        while True:  # a few batches in flight: the workers never run far ahead of training
            ahead.append(pool.apply_async(_worker_batch, (next(seeds),)))
            yield ahead.popleft().get(timeout=BATCH_TIMEOUT)


def fit_fourier(faces: list, n: int, rng: np.random.Generator, fakes: list = (),
                fake_share: float = 0.0, mark_share: float = 0.0) -> detectors.Linear:
    """Logistic regression on spectra of n real and n fake training faces."""
    x, y = [], []
    for j in tqdm(range(2 * n), desc="spectra", unit="face", leave=False):
        img, lm, _ = sample(faces, rng, j % 2 == 1, fakes, fake_share, mark_share)
        x.append(detectors.spectrum(img, lm))
        y.append(j % 2)
    names = [f"r{k + 1}" for k in range(len(x[0]))]
    return detectors.Linear.fit(np.array(x), np.array(y), names, c=FOURIER_C)


def features(det: detectors.Detectors, faces: list, rng: np.random.Generator, desc: str,
             fakes: list = ()) -> tuple[np.ndarray, np.ndarray, list, list]:
    """Fusion features (F columns) of every face as real (0) and as a fresh blend (1), and of every
    face of a fake video (1); with each row's group (clip) and kind ("real", "blend", "swap", ...)."""
    rows, labels, groups, kinds = [], [], [], []

    def add(pair: list, landmarks: np.ndarray, y: int, group: str, kind: str) -> None:
        # a frame and its previous frame degraded alike (the same processing for both classes), landmarks
        # refitted on both in one detector-like box around the face's, as a scan finds them
        box = finder.box_from_landmarks(landmarks)
        img, *prev = augment.degrade([p for p in pair if p is not None], rng)  # a photo has no previous frame
        prev = prev[0] if prev else None
        prev_lm = finder.landmarks68(prev, box) if prev is not None else None
        feats, _ = scan.face_scores(det, img, finder.landmarks68(img, box), prev, prev_lm)
        rows.append(scan.feature_row(feats)[0])
        labels.append(y)
        groups.append(group)
        kinds.append(kind)

    for f in tqdm(faces, desc=desc, unit="face", leave=False):
        fake, fake_prev = dataset.make_fake(f, [d for d in faces if d.group != f.group], rng)
        add([f.image, f.prev_image], f.landmarks, 0, f.group, "real")
        add([fake, fake_prev], f.landmarks, 1, f.group, BLEND)
    for f in tqdm(fakes, desc=desc + " (fake videos)", unit="face", leave=False):
        add([f.image, f.prev_image], f.landmarks, 1, f.group, f.kind)
    return np.array(rows), np.array(labels), groups, kinds


def pseudo_clips(scores: np.ndarray, labels: np.ndarray, groups: list, cfg: TrainConfig,
                 kinds: list | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Video scores (scan.video_score) of windows of `chunk` consecutive faces of one clip and one
    kind, starting every `chunk_stride` faces: stand-ins for videos, scored as videos are.
    Returns (scores, labels, kinds) of the pseudo-clips."""
    out, out_y, out_k = [], [], []
    g_arr = np.array(groups)
    k_arr = np.array(kinds) if kinds is not None else np.where(labels == 1, "fake", "real")
    for g in dict.fromkeys(groups):
        for k in dict.fromkeys(k_arr[g_arr == g]):
            m = (g_arr == g) & (k_arr == k)
            s = scores[m]
            for i in range(0, max(len(s) - cfg.chunk, 0) + 1, cfg.chunk_stride):
                if len(s[i:i + cfg.chunk]) >= cfg.chunk // 2:
                    out.append(scan.video_score(s[i:i + cfg.chunk]))
                    out_y.append(int(labels[m][0]))
                    out_k.append(str(k))
    return np.array(out), np.array(out_y), np.array(out_k)


def capped(fusion: detectors.Linear) -> detectors.Linear:
    """The fusion with its cues unable to lower the CNN's evidence by more than FUSION_CAP logits."""
    return replace(fusion, anchor="cnn", cap=FUSION_CAP)


def cv_loss(x: np.ndarray, y: np.ndarray, groups: list, use: list[str], c: float,
            kinds: list | None = None) -> float:
    """Class-balanced log-loss of a fusion on the columns `use` with L2 inverse strength `c`, each
    clip held out in turn; with two or more kinds of fake, each kind is held out too (fitted on the
    other clips and the other kinds, tested on the held clip's reals and that kind), so a cue that
    only catches one kind of fake does not look better than it will be on a new kind."""
    from sklearn.metrics import log_loss
    g = np.array(groups)
    k = np.array(kinds) if kinds is not None else np.where(y == 1, "fake", "real")
    fake_kinds = list(dict.fromkeys(k[y == 1])) if len(set(k[y == 1])) > 1 else [None]
    losses = []
    for held in dict.fromkeys(groups):
        for kind in fake_kinds:
            tr = (g != held) & (k != kind)
            te = (g == held) & ((k == kind) | (y == 0) if kind is not None else True)
            if len(set(y[tr])) < 2 or len(set(y[te])) < 2:
                continue
            fit = capped(detectors.Linear.fit(x[tr], y[tr], scan.FUSION_FEATURES, c, use))
            p = 1 / (1 + np.exp(-np.clip(fit.logit(x[te]), -30, 30)))
            losses.append(log_loss(y[te], p, labels=[0, 1], sample_weight=detectors.balanced(y[te])))
    return float(np.mean(losses))


def fit_fusion(x: np.ndarray, y: np.ndarray, groups: list, kinds: list | None = None,
               mouth: bool = False) -> tuple[detectors.Linear, dict]:
    """The fusion chosen by leave-one-clip-out (and leave-one-kind-out, see cv_loss) log-loss over
    FUSION_SETS x FUSION_C, refitted on all.

    Candidates are tried simplest first (CNN alone, then both models, then every cue) and most
    regularised first; a later one must beat the best so far by FUSION_TOLERANCE. So cues that add
    nothing on held-out clips stay out and cannot drown the CNN. Without a `mouth` CNN its set is not tried.
    """
    table, best = {}, None
    for name, use in FUSION_SETS.items():
        if "mouth_cnn" in use and name != "all" and not mouth:
            continue
        for c in FUSION_C:
            loss = cv_loss(x, y, groups, use, c, kinds)
            table[f"{name} C={c:g}"] = round(loss, 4)
            if best is None or loss < best[0] - FUSION_TOLERANCE:
                best = (loss, name, c)
    loss, name, c = best
    log.info("fusion: %s, C=%g (leave-one-clip-out log-loss %.4f)", name, c, loss)
    fusion = capped(detectors.Linear.fit(x, y, scan.FUSION_FEATURES, c, FUSION_SETS[name]))
    held_kinds = sorted({str(k) for k in np.asarray(kinds)[np.asarray(y) == 1]}) if kinds is not None else []
    return fusion, {"features": name, "c": c, "cv_log_loss": round(loss, 4), "table": table,
                    "kinds_held_out": held_kinds if len(held_kinds) > 1 else []}


def out_of_fold(x: np.ndarray, y: np.ndarray, groups: list, selection: dict) -> np.ndarray:
    """Fused logits of every row by the chosen fusion (features and C of `selection`) fitted without the
    row's group: scores as a new clip would get them."""
    g, out = np.array(groups), np.zeros(len(y))
    for held in dict.fromkeys(groups):
        tr = g != held
        fit = capped(detectors.Linear.fit(x[tr], y[tr], scan.FUSION_FEATURES, selection["c"],
                                       FUSION_SETS[selection["features"]]))
        out[~tr] = fit.logit(x[~tr])
    return out


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    ok = np.isfinite(s)
    if len(set(y[ok])) < 2:
        return None
    return round(float(roc_auc_score(y[ok], s[ok])), 4)


def validation(det: detectors.Detectors, x: np.ndarray, y: np.ndarray, groups: list, cfg: TrainConfig,
               kinds: list | None = None, sc: scan.ScanConfig = scan.ScanConfig()) -> dict:
    """Frame-level AUC of every score and cue, pseudo-clip accuracy of the verdict bands, and the
    same for each kind of fake against the reals."""
    fused = det.fusion.logit(x)
    kinds = np.array(kinds) if kinds is not None else np.where(y == 1, BLEND, "real")
    auc = {name: _auc(y, x[:, k]) for k, name in enumerate(scan.FUSION_FEATURES)}
    auc["fused"] = _auc(y, fused)
    clip_s, clip_y, clip_k = pseudo_clips(fused, y, groups, cfg, list(kinds))
    cnn_s, _, _ = pseudo_clips(x[:, scan.FUSION_FEATURES.index("cnn")], y, groups, cfg, list(kinds))
    p = det.platt.prob(clip_s)
    decided = (p >= sc.fake_at) | (p <= sc.real_at)
    correct = ((p >= sc.fake_at) & (clip_y == 1)) | ((p <= sc.real_at) & (clip_y == 0))
    share = lambda m: round(float(m.mean()), 4) if m.size else None  # noqa: E731
    by_kind = {}
    for k in sorted(set(kinds[y == 1])):
        fm, cm = (kinds == k) | (y == 0), (clip_k == k) | (clip_y == 0)
        by_kind[k] = {"faces": int((kinds == k).sum()), "frame_auc_cnn": _auc(y[fm], x[fm, 0]),
                      "frame_auc_fused": _auc(y[fm], fused[fm]), "clip_auc_fused": _auc(clip_y[cm], clip_s[cm]),
                      "clip_accuracy_at_0.5": share((p[clip_k == k] >= 0.5)),
                      "clip_mean_p": share(p[clip_k == k])}
    return {"frame_auc": auc, "pseudo_clips": int(len(clip_y)),
            "clip_auc": {"cnn": _auc(clip_y, cnn_s), "fused": _auc(clip_y, clip_s)},
            "clip_accuracy_at_0.5": share((p >= 0.5) == clip_y), "clip_decided_share": share(decided),
            "clip_accuracy_when_decided": share(correct[decided]),
            "real_clip_accuracy_at_0.5": share(p[clip_y == 0] < 0.5), "by_kind": by_kind}


def train(data_dir: str | Path, out_dir: str | Path, cfg: TrainConfig = TrainConfig(),
          command: str = "") -> detectors.Detectors:
    """Reproduce every detector from the sample media and write weights + MODEL_CARD.md to `out_dir`."""
    torch.set_num_threads(1)  # the cues and blends; the CNN's steps take cfg.threads
    t0 = time.monotonic()
    deadline = t0 + cfg.minutes * 60
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    split = gather(Path(data_dir), cfg)
    t_gather = time.monotonic() - t0
    cnn = detectors.FaceCNN(cfg.cnn)
    # the CNN gets what is left after gathering, less the (measured) cost of spectra, fusion and calibration
    rest = REST_FIXED_S + _seconds_per_face(split, cfg.seed) * (len(split.fusion) + len(split.calib))
    cnn_deadline = max(deadline - rest, time.monotonic() + CNN_MIN_SHARE * max(deadline - time.monotonic(), 10))
    inits = init_folders(cfg)
    if inits:
        start = detectors.soup(inits) if len(inits) > 1 else detectors.Detectors.load(inits[0]).cnn
        if replace(start.cfg, coverage=cfg.cnn.coverage, flip=cfg.cnn.flip) != cfg.cnn:  # crop and flip may change
            raise DoppelError(f"--init: the CNN in {inits[0]} has another shape ({start.cfg})")
        cnn.load_state_dict(start.state_dict())
    elif cfg.cnn.arch == "dlib":  # without --init, from dlib's face-recognition weights
        from . import dlibnet
        dlibnet.load_into(list(cnn.features))
    has_corpus = (Path(data_dir) / "corpus").is_dir()  # without one the CNN trains unvalidated (last weights kept)
    val = cnn_fit.validation_crops(corpus(data_dir, "fusion", cfg.val if has_corpus else 0, cfg.cache, CNN_SIDE),
                                   cfg.cnn, cfg.seed, cfg.part_share)
    if cfg.gen_share and cfg.max_steps > 0:
        cfg = replace(cfg, gen_bank=str(simulator_bank(split.train, Path(out_dir), cfg)))
    torch.set_num_threads(cfg.threads)
    fit = cnn_fit.fit(cnn, lambda first: batches(split.train, cfg, cfg.seed, split.train_fakes, first), cfg.max_steps,
                      cfg.lr, cnn_deadline - time.monotonic(), out_dir, val, cfg.checkpoint_minutes * 60, cfg.resume,
                      cfg.seg_weight, cfg.pretrained_lr_share)
    torch.set_num_threads(1)
    losses = fit.losses or [float("nan")]
    log.info("CNN: %d steps, best validation AUC %s at step %d", fit.steps, fit.best_auc, fit.best_step)
    fourier = fit_fourier(split.train, 300, rng, split.train_fakes, cfg.fake_share, cfg.mark_share)
    n = len(scan.FUSION_FEATURES)
    blank = detectors.Linear(scan.FUSION_FEATURES, [0.0] * n, [1.0] * n, [0.0] * n, 0.0)
    partner, partner_record = _partner(cfg)
    det = detectors.Detectors(cnn, fourier, blank, detectors.Platt(1.0, 0.0), mouth=mouth_cnn(cfg), partner=partner)
    t_cnn = time.monotonic()
    xa, ya, ga, ka = features(det, split.fusion, rng, "fusion features", split.fusion_fakes)
    det.fusion, selection = fit_fusion(xa, ya, ga, ka, det.mouth is not None)
    xb, yb, gb, kb = features(det, split.calib, rng, "calibration features", split.calib_fakes)
    # Platt fitted at the level it is applied: video scores (scan.video_score) of pseudo-clips, every
    # kind of fake together, the two classes weighted alike; on the calibration clips and, scored by a
    # fusion fitted without each, the fusion clips: seven people rather than three
    clip_s, clip_y, _ = pseudo_clips(det.fusion.logit(xb), yb, gb, cfg, kb)
    fus = [g in cfg.fusion_clips for g in ga]
    oof_s, oof_y, _ = pseudo_clips(out_of_fold(xa, ya, ga, selection)[fus], ya[fus], list(np.array(ga)[fus]), cfg,
                                   list(np.array(ka)[fus]))
    det.platt = replace(detectors.Platt.fit(np.concatenate([clip_s, oof_s]), np.concatenate([clip_y, oof_y])),
                        floor=PLATT_FLOOR)
    det.meta = _meta(cfg, split, losses, validation(det, xb, yb, gb, cfg, kb), command, time.monotonic() - t0,
                     t_gather)
    det.meta.update(fusion_selection=selection, after_cnn_seconds=round(time.monotonic() - t_cnn, 1),
                    cnn_steps=fit.steps, cnn_seconds=fit.seconds, cnn_history=fit.history, cnn_best_step=fit.best_step,
                    cnn_best_val_auc=fit.best_auc, val_faces=int(len(val[1]) // 2) if val else 0)
    if det.mouth is not None:
        det.meta["mouth_cnn"] = _cnn_record(cfg.mouth)
    if partner_record is not None:
        det.meta["partner_cnn"] = partner_record
    if len(inits) > 1:  # the CNNs averaged, each with the record of how it was made
        det.meta["cnn_soup"] = [_cnn_record(f) for f in inits]
    if len(inits) == 1 and fit.steps == 0:  # only the Fourier model, fusion and calibration were refitted: keep the CNN's record
        prev = detectors.Detectors.load(inits[0]).meta
        det.meta.update({k: prev[k] for k in CNN_RECORD if k in prev}, cnn_command=prev.get("cnn_command", prev["command"]),
                        cnn_trained_coverage=prev.get("cnn_trained_coverage", prev["config"]["cnn"]["coverage"]),
                        cnn_trained_with=prev.get("cnn_trained_with", {k: prev["config"][k] for k in CNN_SETTINGS}))
    det.save(out_dir)
    det.meta["version"] = _version(Path(out_dir))
    det.save(out_dir)
    (Path(out_dir) / cnn_fit.STATE_FILE).unlink(missing_ok=True)  # the run is done: the weights say it all
    (Path(out_dir) / simulate.BANK_FILE).unlink(missing_ok=True)  # only a resumed run needed its simulators
    card.write_card(Path(out_dir), det, FUSION_TOLERANCE, BLEND)
    return det


def simulator_bank(faces: list, out_dir: Path, cfg: TrainConfig) -> Path:
    """The generator simulators' file in `out_dir` (simulate.BANK_FILE): kept when resuming (the run goes on with
    the same simulators), else trained now on up to GEN_FACES of the training faces, GEN_SECONDS each."""
    path = out_dir / simulate.BANK_FILE
    if cfg.resume and path.is_file():
        log.info("generator simulators from %s", path)
        return path
    rng = np.random.default_rng(cfg.seed)
    pick = rng.choice(len(faces), min(GEN_FACES, len(faces)), replace=False)
    bank, errors = simulate.train_bank([faces[i].image for i in pick], GEN_SIMULATORS, GEN_SECONDS, cfg.seed)
    log.info("%d generator simulators, held-out L1 %s", len(bank), " ".join(f"{e:.3f}" for e in errors))
    out_dir.mkdir(parents=True, exist_ok=True)
    simulate.save_bank(bank, path)
    return path


def mouth_cnn(cfg: TrainConfig) -> detectors.FaceCNN | None:
    """The CNN of the `cfg.mouth` folder (DoppelError unless it is a mouth CNN), or None without one."""
    return _second_cnn(cfg.mouth, "mouth", "train one with 'doppel detect train --cnn mouth'")


def partner_cnn(cfg: TrainConfig) -> detectors.FaceCNN | None:
    """The face CNN of the `cfg.partner` folder (DoppelError unless it is a face CNN and the folder's only one), or
    None without one."""
    return _second_cnn(cfg.partner, "face", "give it to --mouth instead")


def partner_folder(cfg: TrainConfig) -> str | None:
    """Where the new detector's partner CNN comes from: --partner; without it, a single --init folder that has one
    (a refit of a detector with two face CNNs keeps both); else None."""
    inits = init_folders(cfg)
    if cfg.partner or len(inits) != 1 or not (Path(inits[0]) / detectors.PARTNER_FILE).is_file():
        return cfg.partner
    return inits[0]


def _second_cnn(folder: str | None, region: str, hint: str) -> detectors.FaceCNN | None:
    """The CNN of a weights folder given to --mouth (region "mouth") or --partner (region "face"), or None."""
    if not folder:
        return None
    det = detectors.Detectors.load(folder)
    flag = "--mouth" if region == "mouth" else "--partner"
    if det.cnn.cfg.region != region:
        raise DoppelError(f"{flag}: the CNN in {folder} is a {det.cnn.cfg.region} CNN, not a {region} CNN ({hint})")
    if region == "face" and det.partner is not None:  # its face score is a pair's: one of them alone is another model
        raise DoppelError(f"{flag}: {folder} scores faces with two CNNs (it has a partner); give the folder of the "
                          "one face CNN you want")
    return det.cnn


def _partner(cfg: TrainConfig) -> tuple[detectors.FaceCNN | None, dict | None]:
    """The new detector's partner CNN and its record for the card: --partner's face CNN, or the partner --init's
    folder has (partner_folder), or (None, None)."""
    folder = partner_folder(cfg)
    if folder is None:
        return None, None
    if folder == cfg.partner:
        return partner_cnn(cfg), _cnn_record(folder)
    log.info("keeping the partner CNN of --init %s (give --partner to choose another)", folder)
    kept = detectors.Detectors.load(folder)
    return kept.partner, kept.meta.get("partner_cnn") or {"folder": folder}


def init_folders(cfg: TrainConfig) -> list[str]:
    """The weights folders the CNN starts from: none, one, or several to average (TrainConfig.init)."""
    return [cfg.init] if isinstance(cfg.init, str) else list(cfg.init or ())


def _cnn_record(folder: str) -> dict:
    """Where a CNN of a soup came from: its folder, version, best validation and the command that trained it."""
    m = detectors.Detectors.load(folder).meta
    return {"folder": str(folder), "version": m.get("version"), "cnn_best_val_auc": m.get("cnn_best_val_auc"),
            "cnn_steps": m.get("cnn_steps"), "command": m.get("cnn_command", m.get("command"))}


def _seconds_per_face(split: Split, seed: int, n: int = 4) -> float:
    """A held-out face's feature cost on this machine now (real + fake, timed on a few, with some
    margin), or SECONDS_PER_HELDOUT_FACE if larger: a busy machine must not push the run past its budget."""
    zero = lambda names: detectors.Linear(names, [0.0] * len(names), [1.0] * len(names), [0.0] * len(names), 0.0)  # noqa: E731
    blank = detectors.Detectors(detectors.FaceCNN(), zero([f"r{i + 1}" for i in range(detectors.FOURIER_SIZE // 2)]),
                             zero(scan.FUSION_FEATURES), detectors.Platt(1.0, 0.0))
    faces = (split.calib + split.fusion)[:n]
    t = time.monotonic()
    features(blank, faces, np.random.default_rng(seed + 1), "timing")  # its own generator: the run's draws stay as they were
    return max(SECONDS_PER_HELDOUT_FACE, 1.3 * (time.monotonic() - t) / max(len(faces), 1))


def _version(folder: Path) -> str:
    """detect- and a digest of the CNN file (and of the mouth and partner CNNs', when there are)."""
    files = [folder / f for f in (detectors.CNN_FILE, detectors.MOUTH_FILE, detectors.PARTNER_FILE)]
    data = b"".join(f.read_bytes() for f in files if f.is_file())
    digest = hashlib.sha256(data).hexdigest()[:10]
    return f"detect-{digest}"


def _meta(cfg: TrainConfig, split: Split, losses: list, val: dict, command: str, seconds: float, t_gather: float) -> dict:
    groups = lambda faces: sorted({f.group for f in faces})  # noqa: E731
    sample_train = split.train[:len(split.train) - split.corpus.get("train", 0)]  # corpus faces come last
    return {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command, "config": json.loads(json.dumps(asdict(cfg))),
            "data": {"train_faces": len(split.train), "train_groups": groups(sample_train),
                     "corpus_identities": dict(split.corpus),
                     "fusion_faces": len(split.fusion), "fusion_groups": groups(split.fusion),
                     "calib_faces": len(split.calib), "calib_groups": groups(split.calib),
                     "fake_faces": {part: dict(collections.Counter(f.kind for f in faces))
                                    for part, faces in (("train", split.train_fakes), ("fusion", split.fusion_fakes),
                                                        ("calibration", split.calib_fakes))},
                     "fake_groups": groups(split.train_fakes + split.fusion_fakes + split.calib_fakes)},
            "cnn_steps": len(losses), "cnn_final_loss": round(float(np.mean(losses[-50:])), 4) if np.isfinite(losses).all() else None,
            "cnn_params": int(sum(p.numel() for p in detectors.FaceCNN(cfg.cnn).parameters())),
            "seconds": round(seconds, 1), "gather_seconds": round(t_gather, 1), "validation": val,
            "torch_threads": torch.get_num_threads()}
