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


def test_antialiased_blur_layers_are_binomial_filters():
    """Blurred subsampling averages [1, 2, 1]⊗[1, 2, 1]/16 over reflected borders; blurred upsampling
    is bilinear ×2; neither has anything to train or save."""
    import torch.nn.functional as F

    from gankit.nn.layers import blur_downsample, blur_upsample

    x = torch.randn(2, 5, 9, 8)
    down, up = blur_downsample(5), blur_upsample(5)
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    w = torch.tensor([1.0, 2.0, 1.0])
    expected = F.conv2d(padded, (torch.outer(w, w) / 16).expand(5, 1, 3, 3), stride=2, groups=5)
    torch.testing.assert_close(down(x), expected)
    torch.testing.assert_close(up(x), F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
    assert down(x).shape == (2, 5, 5, 4) and up(x).shape == (2, 5, 18, 16)
    assert not list(down.parameters()) and not down.state_dict() and not up.state_dict()


@pytest.mark.parametrize("antialias", [False, True])
def test_feature_taps_give_the_plain_forward_and_stop_early(antialias):
    torch.manual_seed(0)
    g = init_weights(ResnetGenerator(3, 3, ngf=4, n_blocks=3, antialias=antialias))
    x = torch.randn(2, 3, 32, 32)
    out, feats = g.forward_with_taps(x, ["input", "stem", "down1", "down2", "block1", "block3"])
    assert torch.equal(out, g(x))
    assert feats[0] is x
    assert [f.shape[1] for f in feats] == [g.tap_channels(t) for t in ("input", "stem", "down1", "down2", "block1",
                                                                        "block3")]  # fmt: skip
    assert feats[2].shape[-1] == (32 if antialias else 16)  # the raw conv output, before any subsampling
    none, early = g.forward_with_taps(x, ["block1", "down2"], encode_only=True)
    assert none is None and torch.equal(early[0], feats[4]) and torch.equal(early[1], feats[3])
    with pytest.raises(ValueError, match="unknown tap"):
        g.forward_with_taps(x, ["block4"])


def test_antialias_is_off_by_default_and_keeps_cyclegan_parameter_count():
    plain, blurred = ResnetGenerator(3, 3), ResnetGenerator(3, 3, antialias=True)
    assert count_parameters(plain) == count_parameters(blurred) == 11_378_179  # same convs, fixed filters extra
    assert not any("Blur" in type(m).__name__ for m in plain.modules())
