"""Lip-sync accuracy, audio-video offset and speed on the sample talking clips.

Trains the audio-to-mouth LSTM on some talking clips, then on a clip left out
of training predicts its mouth landmarks from its audio alone and compares
them with the tracked ones, beside two baselines measured in the same run:
  - mean shape: the speaker's mean mouth, not moving;
  - loudness: mouth shape linearly regressed on log energy (fitted on the
    training clips), i.e. the mouth opens when the audio is loud.
Then it lip-syncs the held-out video to other speech, tracks the output and
measures the audio-video offset (lag of best correlation between mouth opening
and audio energy; the same is measured on the real clip for reference), and
the speed (seconds of output video per second of compute).

    python benchmarks/lipsync_eval.py               # about 4 minutes
    python benchmarks/lipsync_eval.py --minutes 1   # shorter training
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from doppel import audio, media
from doppel.lipsync import footage, model, shapes, synth, train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TALKING = ["retalking_face_1.mp4", "retalking_face_2.mp4", "retalking_face_3.mp4", "retalking_face_4.mp4",
           "retalking_face_5.mp4", "hdtf_WDA_AlexandriaOcasioCortez_000.mp4"]
EXTRA = [DATA / "video" / "driving_d20.mp4"]  # the one driving clip with speech
MAX_LAG = 8  # video frames searched either side for the audio-video offset
MODEL_LAG = 30  # 10 ms frames searched either side for the model's own timing


def mouth_metrics(pred: np.ndarray, real: np.ndarray, mean: np.ndarray) -> tuple[float, float]:
    """(landmark distance over mouth width, opening correlation) of centred shape vectors (T, 40)."""
    p, r = shapes.unflat(pred + mean), shapes.unflat(real + mean)
    width = shapes.mouth_width(mean[None].reshape(1, -1, 2))[0]
    dist = float(np.linalg.norm(p - r, axis=2).mean() / width)
    op, orr = shapes.mouth_opening(p), shapes.mouth_opening(r)
    corr = float(np.corrcoef(op, orr)[0, 1]) if op.std() > 1e-9 else float("nan")
    return dist, corr


def loudness_baseline(clips: list[train.Clip]):
    """Least-squares map from [log energy, 1] to the centred shape, fitted on training clips."""
    x = np.concatenate([np.c_[c.features[:, 13], np.ones(len(c.features))] for c in clips])
    y = np.concatenate([c.shapes for c in clips])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return lambda feats: np.c_[feats[:, 13], np.ones(len(feats))] @ coef


def best_lag(opening: np.ndarray, energy: np.ndarray, max_lag: int = MAX_LAG) -> tuple[int, float]:
    """Lag (frames, > 0: the mouth moves after the sound) maximising corr(opening[t], energy[t - lag])."""
    best = (0, -2.0)
    for lag in range(-max_lag, max_lag + 1):
        a = opening[max(lag, 0): len(opening) + min(lag, 0)]
        b = energy[max(-lag, 0): len(energy) - max(lag, 0)]
        n = min(len(a), len(b))
        c = float(np.corrcoef(a[:n], b[:n])[0, 1])
        best = max(best, (lag, c), key=lambda t: t[1])
    return best


def tracked_opening(video: Path) -> np.ndarray:
    """Inner-lip gap (N,) per frame of a video, tracked afresh."""
    footage.clear_cache()
    return shapes.mouth_opening(shapes.mouth_shapes(footage.load(video).landmarks))


def av_offset(video: Path) -> tuple[int, float]:
    """Audio-video offset of a video file from its tracked mouth and its own audio."""
    opening = tracked_opening(video)
    foot = footage.load(video)
    sound = media.read_audio(video, audio.SAMPLE_RATE)
    hop = audio.SAMPLE_RATE / foot.fps
    # one frame's worth of audio centred on each frame's time
    rms = np.array([np.sqrt(np.mean(sound[max(0, int((i - 0.5) * hop)):int((i + 0.5) * hop)] ** 2) + 1e-12)
                    for i in range(len(opening))])
    return best_lag(opening, np.log(rms))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=2.0, help="training time cap per held-out clip")
    ap.add_argument("--steps", type=int, default=400, help="training steps per held-out clip")
    ap.add_argument("--holdout", nargs="+", default=["retalking_face_3.mp4", "retalking_face_1.mp4"],
                    help="talking clips left out of training, one model each (face_3's speaker also speaks "
                         "in the hdtf clip: the paper's same-speaker setting; face_1's speaker is unseen)")
    ap.add_argument("--speech", help="speech to sync onto the first held-out clip (default: its own audio)")
    ap.add_argument("--sync-seconds", type=float, default=30.0, help="at most this much of --speech")
    ap.add_argument("--texture", default="median", choices=["median", "autoencoder"])
    ap.add_argument("--train-clips", type=int, default=None,
                    help="train on (and take the real-clip offsets of) only the first N other clips (smoke runs)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        for k, name in enumerate(args.holdout):
            lip = evaluate_fold(name, args, Path(tmp))
            if k == 0:
                held = DATA / "talking" / name
                speech = cut_audio(Path(args.speech), args.sync_seconds, Path(tmp)) if args.speech else held
                report_synthesis(held, speech, lip, Path(tmp), args.texture, args.train_clips)


def evaluate_fold(name: str, args, tmp: Path) -> Path:
    """Train without clip `name`, print its accuracy table; returns the model file."""
    held = DATA / "talking" / name
    videos = [str(p) for p in others(name)[: args.train_clips]]
    clips = [train.load_clip(v) for v in videos]
    print(f"\n=== held out {name}; training on {len(clips)} clips "
          f"({sum(len(c.features) for c in clips) / 100:.0f} s of speech)")
    lip = tmp / f"{Path(name).stem}.lip"
    t0 = time.monotonic()
    ck = train.train(videos, lip, train.TrainConfig(steps=args.steps, minutes=args.minutes))
    print(f"trained {ck.step} steps in {time.monotonic() - t0:.0f} s, training loss {ck.meta['loss']:.3f}")
    report_accuracy(ck, clips, train.load_clip(held))
    return lip


def others(name: str | None = None) -> list[Path]:
    """Every talking clip but `name`, then the extra clip with speech."""
    return [DATA / "talking" / n for n in TALKING if n != name] + EXTRA


def cut_audio(path: Path, seconds: float, tmp: Path) -> Path:
    """The first `seconds` of an audio file as a 16 kHz WAV in tmp."""
    from scipy.io import wavfile
    x = media.read_audio(path, audio.SAMPLE_RATE)[: int(seconds * audio.SAMPLE_RATE)]
    out = tmp / f"{path.stem}_{seconds:g}s.wav"
    wavfile.write(out, audio.SAMPLE_RATE, (x * 32767).astype(np.int16))
    return out


def report_accuracy(ck: model.Checkpoint, clips: list[train.Clip], test: train.Clip) -> None:
    rows = {
        "LSTM (audio -> mouth)": synth.predict_shapes(ck, test.features, synth.LipsyncConfig().shape_smooth),
        "baseline: mean shape": np.zeros_like(test.shapes),
        "baseline: loudness": loudness_baseline(clips)(test.features),
    }
    res = {k: mouth_metrics(v, test.shapes, test.mean) for k, v in rows.items()}
    print(f"\nheld-out {test.name}: {len(test.features) / 100:.1f} s")
    print(f"{'predictor':26s} {'landmark dist / mouth width':>28s} {'opening corr':>13s}")
    for k, (d, c) in res.items():
        print(f"{k:26s} {d:28.4f} {'n/a' if np.isnan(c) else f'{c:.3f}':>13s}")
    lstm, mean, loud = res["LSTM (audio -> mouth)"], res["baseline: mean shape"], res["baseline: loudness"]
    print(f"distance ratio LSTM / mean shape: {lstm[0] / mean[0]:.3f}; LSTM / loudness: {lstm[0] / loud[0]:.3f}")
    print(f"opening correlation LSTM - loudness: {lstm[1] - loud[1]:+.3f}")
    op = [shapes.mouth_opening(shapes.unflat(v + test.mean)) for v in (rows["LSTM (audio -> mouth)"], test.shapes)]
    lag, c = best_lag(op[0], op[1], MODEL_LAG)
    print(f"model timing: predicted vs real opening best aligned at {lag * 10:+d} ms (corr {c:.3f})")


def report_synthesis(held: Path, speech: Path, lip: Path, tmp: Path, texture: str, n_real: int | None = None) -> None:
    out = tmp / "synced.mp4"
    r = synth.lipsync(held, speech, lip, out, synth.LipsyncConfig(texture=texture))
    lag, corr = av_offset(out)
    wanted = shapes.mouth_opening(shapes.unflat(r["mouths"]))
    got = tracked_opening(out)
    n = min(len(wanted), len(got))
    pipe_lag, pipe_corr = best_lag(got[:n], wanted[:n])
    real_lag, real_corr = av_offset(held)
    fps = r["fps"]
    print(f"\n=== lip sync of {held.name} to {speech.name}")
    print("audio-video offset (lag of best corr of mouth opening and audio energy, +: mouth late)")
    print(f"  lip-synced output ({held.name} + {speech.name}): {lag:+d} frames ({lag / fps * 1000:+.0f} ms), "
          f"corr {corr:.3f}")
    print(f"  real clip {held.name} with its own audio:      {real_lag:+d} frames ({real_lag / fps * 1000:+.0f} ms), "
          f"corr {real_corr:.3f}")
    real = [av_offset(p)[0] for p in others()[:n_real]]
    print(f"  real clips with their own audio, same estimator: {' '.join(f'{v:+d}' for v in real)} frames "
          f"(median {np.median(real):+.0f}): real speech is not at zero on this measure")
    print(f"pipeline lag (output's tracked opening vs the opening the model asked for): {pipe_lag:+d} frames, "
          f"corr {pipe_corr:.3f}")
    print(f"speed: {r['seconds']:.1f} s of video in {r['compute_s']:.1f} s = {r['speed']:.2f} s of video per s "
          f"of compute (texture {texture}, {r['frames']} frames at {fps:g} fps; includes tracking the target)")


if __name__ == "__main__":
    main()
