"""doppel swap end to end with a tiny model trained here for a few steps, plus its time logic."""
import json

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from doppel import cli, media, provenance
from doppel.errors import DoppelError
from doppel.faces import align, finder
from doppel.faces import mask as masks
from doppel.provenance import watermark
from doppel.swap import convert
from doppel.swap.model import SwapModel, build, save_model

CLIP = "talking/retalking_face_5.mp4"
WIDE = finder.DetectConfig(detect_size=720)  # the two-person photo is 720 px wide: detect at full size


def _crops(path, step=20, n=6):
    crops, embs = [], []
    for f in media.iter_frames(path, step):
        faces = finder.find_faces(f.image)
        if faces:
            crops.append(align.crop(f.image, align.align_matrix(faces[0].landmarks, 64, 0.8), 64))
            if not embs:
                embs.append(finder.embedding(np.ascontiguousarray(f.image), faces[0].landmarks))
        if len(crops) == n:
            break
    return crops, embs[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """A lite model after a few steps of plain L1 reconstruction on crops of the clip."""
    crops, emb = _crops(data_dir / CLIP)
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy 2-core box two threads run ~10x slower here (measured)
    model = build("lite")
    opt = torch.optim.Adam(model.parameters(), 5e-4)
    for _ in range(4):
        for who in "ab":
            loss = (model(x, who)[0] - x).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.set_num_threads(threads)
    model.eval()
    return model, emb


def _save(root, model, **info):
    base = {"coverage": 0.8, "size": model.cfg.size, "identity_a": None, "identity_b": None, "step": 12}
    return save_model(root, model, info={**base, **info}).parent


@pytest.fixture(scope="module")
def model_dir(trained, tmp_path_factory):
    model, emb = trained
    return _save(tmp_path_factory.mktemp("model"), model, identity_a=emb.tolist())


def _marked(photo, out):
    """The input photo with only the watermark `out` carries: what every unswapped pixel must equal."""
    return watermark.embed(photo, watermark.payload_of(provenance.read_label(out)))


def _count(path):
    return sum(1 for _ in media.iter_frames(path))


def test_video_keeps_size_rate_frames_audio_and_is_labelled(model_dir, data_dir, tmp_path):
    src, out, prev = data_dir / CLIP, tmp_path / "out.mp4", tmp_path / "strip.png"
    s = convert.swap(src, model_dir, out, convert.SwapSettings(preview=str(prev)))
    a, b = media.probe(src), media.probe(out)
    assert (b.width, b.height) == (a.width - a.width % 2, a.height - a.height % 2)
    assert b.fps == pytest.approx(a.fps, rel=1e-3)
    n = _count(src)
    assert _count(out) == n == s.frames
    assert s.swapped >= 0.9 * n and s.swapped + s.passed_through == n and s.identity == "embedding"
    assert b.has_audio
    ain, aout = media.read_audio(src), media.read_audio(out)
    assert abs(len(aout) - len(ain)) / 16000 < 0.15
    assert np.corrcoef(ain[:16000 * 3], aout[:16000 * 3])[0, 1] > 0.8 or \
        max(np.corrcoef(ain[:48000], aout[k:k + 48000])[0, 1] for k in range(0, 3000, 50)) > 0.8
    lab = provenance.read_label(out)
    assert lab and lab["synthetic"] and lab["kind"] == "face-swap" and lab["details"]["variant"] == "plain"
    assert provenance.read_label(prev)["kind"] == "face-swap"
    assert media.read_image(prev).shape[0] == convert.PREVIEW_HEIGHT * convert.SwapSettings().preview_frames
    # the face changed, the far background did not (beyond the invisible mark and codec noise)
    f_in, f_out = next(media.iter_frames(src)).image, next(media.iter_frames(out)).image
    faces = finder.find_faces(f_in)
    f_in = watermark.embed(f_in, watermark.payload_of(lab))
    x0, y0, x1, y1 = faces[0].box.astype(int)
    face_diff = np.abs(f_in[y0:y1, x0:x1].astype(int) - f_out[y0:y1, x0:x1]).mean()
    corner_diff = np.abs(f_in[:40, :40].astype(int) - f_out[:40, :40]).mean()
    assert face_diff > 10 * max(corner_diff, 0.3)


@pytest.fixture(scope="module")
def two_people(data_dir, tmp_path_factory):
    """One PNG with Obama (left) and Biden (right), and Obama's embedding."""
    ims = [media.read_image(data_dir / "images" / n) for n in ("obama.jpg", "biden.jpg")]
    ims = [cv2.resize(im[:im.shape[1]], (360, 360), interpolation=cv2.INTER_AREA) for im in ims]  # top squares
    photo = np.concatenate(ims, axis=1)
    path = tmp_path_factory.mktemp("photo") / "two.png"
    media.write_image(path, photo)
    faces = finder.find_faces(photo, WIDE)
    assert len(faces) == 2
    obama = min(faces, key=lambda f: f.box[0])
    return path, photo, obama, max(faces, key=lambda f: f.box[0]), finder.embedding(photo, obama.landmarks)


def test_photo_only_the_right_person_and_nothing_outside_the_mask(trained, two_people, tmp_path):
    path, photo, obama, biden, emb = two_people
    mdir = _save(tmp_path / "m", trained[0], identity_a=emb.tolist())
    out = tmp_path / "swapped.png"
    cfg = convert.SwapSettings(mask=masks.MaskConfig("hull", 0.0, 0.05), detect=WIDE)
    s = convert.swap(path, mdir, out, cfg)
    assert (s.frames, s.swapped, s.faces_skipped) == (1, 1, 1)
    res = media.read_image(out)
    assert res.shape == photo.shape and provenance.read_label(out)["kind"] == "face-swap"
    # the region the mask may reach: Obama's hull grown by the feather's 3 sigma plus slack
    region = masks.erode(masks.hull(obama.landmarks, max(photo.shape)), -0.25 * masks.face_size(obama.landmarks))
    region = region[:photo.shape[0], :photo.shape[1]] > 0
    photo = _marked(photo, out)
    diff = np.abs(res.astype(int) - photo).max(2)
    changed = diff > 0
    assert changed[region].mean() > 0.3 and diff[region].mean() > 10
    # outside the region only the mark's texture gain differs (it sees the new face through its blurs,
    # 30 px at most): a level or two there, and beyond that reach the marked input exactly
    reach = cv2.dilate(region.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (61, 61))) > 0
    assert diff[~region].max() <= 3 and not (changed & ~reach).any()
    bx0, by0, bx1, by1 = biden.box.astype(int)
    assert np.array_equal(res[by0:by1, bx0:bx1], photo[by0:by1, bx0:bx1])


