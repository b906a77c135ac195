"""Generator simulators (detect/simulate.py) and the generated blends made with them (sbi, dataset, train)."""
from __future__ import annotations

import numpy as np
import pytest

from doppel.detect import augment, cues, dataset, detectors, sbi, simulate, train
from doppel.errors import DoppelError
from doppel.detect.config import TrainConfig


@pytest.fixture(scope="module")
def faces(data_dir):
    """Context faces of 12 corpus photos, cut as training keeps them."""
    photos = dataset.corpus_photos(data_dir, "train", 12)
    return dataset.corpus_faces(photos, train.CNN_SIDE)


@pytest.fixture(scope="module")
def bank(faces):
    """One simulator of each upsampler, trained 1 s each on those faces, and their held-out L1."""
    return simulate.train_bank([f.image for f in faces], 4, 1.0, seed=0)


def test_a_bank_redraws_faces_close_to_them_with_each_upsampler_and_survives_a_round_trip(faces, bank, tmp_path):
    sims, errors = bank
    assert [s.cfg.up for s in sims] == list(simulate.UPSAMPLERS) and len(errors) == 4
    img = faces[0].image[:-3]  # an odd size: padded to the stride and cut back
    for sim in sims:
        out = sim.redraw(img)
        diff = np.abs(out.astype(int) - img).mean()
        assert out.shape == img.shape and out.dtype == np.uint8
        assert 0.3 < diff < 20, (sim.cfg, diff)  # redrawn, not copied; the face's colours and shape kept
    simulate.save_bank(sims, tmp_path / "bank.safetensors")
    loaded = simulate.load_bank(tmp_path / "bank.safetensors")
    assert [s.cfg for s in loaded] == [s.cfg for s in sims]
    assert all(np.array_equal(a.redraw(img), b.redraw(img)) for a, b in zip(sims, loaded))
    with pytest.raises(DoppelError, match="not a simulator bank"):  # another kind of doppel file, in one line
        simulate.load_bank(detectors.WEIGHTS_DIR / "cnn.safetensors")
    with pytest.raises(ValueError, match="at least 64 pixels"):
        simulate.train_bank([img[:40, :40]], 1, 0.1)


def test_a_generated_blend_pastes_the_redraw_inside_the_face_or_is_the_whole_redraw(faces):
    face = faces[0]
    redrawn = np.full_like(face.image, 7)  # a planted "generator": every pixel it draws is 7
    whole = blended = 0
    for seed in range(30):
        fake = sbi.generated_blend(face.image, face.landmarks, lambda img: redrawn, np.random.default_rng(seed))
        if np.array_equal(fake, redrawn):
            whole += 1
            continue
        blended += 1
        assert np.array_equal(fake[:4, :4], face.image[:4, :4])  # the corner, far outside every mask: untouched
        change = np.abs(fake.astype(int) - face.image).sum(2)
        hull = cues.hull_mask(face.landmarks, face.image.shape[:2]) > 0
        assert change[hull].mean() > 3 * change[~hull].mean() and (change > 0).mean() > 0.01  # the face changed
    assert whole >= 1 and blended >= 15  # GENERATED_WHOLE (0.2) of 30 draws


def test_training_makes_generated_blends_only_with_the_option_and_a_bank(faces, monkeypatch):
    used = []
    monkeypatch.setattr(sbi, "generated_blend", lambda img, lm, redraw, r, part=None: used.append(redraw) or img)
    monkeypatch.setattr(augment, "degrade", lambda imgs, rng: imgs)

    class Planted:
        def redraw(self, img):
            return img

    planted = [Planted(), Planted()]
    for bank, share in ((None, 1.0), (planted, 0.0), (planted, 1.0)):
        used.clear()
        outs = [train.sample(faces, np.random.default_rng(seed), True, bank=bank, gen_share=share)[0]
                for seed in range(10)]
        assert (len(used) == 10) == (bank is not None and share > 0) and (not used or share > 0)
        if bank is None or not share:  # without the option the blends are the run's of before, draw for draw
            before = [train.sample(faces, np.random.default_rng(seed), True)[0] for seed in range(10)]
            assert all(np.array_equal(a, b) for a, b in zip(outs, before))


def test_a_batch_reads_the_bank_from_its_file_and_a_resumed_run_keeps_it(faces, bank, tmp_path, monkeypatch):
    path = tmp_path / simulate.BANK_FILE
    simulate.save_bank(bank[0], path)
    cfg = TrainConfig(batch=8, gen_share=1.0, gen_bank=str(path))
    crops, labels = train.make_batch(faces, cfg, seed=3)
    assert crops.shape == (8, cfg.cnn.size, cfg.cnn.size, 3) and labels.tolist() == [0, 1] * 4
    assert str(path) in simulate._LOADED
    monkeypatch.setattr(simulate, "train_bank", lambda *a, **k: pytest.fail("a resumed run retrained its bank"))
    assert train.simulator_bank(faces, tmp_path, TrainConfig(gen_share=1.0, resume=True)) == path
