"""Lip sync from audio after "Synthesizing Obama" (Suwajanakorn et al. 2017).

audio features -> LSTM -> mouth shape (PCA of 20 lip landmarks) -> mouth
texture from the target's own frames -> composite into the target video.
"""
