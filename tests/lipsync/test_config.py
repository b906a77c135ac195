"""The lip-sync stage's light settings module: one definition, re-exported, and the CLI's defaults are its."""
import argparse

from doppel import audio
from doppel.lipsync import cli, composite, config, model, synth, texture, train


def _parse(argv):
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    return p.parse_args(argv)


def test_settings_are_defined_once_and_re_exported():
    assert model.LipConfig is config.LipConfig and train.TrainConfig is config.TrainConfig
    assert texture.TextureConfig is config.TextureConfig and composite.CompositeConfig is config.CompositeConfig
    assert synth.LipsyncConfig is config.LipsyncConfig


def test_names_and_numbers_from_heavy_modules_agree():
    assert tuple(texture.TEXTURES) == config.TEXTURE_NAMES
    assert config.LipConfig().n_features == audio.N_FEATURES  # filled in by a factory, not a copy


def test_cli_defaults_are_the_dataclass_defaults():
    a = _parse(["v.mp4", "a.wav"])
    s, t, lip, tex = config.LipsyncConfig(), config.TrainConfig(), config.LipConfig(), config.TextureConfig()
    assert (a.texture, a.crf, a.candidates) == (s.texture, s.crf, tex.candidates)
    assert (a.steps, a.minutes, a.save_every, a.holdout_fraction) == (t.steps, t.minutes, t.save_every,
                                                                      t.holdout_fraction)
    assert (a.hidden, a.delay) == (lip.hidden, lip.delay)
    assert (a.tex_steps, a.tex_minutes, a.tex_frames) == (tex.ae_steps, tex.ae_minutes, tex.ae_frames)
