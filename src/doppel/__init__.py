"""doppel: make and detect face-swap and lip-sync deepfakes, labelled as synthetic.

For research, detection datasets, forensic analysis and consented VFX work.
"""
__version__ = "0.1.0"
