"""Lip sync of the GRID s1 speaker model on sentences it never saw, against the real video of each.

Reads a LIPMODEL (default: the bundled grid_s1) and the held-out clip names in
its metadata; the other grid_s1 sentences are its training clips. Prints:

1. accuracy: predicted mouth landmarks against the tracked real ones of the
   same held-out sentence (mouth error in mouth widths, inner-lip opening
   correlation), beside, all smoothed the same way (Gaussian, std 20 ms):
   the speaker's mean shape; a loudness baseline (shape regressed on log
   energy on the training clips); the model fed the same audio rolled by half
   its length (shuffled-audio control, metrics.shuffled) and another held-out
   sentence's audio (GRID sentences share their silence-words-silence layout,
   so this control stays partly in step).
2. audio-video offset (metrics.av_offset, pooled over clips): its bias on the
   real held-out clips, the planted offsets it recovers, and the offset of the
   model driving another person's clip (--other) with held-out GRID speech.
3. texture and speed, per texture (median; autoencoder when the model has one):
   each held-out sentence re-synthesised on its own video with its own audio;
   mouth sharpness (detector's Laplacian variance) over the real frames', mouth
   flicker over the real frames', the lower-lip blur tell, the tracked output
   opening's correlation with the real video's (and with shuffled audio), and
   seconds of video per second of compute.

    python benchmarks/lipsync_eval.py --cache /tmp/lipsync_cache            # ~5 min here
    python benchmarks/lipsync_eval.py -m my.lip --clips 4 --other ../shared/data/talking/may_5s.mp4
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.ndimage import gaussian_filter1d

from doppel import audio, media
from doppel.faces import align
from doppel.lipsync import cache, footage, metrics, model, shapes, synth, train
from doppel.lipsync import texture as texmod

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GRID = DATA / "corpus" / "grid_s1"
SMOOTH = synth.LipsyncConfig().shape_smooth
PLANTED = (-4, -2, -1, 1, 2, 4)  # frames of audio shift planted on the real clips


def smooth(v: np.ndarray) -> np.ndarray:
    return gaussian_filter1d(v, SMOOTH, axis=0, mode="nearest")


def loudness_baseline(clips: list[train.Clip]):
    """Least-squares map from [log energy, 1] to the centred shape, fitted on training clips."""
    x = np.concatenate([np.c_[c.features[:, 13], np.ones(len(c.features))] for c in clips])
    y = np.concatenate([c.shapes for c in clips])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return lambda feats: np.c_[feats[:, 13], np.ones(len(feats))] @ coef


def fit_length(feats: np.ndarray, n: int) -> np.ndarray:
    """Features cut or tiled to n frames (for the shuffled-audio control)."""
    return np.resize(feats, (n, feats.shape[1])) if len(feats) < n else feats[:n]


def accuracy(ck: model.Checkpoint, train_clips: list[train.Clip], test: list[train.Clip]) -> None:
    loud = loudness_baseline(train_clips)
    pred = lambda f: ck.pca.decode(model.predict(ck.model, f))  # noqa: E731
    rows = {
        "LSTM (audio -> mouth)": lambda i, c: pred(c.features),
        "baseline: mean shape": lambda i, c: np.zeros_like(c.shapes),
        "baseline: loudness": lambda i, c: loud(c.features),
        "control: shuffled audio": lambda i, c: pred(metrics.shuffled(c.features)),
        "control: other sentence": lambda i, c: pred(fit_length(test[(i + 1) % len(test)].features, len(c.features))),
    }
    print(f"\n=== accuracy on {len(test)} held-out sentences ({sum(len(c.features) for c in test) / 100:.0f} s), "
          f"trained on {len(train_clips)} ({sum(len(c.features) for c in train_clips) / 6000:.1f} min)")
    print(f"{'predictor':26s} {'mouth error / width':>20s} {'opening corr':>13s}")
    res = {}
    for name, f in rows.items():
        e, r = [], []
        for i, c in enumerate(test):
            v = smooth(f(i, c))
            e.append(metrics.mouth_error(v, c.shapes, c.mean))
            r.append(metrics.opening_corr(v, c.shapes, c.mean))
        res[name] = (float(np.mean(e)), float(np.nanmean(r)) if not np.all(np.isnan(r)) else float("nan"))
        print(f"{name:26s} {res[name][0]:20.4f} {res[name][1]:13.3f}")
    lstm, mean = res["LSTM (audio -> mouth)"], res["baseline: mean shape"]
    print(f"error ratio LSTM / mean shape: {lstm[0] / mean[0]:.3f} (aim <= 0.7); "
          f"LSTM / loudness: {lstm[0] / res['baseline: loudness'][0]:.3f}; opening corr {lstm[1]:.3f} (aim >= 0.8)")


def real_sync(names: list[str], cache_dir) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Tracked opening and audio loudness per video frame of real clips."""
    ops, louds = [], []
    for n in names:
        d = cache.load(GRID / n, cache_dir)
        ops.append(shapes.mouth_opening(shapes.mouth_shapes(d.landmarks)))
        sound = media.read_audio(GRID / n, audio.SAMPLE_RATE)
        louds.append(metrics.frame_loudness(sound, audio.SAMPLE_RATE, d.fps, len(d.landmarks)))
    return ops, louds


