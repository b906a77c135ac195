"""doppel detect: visible cues, learned detectors, calibrated verdict and report for manipulated video."""
