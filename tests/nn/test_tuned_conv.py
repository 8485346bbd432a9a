"""TunedConv2d: a plain nn.Conv2d in every respect except which exact algorithm computes it on the CPU."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gankit.api import CycleGAN
from gankit.models.cyclegan import CycleGANConfig
from gankit.nn import conv
from gankit.nn.conv import ALGORITHMS, PLAIN, ConvAlgorithmTuner, TunedConv2d, candidates, tune_convolutions
from gankit.nn.generators import ResnetGenerator

SHAPES = [(16, 3, (7, 7), 23), (8, 5, (3, 3), 20), (6, 7, (3, 3), 13), (4, 6, (3, 5), 17), (5, 4, (1, 3), 9)]


def _args(kind, in_ch, out_ch, kernel, side, dtype, batch=2):
    kh, kw = kernel
    x = torch.randn(batch, in_ch, side + kh - 1, side + kw - 1, dtype=dtype)
    w = torch.randn(out_ch, in_ch, kh, kw, dtype=dtype)
    g = torch.randn(batch, out_ch, side, side, dtype=dtype)
    return (x, w) if kind == "forward" else (g, x, w)


@pytest.mark.parametrize("kind", list(ALGORITHMS))
@pytest.mark.parametrize("shape", SHAPES)
def test_every_algorithm_computes_the_same_convolution(kind, shape):
    torch.manual_seed(0)
    for dtype, rtol in ((torch.float64, 1e-12), (torch.float32, 5e-5)):
        args = _args(kind, *shape, dtype)
        reference = ALGORITHMS[kind][PLAIN](*args)
        names = candidates(kind, args[0] if kind == "forward" else args[1], args[-1])
        assert PLAIN in names and ("column-taps" in names) == (shape[2][1] > 1)
        assert ("winograd" in names) == (kind == "weight_grad" and shape[2] == (3, 3))
        for name in names:
            out = ALGORITHMS[kind][name](*args)
            assert out.shape == reference.shape, name
            err = (out - reference).abs().max() / reference.abs().max()
            assert err <= rtol, f"{kind}/{name} {dtype}: relative error {err:.2e}"


def test_nnpack_is_a_candidate_only_in_float32_with_a_spatial_kernel():
    if not conv.nnpack_available():
        pytest.skip("this PyTorch build has no NNPACK")
    x32, w33 = torch.zeros(1, 4, 8, 8), torch.zeros(4, 4, 3, 3)
    assert "nnpack" in candidates("forward", x32, w33)
    assert "nnpack" in candidates("input_grad", x32, w33)
    assert "nnpack" not in candidates("weight_grad", x32, w33)  # NNPACK's kernel gradient is not exposed
    assert "nnpack" not in candidates("forward", x32.double(), w33.double())
    assert "nnpack" not in candidates("forward", x32, torch.zeros(4, 4, 1, 3))


def _pair(in_ch=16, out_ch=3, kernel=7, tuner=None, **kw):
    torch.manual_seed(0)
    tuned = TunedConv2d(in_ch, out_ch, kernel, **kw)
    plain = nn.Conv2d(in_ch, out_ch, kernel, **kw)
    plain.load_state_dict(tuned.state_dict())
    tune_convolutions(tuned, tuner or ConvAlgorithmTuner(repeats=1))
    return tuned, plain


@pytest.mark.parametrize("out_ch,kernel", [(3, 7), (32, 3), (4, (3, 5))])
@pytest.mark.parametrize("bias", [True, False])
def test_module_output_and_gradients_equal_the_plain_conv(out_ch, kernel, bias):
    tuned, plain = _pair(in_ch=32, out_ch=out_ch, kernel=kernel, bias=bias)
    assert tuned.tunable and tuned.tuned
    x = torch.randn(2, 32, 40, 44, requires_grad=True)
    a, b = tuned(x), plain(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())
    g = torch.randn_like(a)
    grads_t = torch.autograd.grad(a, [x, *tuned.parameters()], g)
    grads_p = torch.autograd.grad(b, [x, *plain.parameters()], g)
    for gt, gp in zip(grads_t, grads_p):
        torch.testing.assert_close(gt, gp, rtol=1e-4, atol=1e-4 * gp.abs().max().item())
    computations = {key[0] for key in tuned.tuner.choices}
    assert computations == {"forward", "input_grad", "weight_grad"}


def test_float64_is_exact_and_gradients_flow_only_where_asked():
    tuned, plain = _pair(in_ch=8, out_ch=3, kernel=7)
    tuned, plain = tuned.double(), plain.double()
    x = torch.randn(1, 8, 20, 20, dtype=torch.float64)  # no input gradient wanted
    tuned(x).square().sum().backward()
    plain(x).square().sum().backward()
    for pt, pp in zip(tuned.parameters(), plain.parameters()):
        torch.testing.assert_close(pt.grad, pp.grad, rtol=1e-10, atol=1e-10)
    assert not any(key[0] == "input_grad" for key in tuned.tuner.choices)


def test_tuner_times_each_shape_once_and_shares_it_between_convs():
    tuner = ConvAlgorithmTuner(repeats=1)
    a, _ = _pair(tuner=tuner)
    b, _ = _pair(tuner=tuner)
    x = torch.randn(1, 16, 24, 24)
    a(x)
    assert len(tuner.choices) == 1
    b(x)
    b(x)
    assert len(tuner.choices) == 1
    b(torch.randn(1, 16, 30, 24))
    assert len(tuner.choices) == 2
    rows = tuner.summary()
    assert rows[0]["computation"] == "forward" and rows[0]["chosen"] in ALGORITHMS["forward"]


def test_tuner_rejects_a_wrong_algorithm_and_keeps_plain_without_a_clear_win(monkeypatch):
    monkeypatch.setitem(conv.FORWARD, "column-taps", lambda x, w: F.conv2d(x, w) + 1.0)
    tuner = ConvAlgorithmTuner(repeats=1)
    x, w = torch.randn(1, 16, 30, 30), torch.randn(3, 16, 7, 7)
    assert tuner.choose("forward", (x, w)) != "column-taps"
    key = next(iter(tuner.choices))
    assert "column-taps" not in tuner.timings.get(key, {})
    never_worth_it = ConvAlgorithmTuner(repeats=1, margin=1e6)
    assert never_worth_it.choose("input_grad", (torch.randn(1, 3, 24, 24), x, w)) == PLAIN


def test_double_backward_through_a_tuned_conv_matches_the_plain_one():
    """A gradient penalty differentiates the input gradient again."""
    tuned, plain = _pair(in_ch=6, out_ch=4, kernel=3)
    tuned, plain = tuned.double(), plain.double()
    results = []
    for m in (tuned, plain):
        x = torch.randn(2, 6, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        x.requires_grad_(True)
        (gx,) = torch.autograd.grad(m(x).pow(2).sum(), x, create_graph=True)
        penalty = gx.pow(2).sum()
        results.append(torch.autograd.grad(penalty, [x, m.weight]))
    for gt, gp in zip(*results):
        torch.testing.assert_close(gt, gp, rtol=1e-10, atol=1e-10)


def test_untunable_settings_and_no_tuner_take_the_plain_path():
    for kw in ({"stride": 2}, {"padding": 1}, {"dilation": 2}):
        tuned, plain = _pair(kernel=3, **kw)
        assert not tuned.tunable
        x = torch.randn(1, 16, 12, 12)
        torch.testing.assert_close(tuned(x), plain(x), rtol=0, atol=0)
        assert not tuned.tuner.choices
    tuned, plain = _pair()
    tune_convolutions(tuned, None)
    assert not tuned.tuned
    x = torch.randn(1, 16, 20, 20)
    torch.testing.assert_close(tuned(x), plain(x), rtol=0, atol=0)


def test_scripts_and_traces_through_the_plain_conv():
    tuned, plain = _pair()
    x = torch.randn(1, 16, 20, 20)
    for exported in (torch.jit.script(tuned), torch.jit.trace(tuned, (x,))):
        buf = io.BytesIO()
        torch.jit.save(exported, buf)
        buf.seek(0)
        torch.testing.assert_close(torch.jit.load(buf)(x), plain(x))


def test_resnet_padded_convs_are_tuned_convs_and_state_dict_is_unchanged():
    g = ResnetGenerator(3, 3, ngf=8, n_blocks=2)
    tuned = [m for m in g.modules() if isinstance(m, TunedConv2d)]
    assert len(tuned) == 1 + 2 * 2 + 1  # stem, two per residual block, head
    assert "head.1.weight" in g.state_dict() and g.state_dict()["head.1.weight"].shape == (3, 8, 7, 7)
    assert not any(m.tuned for m in tuned)  # plain until a model hands them a tuner


@pytest.mark.parametrize("options,tuned", [({}, True), ({"conv_algorithms": "plain"}, False),
                                           ({"deterministic": True}, False)])  # fmt: skip
def test_cyclegan_tunes_its_convs_unless_plain_or_deterministic(options, tuned):
    config = CycleGANConfig(channels_a=3, channels_b=3, size=32, ngf=8, ndf=8, blocks=1, **options).validate()
    model = CycleGAN(config)
    assert (model.conv_tuner is not None) == tuned
    convs = [m for m in model.modules() if isinstance(m, TunedConv2d)]
    assert convs and all(m.tuned == tuned for m in convs)
    assert not any("tuner" in k for k in model.state_dict())
