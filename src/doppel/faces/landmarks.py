"""The 68-point landmark layout (iBUG 300-W, as dlib's shape_predictor_68 marks it), named once.

Each region is a read-only int array of 0-based indices into a (68, 2) landmark
array, so `landmarks[MOUTH]` is (20, 2). Left and right are the person's own:
RIGHT_EYE (36-41) is the eye on the image's left in a frontal photo. JAW, BROWS,
NOSE, EYES and MOUTH partition 0..67 (see REGIONS); the other names are parts or
unions of them that the stages use.
"""
from __future__ import annotations

import numpy as np


def _indices(*ranges: tuple[int, int]) -> np.ndarray:
    out = np.concatenate([np.arange(a, b) for a, b in ranges])
    out.setflags(write=False)  # shared by every module: an in-place edit would corrupt them all
    return out


N_POINTS = 68

JAW = _indices((0, 17))  # face outline from the right ear (0) over the chin (8) to the left ear (16)
LOWER_JAW = _indices((3, 14))  # the jaw from below the right ear to below the left ear
CHIN = 8  # the jaw's lowest point

RIGHT_BROW = _indices((17, 22))
LEFT_BROW = _indices((22, 27))
BROWS = _indices((17, 27))

NOSE_BRIDGE = _indices((27, 31))  # between the eyes (27) down to the nose tip (30)
NOSE_BASE = _indices((31, 36))  # the nose's lower edge, one nostril (31) through the middle (33) to the other (35)
NOSE = _indices((27, 36))

RIGHT_EYE = _indices((36, 42))  # outer corner 36, inner corner 39; 37-38 upper lid, 40-41 lower lid
LEFT_EYE = _indices((42, 48))  # inner corner 42, outer corner 45; 43-44 upper lid, 46-47 lower lid
EYES = _indices((36, 48))

OUTER_LIP = _indices((48, 60))  # right mouth corner 48, the upper lip to the left corner 54, back along the lower
INNER_LIP = _indices((60, 68))  # the lips' inner edge (the mouth opening): top middle 62, bottom middle 66
MOUTH = _indices((48, 68))  # both lip contours

CENTRAL = _indices((27, 48))  # nose and eyes: barely move with speech, and are the part a swap replaces
INNER_FACE = _indices((17, 68))  # everything but the jaw line, which moves with speech

# The lip contours as positions within MOUTH, for (20, 2) mouth shapes (lipsync) cut out of a (68, 2) array.
OUTER_LIP_IN_MOUTH = _indices((0, 12))
INNER_LIP_IN_MOUTH = _indices((12, 20))

REGIONS: dict[str, np.ndarray] = {"jaw": JAW, "brows": BROWS, "nose": NOSE, "eyes": EYES, "mouth": MOUTH}
