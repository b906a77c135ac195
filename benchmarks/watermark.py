"""The watermark's figures: robustness, invisibility, speed, false positives.

    python benchmarks/watermark.py robust [--frames 60] [--clips a.mp4 b.mp4] [--strength 0.5]
    python benchmarks/watermark.py speed [--frames 60]
    python benchmarks/watermark.py fp [--folders talking video ...] [--every N] [--max-seconds S]  # real files read for a mark
    python benchmarks/watermark.py detector [--frames 48]  # do the detector's scores move with the mark?

`robust` marks the first frames of real clips, attacks the marked video (re-encode,
rescale, crop, JPEG, brightness, a chain) and reports the per-frame coded-bit accuracy,
the share of frames read alone, and whether the video's payload (folds summed over
frames) decodes exactly. It also prints PSNR/SSIM of marked vs unmarked frames.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from doppel import media  # noqa: E402
from doppel.provenance import watermark as wm  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIPS = ["video/source_s32.mp4", "talking/retalking_face_2.mp4", "video/driving_d9.mp4", "video/iplap_129.mp4"]
DETECTOR_CLIPS = ["talking/retalking_face_1.mp4", "video/driving_d19.mp4", "deepfake/ffpp_pair_real.mp4",
                  "deepfake/ffpp_pair_fake.mp4", "talking/retalking_face_5.mp4", "video/source_s20.mp4",
                  "video/driving_d20.mp4", "talking/retalking_face_4.mp4"]  # real clips, and the FF++ fake


def first_frames(path: Path, n: int) -> tuple[list[np.ndarray], float]:
    out = []
    for f in media.iter_frames(path):
        out.append(f.image)
        if len(out) >= n:
            break
    return out, media.probe(path).fps


def encode(frames: list[np.ndarray], fps: float, crf: int, path: Path) -> list[np.ndarray]:
    """H.264 (libx264, yuv420p, veryfast) at `crf` and decoded back."""
    h, w = (s - s % 2 for s in frames[0].shape[:2])
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=round(fps))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": str(crf), "preset": "veryfast"}
        for i, im in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(im[:h, :w]), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return [f.image for f in media.iter_frames(path)]


def rescale(frames, k):
    h, w = frames[0].shape[:2]
    return [cv2.resize(f, (int(w * k), int(h * k)), interpolation=cv2.INTER_AREA) for f in frames]


def crop(frames, share):
    """Cut `share` of each side's length, unevenly (60% from top/left), keeping the pixel scale."""
    h, w = frames[0].shape[:2]
    y0, x0 = int(h * share * 0.6), int(w * share * 0.6)
    return [f[y0:y0 + int(h * (1 - share)), x0:x0 + int(w * (1 - share))] for f in frames]


def jpeg(frames, q):
    out = []
    for f in frames:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        out.append(cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    return out


def brightness(frames, k):
    return [np.clip(f.astype(np.float32) * k, 0, 255).astype(np.uint8) for f in frames]


def attacks(fps: float, tmp: Path) -> dict:
    enc = lambda fr, crf: encode(fr, fps, crf, tmp)  # noqa: E731
    return {
        "none": lambda fr: fr,
        "crf23": lambda fr: enc(fr, 23),
        "crf28": lambda fr: enc(fr, 28),
        "crf35": lambda fr: enc(fr, 35),
        "0.5x+crf23": lambda fr: enc(rescale(fr, 0.5), 23),
        "0.75x+crf23": lambda fr: enc(rescale(fr, 0.75), 23),
        "crop10%+crf23": lambda fr: enc(crop(fr, 0.1), 23),
        "jpeg50": lambda fr: jpeg(fr, 50),
        "bright+10%+crf23": lambda fr: enc(brightness(fr, 1.1), 23),
        "bright-10%+crf23": lambda fr: enc(brightness(fr, 0.9), 23),
        "crf28+0.5x+crop10%": lambda fr: enc(crop(rescale(enc(fr, 28), 0.5), 0.1), 28),
    }


def psnr_ssim(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """PSNR (dB) over RGB and SSIM on luma (Wang et al. 2004, 11x11 Gaussian, sigma 1.5)."""
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    ya = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64)
    yb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64)
    g = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)  # noqa: E731
    ma, mb = g(ya), g(yb)
    va, vb, cov = g(ya * ya) - ma ** 2, g(yb * yb) - mb ** 2, g(ya * yb) - ma * mb
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
    return 10 * np.log10(255 ** 2 / max(mse, 1e-9)), float(ssim.mean())


