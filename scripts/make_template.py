"""Make src/doppel/data/landmark_template.json: the mean 68-point face of real faces.

Landmarks come from dlib (HOG box + 68-point model) on the LFW photos and on
every 5th frame of the talking clips in ../shared/data. Shapes are brought to a
common frame by generalized Procrustes (similarity, Umeyama), averaged, and the
mean is scaled so its bounding box fills [0, 1] with its centre at 0.5.

    python scripts/make_template.py [--data ../shared/data] [--per-person 40]
"""
import argparse
import json
from pathlib import Path

import numpy as np

from doppel import media
from doppel.faces import finder
from doppel.faces.align import umeyama


def collect(data: Path, per_person: int) -> list[np.ndarray]:
    shapes = []
    for person in sorted((data / "faces" / "lfw").iterdir()):
        for f in media.image_files(person)[:per_person]:
            faces = finder.find_faces(media.read_image(f))
            if len(faces) >= 1:
                shapes.append(faces[0].landmarks)
    for clip in sorted((data / "talking").glob("*.mp4")):
        for fr in media.iter_frames(clip, step=5):
            faces = finder.find_faces(fr.image)
            if len(faces) == 1:
                shapes.append(faces[0].landmarks)
    return shapes


def procrustes_mean(shapes: list[np.ndarray], iters: int = 10) -> np.ndarray:
    mean = shapes[0] - shapes[0].mean(0)
    for _ in range(iters):
        aligned = []
        for s in shapes:
            t = umeyama(s, mean)
            aligned.append(s @ t[:2, :2].T + t[:2, 2])
        new = np.mean(aligned, 0)
        new = (new - new.mean(0)) / np.linalg.norm(new - new.mean(0))
        if np.abs(new - mean).max() < 1e-9:
            break
        mean = new
    return mean


def normalise(mean: np.ndarray) -> np.ndarray:
    lo, hi = mean.min(0), mean.max(0)
    side = (hi - lo).max()
    return (mean - (lo + hi) / 2) / side + 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    ap.add_argument("--per-person", type=int, default=40)
    ap.add_argument("-o", "--output", type=Path,
                    default=Path(__file__).resolve().parents[1] / "src" / "doppel" / "data" / "landmark_template.json")
    args = ap.parse_args()
    shapes = collect(args.data, args.per_person)
    tmpl = normalise(procrustes_mean(shapes))
    args.output.write_text(json.dumps({
        "description": "mean 68-point face (iBUG order), x right, y down, bounding box in [0,1]",
        "made_by": "python scripts/make_template.py",
        "faces": len(shapes),
        "points": np.round(tmpl, 5).tolist(),
    }, indent=1))
    print(f"template from {len(shapes)} faces -> {args.output}")


if __name__ == "__main__":
    main()
