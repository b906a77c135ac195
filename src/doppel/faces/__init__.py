"""Finding faces (finder), landmarks, alignment, masks and blending."""
