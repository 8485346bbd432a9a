"""SPEC §4's network switches (issue 17): LeakyReLU everywhere, average-pooled downsampling and the
kernel size reach every generator and discriminator that can honour them, are refused where one
cannot, and leave the default networks as they were."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gankit.nn import GENERATORS, build_discriminator, build_generator
from gankit.nn.layers import PooledConv2d

SMALL = {"resnet": {}, "unet": {}, "unet-upsample": {}, "unet-skip": {"depth": 5}}


def generator(name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return build_generator(name, 3, 3, ngf=4, n_blocks=1, **SMALL[name], **kw).eval()


def discriminator(name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return build_discriminator(name, 3, ndf=4, image_size=32, **kw).eval()


def shapes(net: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def kernels(net: nn.Module) -> set[int]:
    return {m.kernel_size[0] for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}


def strided(net: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in net.modules())


def count(net: nn.Module, kind: type) -> int:
    return sum(type(m) is kind for m in net.modules())


def test_default_networks_have_their_published_kernels_and_activations():
    expected = {"resnet": {7, 3}, "unet": {3}, "unet-upsample": {4}, "unet-skip": {4}}
    for name in GENERATORS:
        g = generator(name)
        assert kernels(g) == expected[name], name
        assert count(g, nn.ReLU) > 0 and not any(isinstance(m, PooledConv2d) for m in g.modules()), name
    assert kernels(discriminator("patch")) == {4}
    assert kernels(discriminator("pixel")) == {1}
    assert kernels(discriminator("scalar")) == {3}


@pytest.mark.parametrize("name", GENERATORS)
def test_leaky_activation_replaces_every_relu_of_a_generator(name):
    plain, leaky = generator(name), generator(name, activation="leaky")
    assert count(leaky, nn.ReLU) == 0
    assert count(leaky, nn.LeakyReLU) == count(plain, nn.LeakyReLU) + count(plain, nn.ReLU)
    assert all(m.negative_slope == 0.2 for m in leaky.modules() if isinstance(m, nn.LeakyReLU))
    assert shapes(leaky) == shapes(plain)
    x = torch.randn(1, 3, 32, 32)
    assert leaky(x).shape == plain(x).shape
    assert not torch.allclose(leaky(x), plain(x))  # same weights (same seed), other activations


@pytest.mark.parametrize("kind, name", [("g", n) for n in GENERATORS] + [("d", "patch"), ("d", "scalar")])
def test_avgpool_downsampling_leaves_no_strided_conv_and_keeps_parameters_and_shapes(kind, name):
    build = generator if kind == "g" else discriminator
    plain, pooled = build(name), build(name, downsample="avgpool")
    assert strided(plain) > 0 and strided(pooled) == 0
    assert sum(isinstance(m, PooledConv2d) for m in pooled.modules()) == strided(plain)
    assert shapes(pooled) == shapes(plain)  # same keys and shapes: inits and weight counts compare
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), pooled.state_dict().values()))
    x = torch.randn(2, 3, 32, 32)
    assert pooled(x).shape == plain(x).shape
    assert not torch.allclose(pooled(x), plain(x))


@pytest.mark.parametrize("kernel, padding", [(3, 1), (4, 1), (5, 2)])
def test_pooled_conv_is_a_stride_1_conv_then_2x2_average_with_the_strided_conv_size(kernel, padding):
    torch.manual_seed(0)
    pooled = PooledConv2d(3, 5, kernel, padding)
    strided_conv = nn.Conv2d(3, 5, kernel, 2, padding)
    for side in (16, 17):  # odd sides: the last window is partial and averages the pixels it covers
        x = torch.randn(2, 3, side, side)
        full = F.conv2d(x, pooled.weight, pooled.bias, 1, padding)
        torch.testing.assert_close(pooled(x), F.avg_pool2d(full, 2, ceil_mode=True))
        assert pooled(x).shape == strided_conv(x).shape
        if full.shape[-1] % 2 == 0:  # no partial window: plain 2x2 average pooling
            torch.testing.assert_close(pooled(x), F.avg_pool2d(full, 2))


@pytest.mark.parametrize("name", GENERATORS)
def test_kernel_size_reaches_every_generator_conv_but_the_resnet_stem_and_head(name):
    plain, wide = generator(name), generator(name, kernel_size=5)
    assert kernels(wide) == ({7, 5} if name == "resnet" else {5})
    if name == "resnet":
        convs = [m for m in wide.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        assert [m.kernel_size[0] for m in (convs[0], convs[-1])] == [7, 7]
    x = torch.randn(1, 3, 32, 32)
    assert wide(x).shape == plain(x).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("name, default", [("patch", 4), ("scalar", 3)])
def test_kernel_size_reaches_every_discriminator_conv(name, default):
    assert kernels(discriminator(name)) == {default}
    wide = discriminator(name, kernel_size=5)
    assert kernels(wide) == {5}
    assert wide(torch.randn(2, 3, 32, 32)).shape[0] == 2


def test_architectures_refuse_options_they_cannot_honour():
    with pytest.raises(ValueError, match="pixel discriminator has 1x1 convs only"):
        build_discriminator("pixel", 3, kernel_size=5)
    with pytest.raises(ValueError, match="resnet generator needs an odd kernel size"):
        build_generator("resnet", 3, 3, kernel_size=4)
    with pytest.raises(ValueError, match="antialiased sampling downsamples by blurring"):
        build_generator("resnet", 3, 3, antialias=True, downsample="avgpool")
    with pytest.raises(ValueError, match="unknown activation"):
        build_generator("unet", 3, 3, activation="gelu")
    with pytest.raises(ValueError, match="unknown downsampling"):
        build_discriminator("patch", 3, downsample="maxpool")
