"""Real faces for training the detectors, gathered from the sample media; fakes made from them.

Each face is kept as a *context* window (CONTEXT pixels, the face small in the
middle) together with the same window of the previous video frame, so the
temporal cues can be computed on training samples exactly as on a scanned
video. data/deepfake/ is never read here: it is the held-out evaluation pair.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import media
from ..faces import align, finder
from . import cues, sbi

log = logging.getLogger(__name__)

CONTEXT = 256  # side of the stored context window
CONTEXT_COVERAGE = 0.3  # the landmark box spans this fraction of the context window
# a reenactment blend's donor lies at least this many places from the face in its group's list: clips keep
# every 2nd frame, so 10 frames (0.4 s) on, when the mouth has moved
REENACT_GAP = 5


@dataclass
class RealFace:
    image: np.ndarray  # (CONTEXT, CONTEXT, 3) uint8 RGB context window
    landmarks: np.ndarray  # (68, 2) in context pixels
    group: str  # identity or clip: splits never share a group
    prev_image: np.ndarray | None = None  # previous video frame, warped by the same matrix
    prev_landmarks: np.ndarray | None = None  # its landmarks in context pixels
    kind: str = "real"  # "real", or the manipulation of a fake taken from a video ("swap", "lipsync")


def _context(frame: np.ndarray, landmarks: np.ndarray, prev: np.ndarray | None = None,
             prev_lm: np.ndarray | None = None, group: str = "") -> RealFace:
    m = align.align_matrix(landmarks, CONTEXT, CONTEXT_COVERAGE)
    img = align.crop(frame, m, CONTEXT)
    if prev is None:
        return RealFace(img, align.transform_points(landmarks, m), group)
    return RealFace(img, align.transform_points(landmarks, m), group,
                    align.crop(prev, m, CONTEXT), align.transform_points(prev_lm, m))


def faces_from_images(paths: list[Path], group_of, side: int | None = None) -> list[RealFace]:
    """The largest face of each image file (files without a face are skipped); `side` as in faces_from_video."""
    out = []
    for p in tqdm(paths, desc="photos", unit="img", leave=False):
        img = media.read_image(p)
        found = finder.find_faces(img)
        if found:
            out.append(_context(img, found[0].landmarks, group=group_of(p)))
            out[-1] = centre(out[-1], side) if side else out[-1]
    return out


def faces_from_video(path: Path, every: int, limit: int, with_prev: bool = True, side: int | None = None) -> list[RealFace]:
    """Up to `limit` faces from every `every`-th frame of a video.

    With `with_prev` each keeps its previous frame (for the temporal cues); `side`
    keeps only the central part of the context window (see `centre`), to save memory.
    """
    out, prev = [], None
    for fr in media.iter_frames(path):
        if fr.index % every == 0 and prev is not None:
            found = finder.find_faces(fr.image)
            if found:
                lm = found[0].landmarks
                if with_prev:
                    out.append(_context(fr.image, lm, prev, finder.landmarks68(prev, found[0].box), group=path.stem))
                else:
                    out.append(_context(fr.image, lm, group=path.stem))
                out[-1] = centre(out[-1], side) if side else out[-1]
            if len(out) >= limit:
                break
        prev = fr.image
    return out


def videos(data_dir: Path) -> list[Path]:
    """Every real video clip of the sample media (talking/ and video/), sorted."""
    return sorted(p for sub in ("talking", "video") for p in (Path(data_dir) / sub).glob("*.mp4"))


def photos(data_dir: Path, per_person: int) -> list[Path]:
    """Up to `per_person` LFW photos of each person, plus images/."""
    out = sorted((Path(data_dir) / "images").glob("*.*"))
    for person in sorted((Path(data_dir) / "faces" / "lfw").iterdir()):
        out += sorted(person.glob("*.jpg"))[:per_person]
    return [p for p in out if media.is_image_path(p)]


def photo_group(path: Path) -> str:
    return path.parent.name if path.parent.parent.name == "lfw" else path.stem


def window(face: RealFace, image: np.ndarray | None = None, prev: bool = False) -> cues.Window:
    """The cue window of a context face (or of `image` drawn at its landmarks)."""
    lm = face.prev_landmarks if prev else face.landmarks
    img = image if image is not None else (face.prev_image if prev else face.image)
    return cues.face_window(img, lm)


def make_fake(face: RealFace, donors: list[RealFace], rng: np.random.Generator,
              xray_share: float = 0.3, own_prev: float = 0.3, same: RealFace | None = None,
              reenact_share: float = 0.0, part_share: float | None = None,
              bank: list | None = None, gen_share: float = 0.0) -> tuple[np.ndarray, np.ndarray | None]:
    """A fake of `face` (and of its previous frame): SBI, an X-ray blend from a donor or, with
    probability `reenact_share` when `same` is another face of the person (same_person), a
    reenactment blend (its mouth or lower face); with probability `gen_share` of the rest, given a
    `bank` of simulate.Simulator, a generated blend (sbi.generated_blend, one simulator drawn). SBI, X-ray
    and generated blends go through a part mask with probability `part_share` (None: sbi.PART_SHARE),
    else through a face shape.

    Mostly the previous frame gets the same blend parameters (a steady fake);
    `own_prev` of the time its own (a fake that flickers, as per-frame swaps do).
    """
    # no draw at all without the option or a donor: such runs keep their batches
    reenact = same if reenact_share and same is not None and rng.random() < reenact_share else None
    seed = int(rng.integers(2 ** 31))
    sim = bank[int(rng.integers(len(bank)))] if bank and gen_share and reenact is None and rng.random() < gen_share \
        else None  # draws only with the option: runs without it keep their fakes
    use_xray = reenact is None and sim is None and donors and rng.random() < xray_share
    donor = donors[int(rng.integers(len(donors)))] if use_xray else None

    def one(img, lm, s):
        r = np.random.default_rng(s)
        if reenact is not None:
            return sbi.reenact_blend(img, lm, reenact.image, reenact.landmarks, r)
        if sim is not None:
            return sbi.generated_blend(img, lm, sim.redraw, r, part_share)
        if donor:
            return sbi.xray_blend(img, lm, donor.image, donor.landmarks, r, part_share)
        return sbi.self_blend(img, lm, r, part_share)

    fake = one(face.image, face.landmarks, seed)
    if face.prev_image is None:
        return fake, None
    prev_seed = seed if rng.random() >= own_prev else int(rng.integers(2 ** 31))
    return fake, one(face.prev_image, face.prev_landmarks, prev_seed)


def by_group(faces: list[RealFace]) -> dict[str, list[int]]:
    """Indices of `faces` by group (identity or clip), in order."""
    out: dict[str, list[int]] = {}
    for i, f in enumerate(faces):
        out.setdefault(f.group, []).append(i)
    return out


def same_person(faces: list[RealFace], groups: dict[str, list[int]], i: int, rng: np.random.Generator,
                gap: int = REENACT_GAP, tries: int = 4) -> RealFace | None:
    """One other face of face i's group at least `gap` places from it (another frame of its clip, another
    photo of its person), or None when a few draws find none (one-photo identities)."""
    g = groups.get(faces[i].group, [])
    for _ in range(tries if len(g) > 1 else 0):
        j = g[int(rng.integers(len(g)))]
        if abs(j - i) >= gap:
            return faces[j]
    return None


def centre(face: RealFace, side: int) -> RealFace:
    """The central `side` pixels of a context face (cheaper blends for CNN training), no previous frame."""
    o = (face.image.shape[0] - side) // 2
    return RealFace(face.image[o:o + side, o:o + side], face.landmarks - o, face.group, kind=face.kind)



# --- the corpus (../shared/data/corpus): thousands of real identities, one photo each, split by identity

CORPUS_SETS = ("lfw", "utkface")  # corpus folders of roughly aligned face photos
CORPUS_PARTS = {"train": range(0, 80), "fusion": range(80, 90), "test": range(90, 100)}  # identity hash buckets
# prior face boxes (fractions of width, height) of the aligned corpus photos: the landmarks are fitted
# in them and refitted in the box they give, instead of running HOG (~8x the cost); on 30 random
# photos this agreed with HOG's landmarks to a median 0.7% of the face width
PRIOR_BOX = {"lfw": (0.3, 0.3, 0.7, 0.75), "utkface": (0.15, 0.2, 0.85, 0.9)}
SAMPLE_PEOPLE = ("Colin_Powell", "Donald_Rumsfeld", "George_W_Bush", "Gerhard_Schroeder", "Tony_Blair")
CACHE_VERSION = 1  # bump when what is cached changes


def corpus_identity(path: Path) -> str:
    """The identity of a corpus photo: the LFW name (file stem without _NNNN), or the UTKFace file name
    (mostly one photo a person there)."""
    return path.stem.rsplit("_", 1)[0] if path.parent.name == "lfw" else f"utk_{path.name.split('.')[0]}"


def corpus_part(identity: str) -> str:
    """train, fusion or test, by a stable hash of the identity; the sample media's five LFW people
    (trained on from faces/lfw) are always train."""
    if identity in SAMPLE_PEOPLE:
        return "train"
    bucket = int(hashlib.sha1(identity.encode()).hexdigest()[:8], 16) % 100
    return next(p for p, r in CORPUS_PARTS.items() if bucket in r)


def corpus_photos(data_dir: Path, part: str, limit: int) -> list[Path]:
    """Up to `limit` corpus photos of `part`'s identities, taken alternately from each set (sorted)."""
    per_set = [[p for p in sorted((Path(data_dir) / "corpus" / s).glob("*.jpg")) if corpus_part(corpus_identity(p)) == part]
               for s in CORPUS_SETS]
    mixed = [p for group in itertools.zip_longest(*per_set) for p in group if p is not None]
    return mixed[:limit]


