"""ColumnTapConv2d: a plain nn.Conv2d in every respect except how the CPU computes it."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from gankit.nn.generators import ResnetGenerator
from gankit.nn.layers import ColumnTapConv2d


def _pair(in_ch=16, out_ch=3, kernel=7, **kw):
    torch.manual_seed(0)
    fast = ColumnTapConv2d(in_ch, out_ch, kernel, **kw)
    plain = nn.Conv2d(in_ch, out_ch, kernel, **kw)
    plain.load_state_dict(fast.state_dict())
    return fast, plain


@pytest.mark.parametrize("kernel", [(7, 7), (3, 5), (1, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_output_and_gradients_equal_the_plain_conv(kernel, bias):
    fast, plain = _pair(kernel=kernel, bias=bias)
    assert fast.column_taps
    x = torch.randn(2, 16, 23, 31, dtype=torch.float64, requires_grad=True)
    fast, plain = fast.double(), plain.double()
    a, b = fast(x), plain(x)
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(a)
    params_f = [x, *fast.parameters()]
    params_p = [x, *plain.parameters()]
    for ga, gb in zip(torch.autograd.grad(a, params_f, g), torch.autograd.grad(b, params_p, g)):
        torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), b)


def test_other_settings_take_the_plain_path():
    for kw in ({"stride": 2}, {"padding": 1}, {"dilation": 2}):
        fast, plain = _pair(kernel=3, **kw)
        assert not fast.column_taps
        x = torch.randn(1, 16, 12, 12)
        torch.testing.assert_close(fast(x), plain(x))


def test_resnet_head_uses_it_and_state_dict_is_unchanged():
    g = ResnetGenerator(3, 3, ngf=8, n_blocks=1)
    heads = [m for m in g.modules() if isinstance(m, ColumnTapConv2d)]
    assert len(heads) == 1 and heads[0].out_channels == 3
    assert all(type(m) is nn.Conv2d for m in g.modules() if isinstance(m, nn.Conv2d) and m is not heads[0])
    assert "head.1.weight" in g.state_dict() and g.state_dict()["head.1.weight"].shape == (3, 8, 7, 7)


def test_scripts_and_traces_through_the_plain_conv():
    fast, plain = _pair()
    x = torch.randn(1, 16, 20, 20)
    for exported in (torch.jit.script(fast), torch.jit.trace(fast, (x,))):
        buf = io.BytesIO()
        torch.jit.save(exported, buf)
        buf.seek(0)
        torch.testing.assert_close(torch.jit.load(buf)(x), plain(x))
