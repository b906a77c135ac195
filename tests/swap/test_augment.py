"""The denoising random warp, the random affine, data order and face loading."""
import logging

import numpy as np

from doppel.faces import align
from doppel.faceset import FaceSet
from doppel.swap import augment

S = 64


def blob_image(centres, size=S, sigma=1.2):
    """float32 (S, S, 3) with a Gaussian dot at each (x, y) centre."""
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    img = np.zeros((size, size), np.float64)
    for x, y in centres:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return np.repeat(img[..., None], 3, -1).astype(np.float32)


def peak(img, x, y, r=4):
    """(x, y) of the brightest pixel of channel 0 within r of (x, y)."""
    x0, y0 = int(np.ceil(x - r)), int(np.ceil(y - r))
    patch = img[y0:int(y + r) + 1, x0:int(x + r) + 1, 0]
    iy, ix = np.unravel_index(np.argmax(patch), patch.shape)
    return x0 + ix, y0 + iy


def test_unshifted_grid_gives_identity():
    rng = np.random.default_rng(0)
    img = rng.random((S, S, 5), dtype=np.float32)
    grid = augment.regular_grid(S)
    mat = align.umeyama(grid.reshape(-1, 2), grid.reshape(-1, 2))
    np.testing.assert_allclose(mat, np.eye(3), atol=1e-9)
    warped, target = augment.warp_pair(img, grid)
    np.testing.assert_allclose(target, img, atol=1e-5)
    np.testing.assert_allclose(warped, img[..., :3], atol=1e-3)
    w0, t0 = augment.random_warp(img, rng, sigma=0.0)
    np.testing.assert_allclose(t0, img, atol=1e-5)


def test_warp_moves_planted_points_where_the_grid_says():
    rng = np.random.default_rng(3)
    grid = augment.shifted_grid(S, rng, 0.15)
    inner = [(i, j) for i in range(1, 4) for j in range(1, 4)]
    img = blob_image([grid[i, j] for i, j in inner])
    warped, target = augment.warp_pair(img, grid)
    reg = augment.regular_grid(S)
    moved = 0
    for i, j in inner:
        px, py = peak(warped, *reg[i, j])  # nodes sit between pixels: the peak is one of the 4 around it
        assert abs(px - reg[i, j, 0]) <= 0.5 and abs(py - reg[i, j, 1]) <= 0.5, (i, j, px, py, reg[i, j])
        moved = max(moved, np.abs(grid[i, j] - reg[i, j]).max())
    assert moved > 1.5  # the planted points really were off the regular grid


def test_target_is_best_similarity_so_a_similar_grid_warps_alike():
    rng = np.random.default_rng(5)
    img = rng.random((S, S, 3), dtype=np.float32)
    img = np.stack([np.asarray(__import__("cv2").GaussianBlur(img[..., c], (7, 7), 2)) for c in range(3)], -1)
    reg = augment.regular_grid(S).reshape(-1, 2)
    a = np.radians(4)
    rot = 1.03 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    grid = ((reg - 31.5) @ rot.T + 31.5 + [1.0, -0.7]).reshape(5, 5, 2)
    warped, target = augment.warp_pair(img, grid)
    np.testing.assert_allclose(warped[8:-8, 8:-8], target[8:-8, 8:-8], atol=0.02)


def test_flip_only_transform_is_a_mirror():
    img = np.random.default_rng(1).random((S, S, 4), dtype=np.float32)
    cfg = augment.AugmentConfig(rotation=0, zoom=0, shift=0, flip=1.0)
    out = augment.random_transform(img, np.random.default_rng(0), cfg)
    np.testing.assert_allclose(out, img[:, ::-1], atol=1e-5)


def test_affine_stays_within_limits():
    cfg = augment.AugmentConfig()
    rng = np.random.default_rng(2)
    for _ in range(200):
        m = augment.affine_matrix(S, rng, cfg)
        assert 0.95 - 1e-9 <= align.matrix_scale(m) <= 1.05 + 1e-9
        ang = align.matrix_angle(m * [[1, 1, 1], [1, 1, 1]])
        assert min(abs(ang), 180 - abs(ang)) <= 10 + 1e-6


def test_batch_indices_cover_each_epoch_and_split_ranks():
    n, batch = 10, 3
    seen = [augment.batch_indices(n, batch, s, seed=4, rank=r, world=2) for s in range(5) for r in range(2)]
    flat = np.concatenate(seen)
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    again = augment.batch_indices(n, batch, 3, seed=4, rank=1, world=2)
    np.testing.assert_array_equal(again, seen[3 * 2 + 1])


def test_step_batches_are_reproducible_and_shaped(facesets):
    data = augment.load_faces(FaceSet.open(facesets[0]))
    ds = augment.StepBatches(data, data, 4, seed=1)
    x, y = ds[5], ds[5]
    assert x["a"]["input"].shape == (4, 3, S, S) and x["a"]["mask"].shape == (4, 1, S, S)
    for k in x["a"]:
        assert np.array_equal(x["a"][k].numpy(), y["a"][k].numpy())
    assert not np.array_equal(ds[6]["a"]["input"].numpy(), x["a"]["input"].numpy())


def test_region_maps_cover_the_landmarks(facesets):
    fs = FaceSet.open(facesets[0])
    rec = fs.faces[0]
    lm = align.transform_points(rec.landmarks_array, rec.matrix_array)
    maps = augment.region_maps(lm, fs.size)
    ij = np.round(lm).astype(int)
    assert maps[ij[36:68, 1], ij[36:68, 0], 0].all()  # eyes and mouth points are inside the parts map
    assert maps[ij[17:68, 1], ij[17:68, 0], 1].all()
    assert 0.005 < maps[..., 0].mean() < maps[..., 1].mean() < 0.9


def test_corrupt_png_is_skipped_with_a_warning(facesets, tmp_path, caplog):
    import shutil
    root = tmp_path / "fs"
    shutil.copytree(facesets[0], root)
    fs = FaceSet.open(root)
    (root / fs.faces[2].file).write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING):
        data = augment.load_faces(fs)
    assert len(data.crops) == len(fs) - 1
    assert any(fs.faces[2].file in r.getMessage() for r in caplog.records)
