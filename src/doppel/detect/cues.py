"""Visible cues of a manipulated face: one number per face per frame.

Every cue is computed on a *face window*: the frame warped by a similarity
transform (faces/align) so that the face is upright and its 68-landmark box
spans WINDOW_COVERAGE of a WINDOW-pixel square, which leaves the face's
surroundings (hair, neck, background) in view. Larger values are always the
more suspicious direction. docs/detect.md defines each cue in words.

Images are (H, W, 3) uint8 RGB unless stated; landmarks are (68, 2) float64
pixel coordinates in the iBUG-300W order.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..faces import align, blend
from ..faces.landmarks import BROWS, CENTRAL, EYES, LEFT_EYE, MOUTH, NOSE, OUTER_LIP, RIGHT_EYE
from ..faces.mask import fill_hull

WINDOW = 160  # side of the face window in pixels
WINDOW_COVERAGE = 0.45  # the landmark box spans this fraction of the window side
EPS = 1e-6

RIGID = np.concatenate([BROWS, NOSE, EYES])  # points that do not move with speech

# name -> plain-language meaning (the report and docs use these words)
CUES: dict[str, str] = {
    "blur": "face blurrier than its surroundings (Laplacian variance, log ratio ring/face)",
    "hf_deficit": "face has less high-frequency spectral energy than its surroundings",
    "tone_step": "skin-tone step at the face edge (CIE76 Delta E, inner vs outer band)",
    "double_edge": "duplicated parallel edges in a band around the face boundary",
    "flicker": "face changes more frame to frame than the background (head motion removed)",
    "occlusion_flicker": "one part of the face flickers much more than the rest",
    "landmark_jitter": "non-rigid landmark motion between adjacent frames (brows, eyes, nose)",
    "pose_mismatch": "pose from all landmarks disagrees with pose from the central face",
    "eye_aspect_ratio": "eye opening (low = closed); blinks are counted per video",
    "mouth_blur": "mouth blurrier than the rest of the face, the lip-sync tell (Laplacian variance, log ratio "
                  "face/mouth)",
    "mouth_open": "gap between the inner lips / distance between the eye centres; how far it swings while "
                  "there is speech is the articulation check",
}
NOT_FUSED = ("eye_aspect_ratio", "mouth_open")  # reported (blinks, articulation) but no evidence of a fake by itself
FUSED = tuple(name for name in CUES if name not in NOT_FUSED)  # the cues the fusion weighs, in this order


@dataclass(frozen=True)
class Window:
    image: np.ndarray  # (WINDOW, WINDOW, 3) uint8 RGB face window
    landmarks: np.ndarray  # (68, 2) landmarks in window pixels
    matrix: np.ndarray  # (2, 3) frame -> window


def face_window(frame: np.ndarray, landmarks: np.ndarray, matrix: np.ndarray | None = None,
                size: int = WINDOW) -> Window:
    """Upright face window of `frame`; `matrix` (2x3) overrides the fit from `landmarks`."""
    m = align.align_matrix(landmarks, size, WINDOW_COVERAGE) if matrix is None else np.asarray(matrix)
    img = align.crop(frame, m, size)
    return Window(img, align.transform_points(landmarks, m), m)


def gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float32 luma in [0, 1]."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def face_scale(landmarks: np.ndarray) -> float:
    """Face size in pixels: the diagonal of the landmark box."""
    return float(np.linalg.norm(landmarks.max(0) - landmarks.min(0)))


hull_mask = fill_hull  # (H, W) uint8 {0, 1} filled convex hull of the landmarks


def morph(mask: np.ndarray, radius: int, grow: bool) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask, k) if grow else cv2.erode(mask, k)


def region_masks(landmarks: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boolean masks around the landmark hull: face (well inside), inner/outer bands, ring.

    Band width is 5% of the face size; the ring runs from 2 to 5 band widths
    outside the hull.
    """
    hull = hull_mask(landmarks, shape)
    r = max(2, int(round(0.05 * face_scale(landmarks))))
    inner = morph(hull, r, grow=False)
    return {"hull": hull > 0, "face": morph(hull, 2 * r, grow=False) > 0,
            "inner": (hull > 0) & (inner == 0), "outer": (morph(hull, r, True) > 0) & (hull == 0),
            "ring": (morph(hull, 5 * r, True) > 0) & (morph(hull, 2 * r, True) == 0)}


