"""Speech features: shape, rate, timing and standardisation on planted and real audio."""
import math
import os
import shutil
import subprocess

import numpy as np
import pytest
from scipy.io import wavfile

from doppel import audio
from doppel.errors import DoppelError


def _wav(path, samples, rate=audio.SAMPLE_RATE):
    wavfile.write(path, rate, (np.clip(samples, -1, 1) * 32767).astype(np.int16))
    return path


def _tone(seconds, rate=audio.SAMPLE_RATE, freq=440.0, amp=0.3):
    t = np.arange(int(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def test_tone_features_shape_rate_and_standardisation(tmp_path):
    feats = audio.features(_wav(tmp_path / "tone.wav", _tone(2.5)))
    assert feats.shape == (250, audio.N_FEATURES) == (250, 28)
    assert feats.dtype == np.float32
    varying = feats.std(0) > 0.5
    assert np.allclose(feats.mean(0), 0, atol=1e-4)
    assert np.allclose(feats.std(0)[varying], 1, atol=1e-3)


def test_rate_follows_source_sample_rate(tmp_path):
    """A 44.1 kHz file is resampled: 1.7 s gives 170 frames whatever the input rate."""
    feats = audio.features(_wav(tmp_path / "t44.wav", _tone(1.7, 44100), 44100))
    assert feats.shape[0] == 170


def test_energy_marks_the_planted_silence_at_the_right_frames(tmp_path):
    x = _tone(3.0)
    x[int(1.0 * audio.SAMPLE_RATE):int(2.0 * audio.SAMPLE_RATE)] = 0  # silent from 1 s to 2 s
    samples = audio.normalise_loudness(x.astype(np.float32))
    _, energy = audio.mfcc(samples)
    loud = energy > (energy.max() + energy.min()) / 2
    # frame t is centred on t * 10 ms; the 25 ms window reaches 12.5 ms either side
    assert loud[:98].all() and not loud[102:198].any() and loud[202:].all()


def test_tone_is_stationary_and_differs_from_noise():
    tone = audio.normalise_loudness(_tone(1.0).astype(np.float32))
    noise = audio.normalise_loudness(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))
    ct, _ = audio.mfcc(tone)
    cn, _ = audio.mfcc(noise)
    # a steady tone's cepstrum varies frame to frame far less than it differs from noise
    spread = ct[5:-5].std(0) + cn[5:-5].std(0)
    gap = np.abs(ct[5:-5].mean(0) - cn[5:-5].mean(0))
    assert gap[0] > 5 * spread[0] and np.median(gap / spread) > 2


def test_mel_filterbank_rises_in_frequency():
    fb = audio.mel_filterbank()
    assert fb.shape == (audio.N_MELS, audio.N_FFT // 2 + 1)
    peaks = fb.argmax(1)
    assert (np.diff(peaks) >= 0).all() and fb.max() <= 1.0 + 1e-6


def test_loudness_normalised_level():
    quiet = audio.normalise_loudness((0.01 * _tone(1.0)).astype(np.float32))
    assert abs(audio.loud_level_dbfs(quiet) - audio.TARGET_DBFS) < 0.5


def test_espeak_sentence(tmp_path):
    if shutil.which("espeak-ng") is None:
        # `make setup` installs it as root, so under CI (CI=true) a missing espeak-ng is a broken setup
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("espeak-ng is not installed but CI is set: `make sysdeps` should have installed it")
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng); CI=true makes this a failure")
    wav = tmp_path / "s.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "The quick brown fox jumps over the lazy dog."], check=True)
    rate, raw = wavfile.read(wav)
    feats = audio.features(wav)
    assert feats.shape == (math.ceil(len(raw) / rate * audio.FPS), 28)
    energy = feats[:, 13]
    assert energy.std() > 0.9  # speech has pauses and loud parts
    assert np.abs(feats[:, 14:]).mean() > 0.3  # deltas move in speech


def test_features_of_a_video_file(data_dir):
    path = data_dir / "talking" / "retalking_face_5.mp4"
    feats = audio.features(path)
    assert abs(feats.shape[0] - 488) <= 3  # 4.88 s at 100 fps


def test_silent_empty_and_unreadable_audio_are_refused(tmp_path):
    with pytest.raises(DoppelError, match="silent"):
        audio.features(_wav(tmp_path / "silent.wav", np.zeros(16000)))
    with pytest.raises(DoppelError, match="long"):
        audio.features(_wav(tmp_path / "short.wav", _tone(0.05)))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(DoppelError):
        audio.features(bad)