def robust(args) -> None:
    payload = wm.make_payload(0x5EED1234)
    truth = wm.encode(payload)
    tmp = Path("/tmp/doppel_wm_bench.mp4")
    print(f"{'clip':28s} {'attack':20s} bit-acc/frame  frames-read  video-z  video-payload")
    worst = {}
    for clip in args.clips:
        frames, fps = first_frames(DATA / clip, args.frames)
        mark = wm.MarkSettings(strength=wm.MarkSettings.strength * args.strength)
        marked = [wm.embed(f, payload, mark) for f in frames]
        q = np.array([psnr_ssim(m, f) for m, f in zip(marked, frames)])
        print(f"{clip:28s} {frames[0].shape[1]}x{frames[0].shape[0]}: PSNR {q[:, 0].mean():.1f} dB, "
              f"SSIM {q[:, 1].mean():.4f} (marked vs unmarked)")
        for name, attack in attacks(fps, tmp).items():
            video, per = wm.read_frames(attack(marked))
            acc = np.mean([np.mean((r.soft > 0) == truth) for r in per])
            read = np.mean([r.found and r.payload == payload for r in per])
            ok = video.found and video.payload == payload
            worst.setdefault(name, []).append((acc, ok))
            print(f"{clip:28s} {name:20s} {acc:13.3f}  {read:11.2f}  {video.z:7.1f}  {'exact' if ok else 'MISSED'}")
    print("\nsummary (mean per-frame bit accuracy over clips; videos decoded exactly):")
    for name, rows in worst.items():
        print(f"  {name:20s} {np.mean([a for a, _ in rows]):.3f}  {sum(o for _, o in rows)}/{len(rows)}")
    tmp.unlink(missing_ok=True)


def speed(args) -> None:
    """Embed and read frames/s at 720p against encoding and decoding alone (same frames, same run)."""
    frames, fps = first_frames(DATA / "video/source_s32.mp4", args.frames)
    assert frames[0].shape[:2] == (720, 1280), frames[0].shape
    payload = wm.make_payload(1)
    wm.embed(frames[0], payload)  # build the cached pattern first: a writer does this once
    t = time.perf_counter()
    marked = [wm.embed(f, payload) for f in frames]
    t_embed = time.perf_counter() - t
    out = Path("/tmp/doppel_wm_speed.mp4")
    t = time.perf_counter()
    with media.VideoWriter(out, fps, crf=18) as w:
        for f in marked:
            w.write(f)
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    decoded = [f.image for f in media.iter_frames(out)]
    t_dec = time.perf_counter() - t
    t = time.perf_counter()
    wm.read_frames(decoded)
    t_read = time.perf_counter() - t
    n = len(frames)
    print(f"720p, {n} frames: embed {n / t_embed:.0f} f/s ({1e3 * t_embed / n:.1f} ms/frame), H.264 encode "
          f"(CRF 18, veryfast) {n / t_enc:.0f} f/s -> embedding adds {t_embed / t_enc:.0%} to writing")
    print(f"720p: decode {n / t_dec:.0f} f/s -> embedding costs {t_embed / t_dec:.1f}x decoding, "
          f"reading ({n / t_read:.0f} f/s) {t_read / t_dec:.1f}x decoding")
    out.unlink(missing_ok=True)


def real_files(folders: list[str], every: int) -> tuple[list[Path], list[Path]]:
    """(real videos, real photos) under the given folders of ../shared/data; `every` thins the photos.

    The photos come in a fixed shuffled order, so a sweep cut short by `--max-seconds` has
    read a sample of every folder rather than the first folders only.
    """
    exts = {".mp4", ".mpg", ".jpg", ".jpeg", ".png"}
    videos, photos = [], []
    for folder in folders:
        files = sorted(p for p in (DATA / folder).rglob("*") if p.suffix.lower() in exts)
        videos += [p for p in files if not media.is_image_path(p)]
        photos += [p for p in files if media.is_image_path(p)][::every]
    order = np.random.default_rng(0).permutation(len(photos))
    return videos, [photos[i] for i in order]


def false_positives(args) -> None:
    """Every frame of the real videos, then the photos (every `--every`-th), read for a mark,
    until `--max-seconds` (videos are always read in full)."""
    videos, photos = real_files(args.folders, args.every)
    files = videos + photos
    n_videos = n_photos = n_frames = fp_files = fp_frames = 0
    zmax, zmax_file, over_z = 0.0, None, 0
    t = time.perf_counter()
    for i, p in enumerate(files):
        image = media.is_image_path(p)
        if image and args.max_seconds and time.perf_counter() - t > args.max_seconds:
            print(f"time budget of {args.max_seconds:.0f} s spent: stopping before photo {i - len(videos) + 1}")
            break
        try:
            if image:
                r = wm.read_image(media.read_image(p))
                video, per = r, [r]
            else:
                video, per = wm.read_frames(f.image for f in media.iter_frames(p))
        except media.MediaError as e:
            print(f"skipped {p}: {e}")
            continue
        n_photos += image
        n_videos += not image
        n_frames += len(per)
        fp_files += video.found
        fp_frames += sum(r.found for r in per)
        readings = per if image else [video, *per]
        over_z += sum(r.z >= wm.Z_MIN for r in readings)
        top = max(readings, key=lambda r: r.z)
        if top.z > zmax:
            zmax, zmax_file = top.z, p
        if video.found or any(r.found for r in per):
            print(f"FALSE POSITIVE {p}: z {video.z:.1f}", flush=True)
        if i % 500 == 0:
            print(f"  {i}/{len(files)} files, {n_frames} frames, highest z {zmax:.1f}, "
                  f"{time.perf_counter() - t:.0f} s", flush=True)
    print(f"read {n_videos} of {len(videos)} real videos (every frame) and {n_photos} of {len(photos)} photos "
          f"({', '.join(args.folders)}; photos 1 in {args.every}): {n_frames} frames/photos, {n_videos} video "
          f"readings, in {time.perf_counter() - t:.0f} s")
    print(f"{fp_files} files and {fp_frames} frames read as marked; highest sync z {zmax:.1f} "
          f"({zmax_file.relative_to(DATA) if zmax_file else '-'}); {over_z} readings with z >= {wm.Z_MIN} "
          f"(tag then not matched); theoretical rate {wm.FALSE_POSITIVE_RATE:.1e} per read")


