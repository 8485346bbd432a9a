"""Progressive GAN building blocks: shapes at every resolution, fade-in at α = 0 / 1, equalized
learning rate, pixel norm and minibatch standard deviation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gankit.nn.progressive import (
    EqConv2d,
    EqLinear,
    MinibatchStd,
    PixelNorm,
    ProgressiveDiscriminator,
    ProgressiveGenerator,
    real_at,
    widths,
)

TINY = {"fmap_base": 64, "fmap_max": 16}


@pytest.fixture
def nets():
    torch.manual_seed(0)
    return ProgressiveGenerator(8, 3, **TINY), ProgressiveDiscriminator(3, **TINY)


def test_widths_follow_the_paper_rule():
    assert widths(4, 32, 512, 64) == [64, 64, 32, 16]
    assert widths(4, 32, 64, 16) == [16, 8, 8, 8]


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_at_every_resolution(channels):
    g = ProgressiveGenerator(8, channels, **TINY)
    d = ProgressiveDiscriminator(channels, **TINY)
    z = torch.randn(4, 8)
    assert g.max_depth == d.max_depth == 3
    for depth, res in enumerate((4, 8, 16, 32)):
        for alpha in (0.0, 0.5, 1.0):
            x = g(z, depth, alpha)
            assert x.shape == (4, channels, res, res)
            assert d(x, depth, alpha).shape == (4, 1)
    assert g(z).shape[-1] == 32  # default: final resolution
    with pytest.raises(ValueError):
        d(torch.zeros(4, channels, 16, 16), 3)


def _g_new_path(g, z, depth):
    h = g.first(g.dense(g.input_norm(z)).view(len(z), g.widths[0], 4, 4))
    for k in range(depth):
        h = g.blocks[k](h)
    return g.to_rgb[depth](h)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_generator_fade_in_endpoints(nets, depth):
    g, _ = nets
    z = torch.randn(4, 8)
    old = F.interpolate(g(z, depth - 1, 1.0), scale_factor=2, mode="nearest")
    new = _g_new_path(g, z, depth)
    torch.testing.assert_close(g(z, depth, 0.0), old)
    torch.testing.assert_close(g(z, depth, 1.0), new)
    torch.testing.assert_close(g(z, depth, 0.25), 0.25 * new + 0.75 * old)
    assert not torch.allclose(old, new)


def _d_new_path(d, x, depth):
    h = d.from_rgb[depth](x)
    for k in range(depth, 0, -1):
        h = d.blocks[k - 1](h)
    return d.final_block(d.mbstd(h))


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_discriminator_fade_in_endpoints(nets, depth):
    _, d = nets
    x = torch.randn(4, 3, 4 * 2**depth, 4 * 2**depth)
    torch.testing.assert_close(d(x, depth, 0.0), d(F.avg_pool2d(x, 2), depth - 1, 1.0))
    torch.testing.assert_close(d(x, depth, 1.0), _d_new_path(d, x, depth))
    assert not torch.allclose(d(x, depth, 0.0), d(x, depth, 1.0))


def test_real_images_fade_like_the_generator():
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(real_at(x, 3, 1.0), x)
    torch.testing.assert_close(real_at(x, 1, 1.0), F.avg_pool2d(x, 4))
    old = F.interpolate(F.avg_pool2d(x, 8), scale_factor=2, mode="nearest")
    torch.testing.assert_close(real_at(x, 1, 0.0), old)


def test_equalized_conv_scales_at_runtime():
    torch.manual_seed(0)
    conv = EqConv2d(64, 64, 3)
    fan_in = 64 * 9
    assert conv.scale == pytest.approx(math.sqrt(2 / fan_in))
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.02)  # stored ~N(0, 1)
    assert conv.weight.mean().item() == pytest.approx(0.0, abs=0.02)
    x = torch.randn(2, 64, 5, 5)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight * conv.scale, conv.bias, padding=1))
    # the gradient reaching the stored weight is scaled too: that equalizes Adam's effective step
    conv(x).sum().backward()
    w = (conv.weight * conv.scale).detach().requires_grad_(True)
    F.conv2d(x, w, conv.bias, padding=1).sum().backward()
    torch.testing.assert_close(conv.weight.grad, w.grad * conv.scale)


def test_equalized_linear_and_off_switch():
    torch.manual_seed(0)
    lin = EqLinear(256, 128, gain=1.0)
    assert lin.scale == pytest.approx(1 / 16)
    assert lin.weight.std().item() == pytest.approx(1.0, abs=0.02)
    x = torch.randn(3, 256)
    torch.testing.assert_close(lin(x), F.linear(x, lin.weight / 16, lin.bias))
    plain = EqConv2d(64, 64, 3, equalized=False)
    assert plain.scale == 1.0
    assert plain.weight.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.03)  # He init stored directly
    torch.testing.assert_close(plain(x.new_ones(1, 64, 3, 3)), F.conv2d(x.new_ones(1, 64, 3, 3), plain.weight,
                                                                         plain.bias, padding=1))  # fmt: skip


def test_pixel_norm_unit_mean_square():
    x = torch.randn(3, 16, 5, 5) * 7 + 2
    y = PixelNorm()(x)
    torch.testing.assert_close(y.pow(2).mean(dim=1), torch.ones(3, 5, 5))
    torch.testing.assert_close(y / y.norm(dim=1, keepdim=True), x / x.norm(dim=1, keepdim=True))


def test_minibatch_std_adds_the_group_statistic():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 2, 2)
    y = MinibatchStd(group_size=4)(x)
    assert y.shape == (8, 4, 2, 2)
    torch.testing.assert_close(y[:, :3], x)
    for j in range(2):  # groups are images j, j+2, j+4, j+6
        group = torch.stack([x[j + 2 * t] for t in range(4)])
        value = (group.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        for t in range(4):
            torch.testing.assert_close(y[j + 2 * t, 3], value.expand(2, 2))
    # a batch not divisible by the group size uses the largest divisor; one image → std 0 (+ε)
    assert MinibatchStd(4)(torch.randn(6, 2, 3, 3)).shape == (6, 3, 3, 3)
    assert MinibatchStd(4)(torch.randn(1, 2, 3, 3))[:, 2].abs().max() < 1e-3
    same = torch.randn(1, 2, 3, 3).expand(4, 2, 3, 3)
    assert MinibatchStd(4)(same)[:, 2].max() < 1e-3


def test_switches_change_the_architecture():
    g = ProgressiveGenerator(8, 3, pixel_norm=False, equalized_lr=False, **TINY)
    assert not any(isinstance(m, PixelNorm) for m in g.modules())
    assert all(not m.equalized for m in g.modules() if isinstance(m, (EqConv2d, EqLinear)))
    d = ProgressiveDiscriminator(3, minibatch_std=False, **TINY)
    assert not any(isinstance(m, MinibatchStd) for m in d.modules())
    assert d(torch.randn(2, 3, 32, 32)).shape == (2, 1)
