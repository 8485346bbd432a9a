import argparse

import pytest

from gankit.config import add_config_arguments, config_from_args
from gankit.errors import ConfigError
from gankit.models.cyclegan import CycleGANConfig


def parse(argv, base=None):
    p = argparse.ArgumentParser()
    add_config_arguments(p, CycleGANConfig)
    return config_from_args(CycleGANConfig, p.parse_args(argv), base)


def test_defaults_follow_the_paper():
    c = CycleGANConfig()
    assert (c.generator, c.blocks, c.discriminator, c.d_layers, c.gan_loss) == ("resnet", 9, "patch", 3, "lsgan")
    assert (c.lambda_cyc, c.lambda_id, c.lr, c.beta1, c.pool_size) == (10.0, 0.5, 2e-4, 0.5, 50)


def test_flags_override_yaml_override_defaults(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("generator: unet\nlambda-cyc: 5\nsteps: 10\n")
    base = CycleGANConfig.load_yaml(y).to_dict()
    c = parse(["--steps", "20", "--swap", "--domain-a", "x", "y", "--optimizer", "rmsprop"], base)
    assert (c.generator, c.lambda_cyc, c.steps, c.swap, c.domain_a, c.optimizer) == (
        "unet", 5.0, 20, True, ["x", "y"], "rmsprop")  # fmt: skip


def test_saved_config_roundtrips(tmp_path):
    c = CycleGANConfig(generator="unet-upsample", channels_a=1, channels_b=3, size=32, lambda_id=0.9)
    c.save_yaml(tmp_path / "config.yaml")
    assert CycleGANConfig.load_yaml(tmp_path / "config.yaml") == c


def test_bad_values_are_named(tmp_path):
    y = tmp_path / "bad.yaml"
    y.write_text("no_such_option: 1\n")
    with pytest.raises(ConfigError, match="bad.yaml.*no_such_option"):
        CycleGANConfig.load_yaml(y)
    y.write_text("steps: many\n")
    with pytest.raises(ConfigError, match="steps"):
        CycleGANConfig.load_yaml(y)
    with pytest.raises(ConfigError, match="channels-a"):
        CycleGANConfig(channels_a=2).validate()
    with pytest.raises(SystemExit):
        parse(["--generator", "vgg"])


def test_antialiasing_is_refused_for_generators_other_than_resnet():
    from gankit.errors import ConfigError

    with pytest.raises(ConfigError, match="--antialias True: an option of the resnet generator, not of unet"):
        CycleGANConfig(generator="unet", antialias=True).validate()
