"""Face detection, landmarks, alignment, masks and blending."""