def detector(args) -> None:
    """The detector's probability, video score and per-frame CNN logits on clips written with and without
    the mark; the same frames re-encoded at CRF 23 instead of 18 are the baseline change."""
    import torch
    from doppel.detect import detectors, scan
    torch.set_num_threads(1)
    det = detectors.Detectors.load(args.weights or detectors.WEIGHTS_DIR)
    cfg = scan.ScanConfig(step=4)
    payload = wm.make_payload(7)
    print(f"detector {det.meta.get('version', '?')}; per clip: model probability, video score (logit) and the "
          "mean paired change of the frames' CNN logit (+- its standard error), marked - unmarked and "
          "CRF 23 - CRF 18")
    moved, codec, d_mark, d_codec = [], [], [], []

    def se(d: np.ndarray) -> float:  # standard error of a mean
        return d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    for clip in args.detector_clips:
        frames, fps = first_frames(DATA / clip, args.frames)
        runs = []
        marked = [wm.embed(f, payload) for f in frames]
        for name, fr, crf in (("plain", frames, 18), ("marked", marked, 18), ("crf23", frames, 23)):
            path = Path(f"/tmp/doppel_wm_det_{name}.mp4")
            with media.VideoWriter(path, fps, crf=crf) as w:
                for f in fr:
                    w.write(f)
            r = scan.scan(path, det, cfg, progress=False)
            cnn = {fr_.index: max(f.scores.cnn for f in fr_.faces if f.scores.cnn is not None)
                   for fr_ in r.frames if any(f.scores.cnn is not None for f in fr_.faces)}
            runs.append((r.verdict.model_probability, r.verdict.score, cnn))
            path.unlink()
        (p0, s0, c0), (p1, s1, c1), (p2, s2, c2) = runs
        dm = np.array([c1[i] - c0[i] for i in c0 if i in c1])
        dc = np.array([c2[i] - c0[i] for i in c0 if i in c2])
        d_mark += dm.tolist()
        d_codec += dc.tolist()
        moved.append(abs(p1 - p0))
        codec.append(abs(p2 - p0))
        print(f"{clip:34s} p {p0:.3f} / {p1:.3f} / {p2:.3f}   score {s0:+.2f} / {s1:+.2f} / {s2:+.2f}   "
              f"CNN logit: mark {dm.mean():+.3f} +- {se(dm):.3f}, CRF 23 {dc.mean():+.3f} +- {se(dc):.3f} "
              f"({len(dm)} frames)")
    dm, dc = np.array(d_mark), np.array(d_codec)
    print(f"largest change of the detector's probability: from the mark {max(moved):.3f}, "
          f"from re-encoding at CRF 23 instead of 18 (baseline) {max(codec):.3f}")
    print(f"all frames: CNN logit change from the mark {dm.mean():+.3f} +- {se(dm):.3f} "
          f"(mean |change| {np.abs(dm).mean():.3f}); from CRF 23 (baseline) {dc.mean():+.3f} +- "
          f"{se(dc):.3f} (mean |change| {np.abs(dc).mean():.3f}); {len(dm)} frames")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["robust", "speed", "fp", "detector"])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--strength", type=float, default=1.0, help="robust: factor on the mark's strength "
                   "(as `doppel --watermark-strength`)")
    p.add_argument("--clips", nargs="+", default=CLIPS)
    p.add_argument("--weights", help="detector: weights folder (default: the shipped ones)")
    p.add_argument("--detector-clips", nargs="+", default=DETECTOR_CLIPS, help="detector: clips (real, and the FF++ pair)")
    p.add_argument("--folders", nargs="+", default=["talking", "video", "deepfake", "images", "faces", "corpus"],
                   help="fp: folders of ../shared/data to read")
    p.add_argument("--every", type=int, default=1, help="fp: read every N-th photo only")
    p.add_argument("--max-seconds", type=float, default=0, help="fp: stop reading photos after this long (0: no limit)")
    args = p.parse_args()
    {"robust": robust, "speed": speed, "fp": false_positives, "detector": detector}[args.mode](args)


if __name__ == "__main__":
    main()