def laplacian_variance(g: np.ndarray, mask: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian (cv2.Laplacian) of luma `g` over boolean `mask`."""
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)
    vals = lap[mask]
    return float(vals.var()) if vals.size > 16 else float("nan")


def blur(win: Window, masks: dict[str, np.ndarray]) -> float:
    """log(Laplacian variance of the ring / that of the face): > 0 when the face is softer."""
    g = gray(win.image)
    return float(np.log((laplacian_variance(g, masks["ring"]) + EPS) / (laplacian_variance(g, masks["face"]) + EPS)))


def mouth_blur(win: Window, masks: dict[str, np.ndarray]) -> float:
    """log(Laplacian variance of the face outside the mouth / that of the lips): > 0 when the mouth is softer
    than the eyes, nose and cheeks (a re-synthesised mouth in a real face)."""
    r = max(2, int(round(0.05 * face_scale(win.landmarks))))
    lips = morph(fill_hull(win.landmarks[OUTER_LIP], win.image.shape[:2]), max(1, r // 2), grow=True)
    rest = masks["face"] & (morph(lips, 2 * r, grow=True) == 0)
    g = gray(win.image)
    return float(np.log((laplacian_variance(g, rest) + EPS) / (laplacian_variance(g, lips > 0) + EPS)))


def hf_share(patch: np.ndarray, cutoff: float = 0.25) -> float:
    """Share of spectral power above `cutoff` cycles/pixel in a Hann-windowed (N, N) float patch."""
    n = patch.shape[0]
    p = (patch - patch.mean()) * np.outer(np.hanning(n), np.hanning(n))
    power = np.abs(np.fft.fftshift(np.fft.fft2(p))) ** 2
    f = np.fft.fftshift(np.fft.fftfreq(n))
    radius = np.hypot(*np.meshgrid(f, f))
    return float(power[radius > cutoff].sum() / (power.sum() + EPS))


def _square(g: np.ndarray, center: np.ndarray, side: int) -> np.ndarray | None:
    x0, y0 = (np.round(center) - side // 2).astype(int)
    if x0 < 0 or y0 < 0 or x0 + side > g.shape[1] or y0 + side > g.shape[0]:
        return None
    return g[y0:y0 + side, x0:x0 + side]


def hf_deficit(win: Window) -> float:
    """log(HF share of patches beside the face / HF share of the cheek-nose patch): > 0 = face softer."""
    g, lm = gray(win.image), win.landmarks
    side = max(8, int(0.25 * face_scale(lm)) // 2 * 2)
    face = _square(g, lm[NOSE].mean(0), side)
    width = lm[:, 0].max() - lm[:, 0].min()
    beside = [_square(g, lm[NOSE].mean(0) + [dx * (0.5 * width + side), 0], side) for dx in (-1, 1)]
    beside = [b for b in beside if b is not None]
    if face is None or not beside:
        return float("nan")
    ring = np.mean([hf_share(b) for b in beside])
    return float(np.log((ring + EPS) / (hf_share(face) + EPS)))


def lab(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W, 3) float32 CIE L*a*b* (L in [0, 100])."""
    return blend.to_lab(image.astype(np.float32) / 255.0)


def tone_step(win: Window, masks: dict[str, np.ndarray], sectors: int = 16) -> float:
    """Delta E (CIE76) between mean Lab of the inner and outer bands, per angular sector.

    Returns the 25th percentile over sectors: a real face meets skin (neck,
    ears, forehead) in at least some sectors, while a pasted face of another
    tone steps everywhere.
    """
    lb = lab(win.image).reshape(-1, 3)
    c = win.landmarks.mean(0)

    def band(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # flat pixel indices and their sectors
        idx = np.flatnonzero(mask)
        yy, xx = np.divmod(idx, mask.shape[1])
        return idx, ((np.arctan2(yy - c[1], xx - c[0]) + np.pi) / (2 * np.pi) * sectors).astype(int) % sectors

    (inner, s_in), (outer, s_out) = band(masks["inner"]), band(masks["outer"])
    steps = []
    for s in range(sectors):
        i, o = inner[s_in == s], outer[s_out == s]
        if len(i) >= 8 and len(o) >= 8:
            steps.append(np.linalg.norm(lb[i].mean(0) - lb[o].mean(0)))
    return float(np.percentile(steps, 25)) if steps else float("nan")


def _boundary(landmarks: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n points evenly along the landmark hull and their outward unit normals."""
    hull = cv2.convexHull(landmarks.astype(np.float32))[:, 0, :].astype(np.float64)
    closed = np.vstack([hull, hull[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    t = np.linspace(0, seg.sum(), n, endpoint=False)
    cum = np.concatenate([[0], np.cumsum(seg)])
    pts = np.stack([np.interp(t, cum, closed[:, k]) for k in range(2)], 1)
    tangent = np.stack([np.interp(t + 1, cum, closed[:, k]) for k in range(2)], 1) - pts
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + EPS
    outward = np.sign(((pts - landmarks.mean(0)) * normal).sum(1, keepdims=True))
    return pts, normal * np.where(outward == 0, 1, outward)


def edge_profiles(win: Window, n: int = 48, half: float = 0.12) -> np.ndarray:
    """(n, L) gradient magnitude sampled along normals across the hull, +-`half` face sizes."""
    g = cv2.GaussianBlur(gray(win.image), (3, 3), 0)
    mag = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    pts, normals = _boundary(win.landmarks, n)
    span = max(4, int(half * face_scale(win.landmarks)))
    offs = np.arange(-span, span + 1, dtype=np.float64)
    xy = pts[:, None, :] + offs[None, :, None] * normals[:, None, :]
    return cv2.remap(mag, xy[..., 0].astype(np.float32), xy[..., 1].astype(np.float32), cv2.INTER_LINEAR)


def double_edge(win: Window, min_gap: int = 3) -> float:
    """Mean over boundary profiles of (second edge peak / first), 0 where only one edge.

    A face pasted slightly off its original leaves two parallel contours
    (double chin, doubled brows); a real boundary has one dominant edge.
    """
    scores = []
    for prof in edge_profiles(win):
        peaks = [i for i in range(1, len(prof) - 1) if prof[i] >= prof[i - 1] and prof[i] > prof[i + 1]]
        peaks = sorted(peaks, key=lambda i: -prof[i])
        top = prof[peaks[0]] if peaks else 0.0
        if top < 0.02:  # a flat profile carries no edge evidence
            continue
        second = [prof[i] for i in peaks[1:] if abs(i - peaks[0]) >= min_gap]
        scores.append(second[0] / top if second and second[0] > 0.3 * top else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


def _mean_absdiff(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.abs(a[mask] - b[mask]).mean()) if mask.any() else float("nan")


def flicker(prev: Window, win: Window, prev_fixed: np.ndarray, masks: dict[str, np.ndarray]) -> float:
    """log((face change + c) / (background change + c)) between adjacent frames, c = 2/255.

    Face change: mean |difference| (RGB, in [0, 1]) of the face region, each frame warped by its
    own landmarks (head motion removed). Background change: the ring, with both
    frames warped by the current frame's matrix (`prev_fixed`), i.e. camera and
    compression noise.
    """
    c = 2.0 / 255
    rgb = lambda im: im.astype(np.float32) / 255.0  # noqa: E731 - colour flicker counts too
    face = _mean_absdiff(rgb(prev.image), rgb(win.image), masks["face"])
    ring = _mean_absdiff(rgb(prev_fixed), rgb(win.image), masks["ring"])
    return float(np.log((face + c) / (ring + c)))


def occlusion_flicker(prev: Window, win: Window, masks: dict[str, np.ndarray], grid: int = 4) -> float:
    """log(largest / median) per-cell face change over the face above the mouth (grid x grid cells).

    When an object covers part of a swapped face the generated face flickers or
    smears locally; a real face above the mouth changes evenly (speech moves
    the mouth and jaw, which are left out).
    """
    d = np.abs(gray(prev.image) - gray(win.image))
    lm = win.landmarks
    x0, y0 = lm.min(0)
    x1, y1 = lm[:, 0].max(), lm[MOUTH][:, 1].min()
    cells = []
    for gy in range(grid):
        for gx in range(grid):
            m = np.zeros(d.shape, bool)
            m[int(y0 + gy * (y1 - y0) / grid):int(y0 + (gy + 1) * (y1 - y0) / grid),
              int(x0 + gx * (x1 - x0) / grid):int(x0 + (gx + 1) * (x1 - x0) / grid)] = True
            m &= masks["hull"]
            if m.sum() >= 16:
                cells.append(d[m].mean())
    if len(cells) < 4:
        return float("nan")
    return float(np.log((np.max(cells) + 1e-3) / (np.median(cells) + 1e-3)))


def normalized(landmarks: np.ndarray, points: np.ndarray = align.FIT_POINTS) -> np.ndarray:
    """Landmarks mapped onto the unit template by a similarity fit on `points`, (68, 2)."""
    m = align.umeyama(landmarks[points], align.template()[points])
    return landmarks @ m[:2, :2].T + m[:2, 2]


def landmark_jitter(prev_landmarks: np.ndarray, landmarks: np.ndarray) -> float:
    """Mean non-rigid motion of brow, eye and nose points between adjacent frames, in % of face size."""
    a, b = normalized(prev_landmarks, RIGID), normalized(landmarks, RIGID)
    return float(100 * np.linalg.norm(a[RIGID] - b[RIGID], axis=1).mean())


def pose_mismatch(landmarks: np.ndarray) -> float:
    """Disagreement (% of face size) of affine poses fitted to all landmarks vs the central face.

    Both 2x3 affine maps template -> image are applied to the template; the mean
    distance between the two results, divided by the face size, is returned.
    A 2-D stand-in for Yang et al. 2019 (3-D head pose from all vs central points).
    """
    t = align.template()
    full, _ = cv2.estimateAffine2D(t, landmarks, method=cv2.LMEDS)
    cen, _ = cv2.estimateAffine2D(t[CENTRAL], landmarks[CENTRAL], method=cv2.LMEDS)
    if full is None or cen is None:
        return float("nan")
    d = align.transform_points(t, full) - align.transform_points(t, cen)
    return float(100 * np.linalg.norm(d, axis=1).mean() / face_scale(landmarks))


def eye_aspect_ratio(landmarks: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes (Soukupova & Cech 2016); ~0.3 open, < 0.2 closed."""
    ears = []
    for e in (landmarks[RIGHT_EYE], landmarks[LEFT_EYE]):
        v = np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4])
        ears.append(v / (2 * np.linalg.norm(e[0] - e[3]) + EPS))
    return float(np.mean(ears))


def face_cues(frame: np.ndarray, landmarks: np.ndarray,
              prev_frame: np.ndarray | None = None, prev_landmarks: np.ndarray | None = None) -> dict[str, float]:
    """Every cue for one face; temporal cues are NaN without the previous frame."""
    win = face_window(frame, landmarks)
    masks = region_masks(win.landmarks, win.image.shape[:2])
    out = {"blur": blur(win, masks), "hf_deficit": hf_deficit(win), "tone_step": tone_step(win, masks),
           "double_edge": double_edge(win), "pose_mismatch": pose_mismatch(landmarks),
           "eye_aspect_ratio": eye_aspect_ratio(landmarks), "mouth_blur": mouth_blur(win, masks),
           "mouth_open": mouth_open(landmarks)}
    nan = float("nan")
    out.update(flicker=nan, occlusion_flicker=nan, landmark_jitter=nan)
    if prev_frame is not None and prev_landmarks is not None:
        prev = face_window(prev_frame, prev_landmarks)
        fixed = align.crop(prev_frame, win.matrix, WINDOW)
        out.update(flicker=flicker(prev, win, fixed, masks), occlusion_flicker=occlusion_flicker(prev, win, masks),
                   landmark_jitter=landmark_jitter(prev_landmarks, landmarks))
    return out


INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # upper and lower inner-lip points facing each other


def mouth_open(landmarks: np.ndarray) -> float:
    """Mean gap of the three facing inner-lip point pairs over the distance between the eye centres."""
    gap = np.mean([np.linalg.norm(landmarks[a] - landmarks[b]) for a, b in INNER_LIP_PAIRS])
    eyes = np.linalg.norm(landmarks[RIGHT_EYE].mean(0) - landmarks[LEFT_EYE].mean(0))
    return float(gap / (eyes + EPS))


def count_blinks(ear: np.ndarray, closed: float = 0.2) -> int:
    """Number of open->closed transitions in a per-frame eye-aspect-ratio series (NaN skipped)."""
    s = np.asarray(ear, np.float64)
    s = s[np.isfinite(s)]
    shut = s < closed
    return int(np.sum(shut[1:] & ~shut[:-1]))