def corpus_faces(paths: list[Path], side: int | None = None) -> list[RealFace]:
    """Faces of corpus photos (group: the identity), landmarks fitted in the set's prior box; photos
    whose landmark box is implausibly small or off-centre are dropped."""
    out = []
    for p in tqdm(paths, desc="corpus", unit="img", leave=False):
        img = media.read_image(p)
        h, w = img.shape[:2]
        box = np.array(PRIOR_BOX[p.parent.name]) * [w, h, w, h]
        lm = finder.landmarks68(img, box)
        lm = finder.landmarks68(img, finder.box_from_landmarks(lm))
        size, centre_off = np.ptp(lm, 0), np.abs(lm.mean(0) - [w / 2, h / 2]) / [w, h]
        if size.min() < 0.2 * min(h, w) or centre_off.max() > 0.2:
            continue
        face = _context(img, lm, group=corpus_identity(p))
        out.append(centre(face, side) if side else face)
    return out


def save_faces(faces: list[RealFace], path: Path) -> None:
    """Faces as one .npz (images stacked; previous frames where every face has one)."""
    prev = bool(faces) and all(f.prev_image is not None for f in faces)
    arrays = {"image": np.stack([f.image for f in faces]), "landmarks": np.stack([f.landmarks for f in faces]),
              "group": np.array([f.group for f in faces]), "kind": np.array([f.kind for f in faces])}
    if prev:
        arrays.update(prev_image=np.stack([f.prev_image for f in faces]),
                      prev_landmarks=np.stack([f.prev_landmarks for f in faces]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with media.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_faces(path: Path) -> list[RealFace]:
    with np.load(path) as z:
        a = {k: z[k] for k in z.files}  # each z[k] reads the file again: once per array
    prev = "prev_image" in a
    return [RealFace(a["image"][i], a["landmarks"][i], str(a["group"][i]),
                     a["prev_image"][i] if prev else None, a["prev_landmarks"][i] if prev else None,
                     str(a["kind"][i])) for i in range(len(a["group"]))]


def cached(cache_dir: str | Path | None, key: dict, make) -> list[RealFace]:
    """`make()`'s faces, kept in `cache_dir` (none: not kept) under a hash of `key`, so a second run
    with the same data and settings skips finding faces."""
    if not cache_dir:
        return make()
    name = hashlib.sha1(json.dumps({**key, "v": CACHE_VERSION}, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"faces-{name}.npz"
    if path.is_file():
        log.info("faces from the cache %s", path)
        return load_faces(path)
    faces = make()
    if faces:
        save_faces(faces, path)
    return faces