def test_without_identity_the_largest_face_is_swapped(trained, two_people, tmp_path):
    path, photo, obama, biden, _ = two_people
    mdir = _save(tmp_path / "m", trained[0])
    s = convert.swap(path, mdir, tmp_path / "o.jpg", convert.SwapSettings(detect=WIDE))
    assert s.identity == "largest face" and s.swapped == 1 and s.faces_skipped == 1
    big = max((obama, biden), key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    x0, y0, x1, y1 = big.box.astype(int)
    res, photo = media.read_image(tmp_path / "o.jpg"), _marked(photo, tmp_path / "o.jpg")
    assert np.abs(res[y0:y1, x0:x1].astype(int) - photo[y0:y1, x0:x1]).mean() > 5


def _cli(*argv):
    return cli.main(["swap", *map(str, argv)])


def test_bad_inputs_fail_in_one_line_without_output(trained, model_dir, two_people, tmp_path, capsys, data_dir):
    photo = two_people[0]
    out = tmp_path / "o.png"
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "model.safetensors").write_text("not a model")
    assert _cli(photo, "-m", fake, "-o", out) == 2
    assert "not a readable doppel swap model" in capsys.readouterr().err
    # a model whose info says 128 px crops but whose config is 64
    assert _cli(photo, "-m", _save(tmp_path / "m128", trained[0], size=128), "-o", out) == 2
    assert "crop size mismatch" in capsys.readouterr().err
    # a config that does not match the weights
    f = model_dir / "model.safetensors"
    from safetensors import safe_open
    with safe_open(str(f), "pt") as h:
        meta = dict(h.metadata())
    cfg = json.loads(meta["config"])
    meta["config"] = json.dumps({**cfg, "latent": cfg["latent"] * 2})
    (tmp_path / "bad").mkdir()
    save_file(load_file(str(f)), str(tmp_path / "bad" / "model.safetensors"), metadata=meta)
    assert _cli(photo, "-m", tmp_path / "bad", "-o", out) == 2
    assert "do not match" in capsys.readouterr().err
    # Biden alone is not A (the model is the clip's speaker)
    biden = tmp_path / "biden.png"
    media.write_image(biden, media.read_image(data_dir / "images" / "biden.jpg")[::4, ::4])
    assert _cli(biden, "-m", model_dir, "-o", out) == 2
    assert "no face of A" in capsys.readouterr().err
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    # under a file; wrong kind for a photo; not an image type; a folder no file can be made in (even as root)
    for bad in (blocker / "o.png", tmp_path / "o.mp4", tmp_path / "o.gif", "/proc/doppel_out.png"):
        assert _cli(photo, "-m", model_dir, "-o", bad) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("doppel swap: error:") and "\n" not in err
    assert not out.exists() and not list(tmp_path.glob(".o.*"))


