"""The swap stage's light settings modules: one definition, re-exported, and the CLI's defaults are theirs."""
import argparse

from doppel.swap import config, convert, convert_cli, convert_config, gan, losses, model, train, train_cli


def _parse(module, argv):
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(argv)


def test_settings_are_defined_once_and_re_exported():
    assert model.SwapConfig is config.SwapConfig and model.PRESETS is config.PRESETS
    assert model.PEOPLE is config.PEOPLE
    assert train.TrainConfig is config.TrainConfig and train.DEFAULT_STEPS == config.DEFAULT_STEPS
    assert gan.GanConfig is config.GanConfig and train.GanConfig is config.GanConfig
    assert convert.SwapSettings is convert_config.SwapSettings
    assert convert.add_arguments is convert_cli.add_arguments and train.add_arguments is train_cli.add_arguments
    assert gan.add_arguments is train_cli.add_gan_arguments and gan.config_from_args is train_cli.gan_config_from_args


def test_loss_names_are_the_loss_table_keys():
    assert tuple(losses.PIXEL) == config.PIXEL_LOSSES


def test_train_cli_defaults_are_the_dataclass_defaults():
    args = _parse(train_cli, ["A", "B", "-o", "M"])
    d = config.TrainConfig()
    for name in ("preset", "batch", "lr", "loss", "dssim", "eye_mouth_weight", "save_every", "preview_every",
                 "device", "workers", "seed", "init"):
        assert getattr(args, name) == getattr(d, name), name
    assert args.steps == config.DEFAULT_STEPS and not args.gan
    assert train_cli.gan_config_from_args(args) == config.GanConfig()
    assert _parse(train_cli, ["A", "B", "-o", "M", "--loss", "mse"]).loss == "mse"


def test_swap_cli_defaults_give_the_default_settings():
    assert convert_cli.settings_from_args(_parse(convert_cli, ["in.mp4", "-m", "M", "-o", "o.mp4"])) == \
        convert_config.SwapSettings()
    s = convert_cli.settings_from_args(_parse(convert_cli, ["in.mp4", "-m", "M", "-o", "o.mp4", "--mask", "rect",
                                                            "--color", "hist", "--cut", "12"]))
    assert (s.mask.shape, s.color, s.detect.cut) == ("rect", "hist", 12.0)


def test_mask_and_colour_choices_name_the_real_shapes_and_transfers():
    from doppel.faces import blend
    from doppel.faces import mask as masks
    assert tuple(convert_config.MASKS) == (*masks.SHAPES, "learned")
    assert tuple(convert_config.COLOR) == tuple(blend.COLOR)
