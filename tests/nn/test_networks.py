import pytest
import torch

from gankit.nn import (
    DISCRIMINATORS,
    GENERATORS,
    PatchDiscriminator,
    ResnetGenerator,
    build_discriminator,
    build_generator,
    count_parameters,
    init_weights,
)


def test_parameter_counts_match_official_implementation():
    # junyanz/pytorch-CycleGAN-and-pix2pix: resnet_9blocks ngf=64 and basic (n_layers=3) ndf=64
    assert count_parameters(ResnetGenerator(3, 3, ngf=64, n_blocks=9)) == 11_378_179
    assert count_parameters(PatchDiscriminator(3, ndf=64, n_layers=3)) == 2_764_737


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("channels", [(1, 3), (3, 1), (3, 3)])
def test_generators_keep_size_and_map_channels(name, channels):
    cin, cout = channels
    g = build_generator(name, cin, cout, ngf=4, n_blocks=1, depth=5 if name == "unet-skip" else None)
    size = max(32, g.size_multiple)
    y = g(torch.randn(2, cin, size, size))
    assert y.shape == (2, cout, size, size)
    assert y.abs().max() <= 1.0  # tanh output range


def test_final_activation_sigmoid_range():
    g = build_generator("unet", 1, 3, ngf=4, final="sigmoid")
    y = g(torch.randn(1, 1, 32, 32))
    assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("name", DISCRIMINATORS)
def test_discriminators_score_shapes(name):
    d = build_discriminator(name, 3, ndf=8, image_size=64)
    out = d(torch.randn(2, 3, 64, 64))
    assert out.shape[0] == 2 and out.shape[1] == 1
    if name == "patch":
        assert out.shape[-2:] == (6, 6)  # 70x70 receptive fields over a 64 px image
    if name == "pixel":
        assert out.shape[-2:] == (64, 64)


def test_scalar_discriminator_rejects_other_sizes():
    d = build_discriminator("scalar", 3, image_size=32)
    with pytest.raises(ValueError, match="32px"):
        d(torch.randn(1, 3, 64, 64))


def test_patch_discriminator_reflect_padding_and_sigmoid():
    d = PatchDiscriminator(3, ndf=8, padding="reflect", sigmoid=True)
    assert any(getattr(m, "padding_mode", None) == "reflect" for m in d.modules())
    out = d(torch.randn(1, 3, 64, 64))
    assert out.min() >= 0 and out.max() <= 1


def test_init_weights_normal_002():
    torch.manual_seed(0)
    g = init_weights(ResnetGenerator(3, 3, ngf=16, n_blocks=2), "normal", 0.02)
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.std().item() - 0.02) < 0.002
    assert all(m.bias.abs().max() == 0 for m in g.modules() if isinstance(m, torch.nn.Conv2d))


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown generator"):
        build_generator("nope", 3, 3)
    with pytest.raises(ValueError, match="unknown discriminator"):
        build_discriminator("nope", 3)