def test_video_with_no_face_of_a_leaves_no_file(model_dir, data_dir, tmp_path):
    out = tmp_path / "x.mp4"
    with pytest.raises(DoppelError, match="no face of A"):
        convert.swap(data_dir / "video" / "iplap_129.mp4", model_dir, out, convert.SwapSettings(max_frames=10))
    assert not out.exists() and not list(tmp_path.iterdir())


# --- time logic on planted tracks -------------------------------------------

def _track(n=30, seed=0):
    rng = np.random.default_rng(seed)
    base = align.template_points(200, 0.8)
    return {i: base + [2.0 * i, 0.5 * i] + rng.normal(0, 0.3, base.shape) for i in range(n)}


def test_a_one_frame_glitch_is_found_and_refilled():
    frames = _track()
    truth = frames[12].copy()
    frames[12] = frames[12] + [40.0, -25.0]
    assert convert.find_jumps(frames, 0.15) == {12}
    assert convert.find_jumps(_track(), 0.15) == set()  # steady motion is no jump
    targets = [convert.Track(0, frames)]
    placements, rejected = convert.plan(targets, convert.SwapSettings(smooth=0))
    assert rejected == 0 and placements[12][0].interpolated
    assert np.abs(placements[12][0].landmarks - truth).mean() < 1.5


def test_gaps_are_filled_only_when_short():
    frames = {i: lm for i, lm in _track(40).items() if not 10 <= i < 13 and not 20 <= i < 30}
    full, filled = convert.fill_gaps(frames, max_gap=5)
    assert filled == {10, 11, 12}
    assert np.allclose(full[11], (2 * frames[9] + 2 * frames[13]) / 4)
    assert not any(i in full for i in range(20, 30))


def test_smoothing_reduces_jitter_and_keeps_motion():
    frames = _track(30)
    sm = convert.smooth_track(frames, 1.0)
    jit = lambda d: np.mean([np.abs(d[i + 1] - 2 * d[i] + d[i - 1]).mean() for i in range(1, 29)])
    assert jit(sm) < 0.5 * jit(frames)
    assert np.abs(sm[15] - frames[15]).mean() < 0.5


def test_short_gaps_are_interpolated_long_ones_pass_through(model_dir, data_dir, tmp_path):
    """A clip with 3 faceless frames (filled) and 10 faceless frames (left untouched)."""
    src = tmp_path / "gaps.mp4"
    frames = [f.image for f in media.iter_frames(data_dir / CLIP) if f.index < 40]
    with media.VideoWriter(src, 25, crf=12) as w:
        for i, im in enumerate(frames):
            w.write(np.zeros_like(im) if 15 <= i < 18 or 25 <= i < 35 else im)
    out = tmp_path / "out.mp4"
    s = convert.swap(src, model_dir, out, convert.SwapSettings(max_gap=5))
    assert (s.frames, s.interpolated, s.passed_through, s.swapped) == (40, 3, 10, 30)
    res = [f.image for f in media.iter_frames(out)]
    assert max(res[i].max() for i in range(25, 35)) < 12  # still black: nothing drawn
    assert min(res[i].astype(int).sum() for i in range(15, 18)) > 1000  # a face drawn on the filled frames


def test_colour_statistics_are_smoothed_over_time():
    """A target whose brightness flips every frame: the EMA damps the swing of the recoloured face."""
    from types import SimpleNamespace
    rng = np.random.default_rng(3)
    face = np.clip(rng.normal(0.5, 0.1, (64, 64, 3)), 0, 1).astype(np.float32)
    mask = np.ones((64, 64), np.float32)
    swings = {}
    for weight in (1.0, 0.3):
        r = convert.Renderer(SimpleNamespace(cfg=SimpleNamespace(size=64)), 0.8,
                             convert.SwapSettings(color="reinhard", color_smooth=weight))
        means = [r.recolour(0, face, np.full((64, 64, 3), 80 if i % 2 else 160, np.uint8), mask).mean()
                 for i in range(12)]
        swings[weight] = np.abs(np.diff(means[4:])).mean()
    assert swings[1.0] > 0.2 and swings[0.3] < 0.5 * swings[1.0]