def shift(x: np.ndarray, k: int) -> np.ndarray:
    """x delayed by k frames (edge values repeated): the sound comes k frames later."""
    return np.r_[np.full(k, x[0]), x[:len(x) - k]] if k >= 0 else np.r_[x[-k:], np.full(-k, x[-1])]


def av_section(ck_path, test_names, cache_dir, other: Path, tmp: Path) -> None:
    ops, louds = real_sync(test_names, cache_dir)
    bias, c0 = metrics.av_offset(ops, louds)
    print("\n=== audio-video offset (frames at 25 fps; + = mouth after the sound), pooled over clips")
    print(f"real held-out GRID clips, own audio: {bias:+d} (corr {c0:.3f}): the estimator's bias on real speech")
    got = [metrics.av_offset(ops, [shift(x, -k) for x in louds])[0] - bias for k in PLANTED]
    print("planted offsets " + " ".join(f"{k:+d}" for k in PLANTED) + " -> recovered "
          + " ".join(f"{g:+d}" for g in got))
    speech = tmp / "heldout_speech.wav"
    x = np.concatenate([media.read_audio(GRID / n, audio.SAMPLE_RATE) for n in test_names])
    wavfile.write(speech, audio.SAMPLE_RATE, (np.clip(x, -1, 1) * 32767).astype(np.int16))
    out = tmp / "other.mp4"
    r = synth.lipsync(other, speech, ck_path, out)
    footage.clear_cache()
    foot = footage.load(out)
    op = shapes.mouth_opening(shapes.mouth_shapes(foot.landmarks))
    ld = metrics.frame_loudness(media.read_audio(out, audio.SAMPLE_RATE), audio.SAMPLE_RATE, foot.fps, len(op))
    lag, c = metrics.av_offset([op], [ld])
    want = shapes.mouth_opening(shapes.unflat(r.mouths))
    n = min(len(want), len(op))
    plag, pc = metrics.av_offset([op[:n]], [want[:n]])
    print(f"{other.name} driven by {len(x) / audio.SAMPLE_RATE:.0f} s of held-out GRID speech: {lag:+d} raw, "
          f"{lag - bias:+d} against the real-speech bias (aim 0 +- 1), corr {c:.3f}; "
          f"output's tracked opening vs the requested opening: {plag:+d}, corr {pc:.3f}")


def crops_of(frames: list[np.ndarray], mats: np.ndarray, size: int) -> np.ndarray:
    return np.stack([align.crop(f, m, size) for f, m in zip(frames, mats)])