def _planted_mask_model(mask_logit: float) -> SwapModel:
    """A masked lite model whose B decoder draws one flat colour (RGB sigmoid(-3, 3, -3): green) and a
    flat mask sigmoid(mask_logit): planted weights, so what the learned mask lets through is known."""
    model = build("lite", mask=True).eval()
    out = model.decoders["b"].out
    with torch.no_grad():
        out.weight.zero_()
        out.bias.copy_(torch.tensor([-3.0, 3.0, -3.0, mask_logit]))
    return model


def test_learned_mask_is_the_one_used(two_people, tmp_path):
    path, photo, obama, biden, emb = two_people
    plain = _save(tmp_path / "plain", build("lite").eval(), identity_a=emb.tolist())
    with pytest.raises(DoppelError, match="learned"):
        convert.swap(path, plain, tmp_path / "x.png", convert.SwapSettings(mask=masks.MaskConfig("learned"), detect=WIDE))
    assert not (tmp_path / "x.png").exists()
    results = {}
    for name, logit in (("open", 10.0), ("shut", -10.0)):
        model = _save(tmp_path / name, _planted_mask_model(logit), identity_a=emb.tolist())
        cfg = convert.SwapSettings(mask=masks.MaskConfig("learned", 0.0, 0.02), color="none", detect=WIDE)
        assert convert.swap(path, model, tmp_path / f"{name}.png", cfg).swapped == 1
        results[name] = media.read_image(tmp_path / f"{name}.png").astype(int)
    x0, y0, x1, y1 = obama.box.astype(int)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    centre = results["open"][cy - 10:cy + 10, cx - 10:cx + 10]
    assert centre[..., 1].mean() > 200 and centre[..., 0].mean() < 40  # the planted green face is pasted
    # the learned mask is bounded by the face hull (faces/mask.py multiplies them), so an all-ones mask
    # pastes about what --mask hull pastes (736 changed pixels outside the hull against 9026 inside) and
    # no more; the all-zero mask below shows the learned mask is the one applied
    hull = (masks.hull(obama.landmarks, max(photo.shape)) > 0.5)[: photo.shape[0], : photo.shape[1]]
    changed = np.abs(results["open"] - _marked(photo, tmp_path / "open.png").astype(int)).sum(2) > 30
    assert (changed & hull).sum() > 5000 and (changed & ~hull).sum() < 0.15 * (changed & hull).sum()
    # an all-zero learned mask changes nothing but the invisible mark
    assert np.abs(results["shut"] - _marked(photo, tmp_path / "shut.png").astype(int)).max() <= 2
    marked = _marked(photo, tmp_path / "open.png").astype(int)
    assert np.array_equal(results["open"][:, 370:], marked[:, 370:])  # Biden (the right half) is not swapped


def test_identity_is_rechecked_until_the_track_matches(monkeypatch):
    calls = []
    ident = np.zeros(128, np.float32)
    far, near = np.ones(128, np.float32), np.full(128, 0.01, np.float32)
    monkeypatch.setattr(finder, "embedding", lambda im, lm: calls.append(1) or (far if len(calls) == 1 else near))
    t = convert.Track(0)
    for i in range(60):
        t.frames[i] = np.zeros((68, 2))
        convert.check_identity(t, None, None, ident, 0.6)
    assert len(calls) == 2 and t.distance < 0.6  # first look far, second (10th frame) near, then no more


def test_frame_source_caches_within_budget(data_dir):
    clip = str(data_dir / CLIP)
    small = convert.FrameSource(clip, 10, 1)  # 1 byte: nothing kept, decoded twice
    assert [f.index for f in small] == list(range(10)) and small.cache is None
    assert [f.index for f in small] == list(range(10)) and small.passes == 2
    big = convert.FrameSource(clip, 10, 1 << 30)
    first = [f.image for f in big]
    assert big.cache is not None and len(big.cache) == 10
    assert all(a is b.image for a, b in zip(first, big)) and big.passes == 1