def texture_section(ck_path, ck: model.Checkpoint, test_names: list[str], tmp: Path) -> None:
    plain = texmod.TextureConfig(teeth=0.0, sharpen=0.0)
    kinds = [("median", synth.LipsyncConfig()), ("median, no teeth/sharpen", synth.LipsyncConfig(tex=plain))]
    if ck.texture:
        bare = texmod.TextureConfig(teeth=0.0, sharpen=0.0, ae_detail=0.0)
        kinds += [("autoencoder", synth.LipsyncConfig(texture="autoencoder")),
                  ("autoenc., decoder only", synth.LipsyncConfig(texture="autoencoder", tex=bare))]
    print(f"\n=== texture and speed on {len(test_names)} held-out sentences, each on its own video and audio")
    print(f"{'texture':26s} {'sharpness ratio':>15s} {'flicker ratio':>13s} {'lower-lip tell':>14s} "
          f"{'opening corr':>12s} {'shuffled':>9s} {'chin corr':>9s} {'video s / s':>11s}")
    real_stats = None
    for ki, (kind, cfg) in enumerate(kinds):
        stats, corr, shuf, chin, real_chin, secs, took = [], [], [], [], [], 0.0, 0.0
        for i, n in enumerate(test_names):
            video = GRID / n
            other = tmp / f"shuffled_{i}.wav"
            wavfile.write(other, audio.SAMPLE_RATE, (metrics.shuffled(media.read_audio(video, audio.SAMPLE_RATE))
                                                     * 32767).astype(np.int16))
            foot = footage.load(video, keep_frames=True)
            tgt = texmod.prepare(foot, texmod.TextureConfig())
            real_op = shapes.mouth_opening(shapes.mouth_shapes(foot.landmarks))
            for speech, into in ((video, corr), (other, shuf)):
                out = tmp / f"t{ki}_{i}_{speech.stem}.mp4"
                r = synth.lipsync(video, speech, ck_path, out, cfg)
                made = [f.image for f in media.read_frames(out)]
                footage.clear_cache()
                lms = footage.load(out).landmarks
                op = shapes.mouth_opening(shapes.mouth_shapes(lms))
                m = min(len(op), len(real_op))
                into.append(metrics.corr(op[:m], real_op[:m]))
                if speech == video:
                    chin.append(metrics.chin_follow(lms))
                    real_chin.append(metrics.chin_follow(foot.landmarks))
                    secs, took = secs + r.seconds, took + r.compute_s
                    src = r.source_frames[:len(made)]
                    px = np.stack([texmod.shape_to_crop(v, 128) for v in r.mouths[:len(made)]])
                    stats.append(metrics.texture_stats(crops_of(made, tgt.matrices[src], 128), px))
                    if real_stats is None or len(real_stats) < len(test_names):
                        real_px = np.stack([texmod.shape_to_crop(v, 128) for v in tgt.shapes])
                        real_stats = (real_stats or []) + [metrics.texture_stats(tgt.crops, real_px)]
        s = {k: np.mean([x[k] for x in stats]) for k in stats[0]}
        rs = {k: np.mean([x[k] for x in real_stats]) for k in real_stats[0]}
        print(f"{kind:26s} {s['sharpness'] / rs['sharpness']:15.3f} {s['flicker'] / rs['flicker']:13.3f} "
              f"{s['lower_lip_tell']:+14.3f} {np.nanmean(corr):12.3f} {np.nanmean(shuf):9.3f} "
              f"{np.nanmean(chin):9.3f} {secs / took:11.2f}")
    print(f"{'real video':26s} {1:15.3f} {1:13.3f} {rs['lower_lip_tell']:+14.3f} {1:12.3f} {'':9s} "
          f"{np.nanmean(real_chin):9.3f}")
    print("(opening corr: the output's tracked inner-lip gap against the real video's of the same sentence; "
          "shuffled: the same with the audio rolled by half; chin corr: chin drop vs opening, metrics.chin_follow; "
          "lower-lip tell: log of face-above-mouth over lower-lip sharpness, above the real value = softer lip)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default="grid_s1", help="LIPMODEL trained on grid_s1 (default: bundled)")
    ap.add_argument("--cache", default=str(cache.default_dir()), help="per-clip cache folder")
    ap.add_argument("--clips", type=int, default=4, help="held-out sentences re-synthesised in the texture section")
    ap.add_argument("--other", type=Path, default=DATA / "talking" / "retalking_face_3.mp4",
                    help="another person's clip driven by held-out GRID speech")
    ap.add_argument("--skip", nargs="*", default=[], choices=["accuracy", "sync", "texture"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ck = model.load(args.model)
    held = ck.meta.get("holdout") or []
    if not held:
        raise SystemExit(f"{args.model} names no held-out clips; train it with --holdout or --holdout-fraction")
    names = sorted(p.name for p in GRID.glob("*.mpg"))
    t0 = time.monotonic()
    if "accuracy" not in args.skip:
        clips = {n: train.load_clip(GRID / n, args.cache) for n in names}
        accuracy(ck, [clips[n] for n in names if n not in held], [clips[n] for n in held])
    with tempfile.TemporaryDirectory() as tmp:
        if "sync" not in args.skip:
            av_section(args.model, held, args.cache, args.other, Path(tmp))
        if "texture" not in args.skip:
            texture_section(args.model, ck, held[: args.clips], Path(tmp))
    print(f"\n(benchmark took {time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
