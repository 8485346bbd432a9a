"""Augmented CycleGAN's networks: conditional instance norm, the conditional resnet generator and its
plain form for one code (what the tiler and single-input consumers run), the latent encoder and the
code discriminator."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gankit.inference.tiled import check_tileable, translate_tiled
from gankit.inference.translate import translate_tensor
from gankit.losses import gradient_penalty
from gankit.nn.generators import ResnetGenerator
from gankit.nn.latent import (
    CodedGenerator,
    CodeDiscriminator,
    ConditionalInstanceNorm2d,
    ConditionalResnetGenerator,
    LatentEncoder,
)
from gankit.nn.layers import init_weights

K = 4


def generator(antialias: bool = False, cin: int = 1, cout: int = 3) -> ConditionalResnetGenerator:
    torch.manual_seed(0)
    g = ConditionalResnetGenerator(cin, cout, K, ngf=4, n_blocks=2, antialias=antialias)
    return init_weights(g, "normal", 0.3).eval()  # a wide init: the code visibly matters


def test_conditional_instance_norm_is_instance_norm_scaled_and_shifted_per_image():
    norm = ConditionalInstanceNorm2d(3, K)
    x, z = torch.randn(2, 3, 5, 6), torch.randn(2, K)
    with torch.no_grad():
        norm.modulation.weight.zero_()
        norm.modulation.bias.zero_()
    assert torch.allclose(norm(x, z), F.instance_norm(x), atol=1e-6)  # γ = β = 0: CycleGAN's norm
    torch.nn.init.normal_(norm.modulation.weight)
    scale, shift = norm.scale_and_shift(z)
    expected = F.instance_norm(x) * scale[:, :, None, None] + shift[:, :, None, None]
    assert torch.allclose(norm(x, z), expected, atol=1e-6)
    assert not torch.allclose(scale[0], scale[1])  # two codes, two modulations
    assert torch.allclose(norm.bound(z[:1])(x[:1]), norm(x[:1], z[:1]), atol=1e-5)


def test_every_instance_norm_of_the_generator_is_conditional():
    g = generator()
    norms = [m for m in g.modules() if isinstance(m, ConditionalInstanceNorm2d)]
    assert len(norms) == 1 + 2 + 2 * 2 + 2  # stem, down ×2, two per residual block, up ×2
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in g.modules())


@pytest.mark.parametrize("antialias", [False, True])
def test_codes_change_the_output_and_the_bound_generator_reproduces_it(antialias):
    g = generator(antialias)
    x, z = torch.rand(3, 1, 16, 16) * 2 - 1, torch.randn(3, K)
    with torch.no_grad():
        y = g(x, z)
        assert y.shape == (3, 3, 16, 16)
        other = g(x, torch.randn(3, K))
        assert (y - other).abs().mean() > 1e-2  # the code matters
        assert torch.equal(g(x, z), y)  # deterministic for a given code
        for i in range(3):  # one code per image of a batch = each image alone
            assert torch.allclose(g(x[i : i + 1], z[i : i + 1]), y[i : i + 1], atol=1e-4)
        one = g(x, z[:1])  # (1, K): the same code for the whole batch
        assert torch.allclose(one[0], y[0], atol=1e-4) and not torch.allclose(one[1], y[1], atol=1e-3)
        plain = g.bind(z[:1])
        assert type(plain) is ResnetGenerator
        assert torch.allclose(plain(x), one, atol=1e-4)
    shared = {p.data_ptr() for p in g.parameters()}
    convs = [m.weight for m in plain.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    assert all(w.data_ptr() in shared for w in convs if isinstance(w, torch.nn.Parameter))  # weights not copied


@pytest.mark.parametrize("options", [{"kernel_size": 5}, {"activation": "leaky"}, {"downsample": "avgpool"}])
def test_the_seeds_switches_reach_the_conditional_generator(options):
    """--kernel-size, --activation and --downsample build the same layers as CycleGAN's resnet generator,
    and the plain generator bound to one code still computes the conditional one."""
    torch.manual_seed(0)
    g = ConditionalResnetGenerator(1, 3, K, ngf=4, n_blocks=2, **options).eval()
    plain = ResnetGenerator(1, 3, 4, 2, norm="instance", **options)
    layer_types = {type(m).__name__ for m in g.body.modules()}
    assert layer_types >= {type(m).__name__ for m in plain.modules() if not isinstance(m, torch.nn.InstanceNorm2d)}
    convs = [m for m in g.body.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.weight.shape for c in convs] == [
        c.weight.shape for c in plain.modules() if isinstance(c, torch.nn.Conv2d)
    ]
    x, z = torch.rand(2, 1, 16, 16) * 2 - 1, torch.randn(1, K)
    with torch.no_grad():
        assert torch.allclose(g.bind(z)(x), g(x, z), atol=1e-4)


def test_bind_takes_exactly_one_code():
    g = generator()
    with pytest.raises(ValueError, match="one code"):
        g.bind(torch.randn(2, K))
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        CodedGenerator(g, torch.randn(1, K + 1))
    with pytest.raises(ValueError, match="3 latent codes for 2 images"):
        CodedGenerator(g, torch.randn(3, K))(torch.zeros(2, 1, 16, 16))


def test_tiles_of_a_large_image_all_get_the_same_code():
    g = generator()
    coded = CodedGenerator(g, torch.randn(1, K))
    check_tileable(coded)
    x = torch.rand(1, 1, 40, 52) * 2 - 1
    whole = translate_tensor(coded, x, tile=0)
    tiled = translate_tiled(coded, x, tile=16)
    assert torch.allclose(tiled, whole, atol=1e-4)
    assert torch.allclose(translate_tensor(coded, x, tile=16), whole, atol=1e-4)
    other = translate_tensor(CodedGenerator(g, torch.randn(1, K)), x, tile=16)
    assert (other - whole).abs().mean() > 1e-2
    with pytest.raises(Exception, match="one latent code per image"):  # TilingUnsupported
        check_tileable(CodedGenerator(g, torch.randn(2, K)))


def test_encoder_and_code_discriminator_shapes_and_errors():
    e = LatentEncoder(1, 3, K, width=4)
    assert e(torch.zeros(2, 1, 32, 32), torch.zeros(2, 3, 32, 32)).shape == (2, K)
    assert e(torch.zeros(1, 1, 20, 28), torch.zeros(1, 3, 20, 28)).shape == (1, K)  # any size
    with pytest.raises(ValueError, match="differ in size"):
        e(torch.zeros(1, 1, 32, 32), torch.zeros(1, 3, 16, 16))
    d = CodeDiscriminator(K, width=8)
    z = torch.randn(5, K)
    assert d(z).shape == (5, 1)
    penalty = gradient_penalty(d, z, torch.randn(5, K))  # WGAN-GP on codes: interpolates per row
    assert penalty.shape == () and torch.isfinite(penalty)


@pytest.mark.parametrize(("mode", "cin", "cout"), [("keep", 1, 3), ("residual", 3, 1)])
def test_the_luminance_tie_holds_in_every_path_of_the_generator(mode, cin, cout):
    """--keep-luminance: gray → colour outputs have exactly the input as their luma and colour → gray outputs
    are the input's luma plus the network's correction, in the plain and the conditional generator, bound to
    one code, with taps (CUT) and tiled (the exact executor keeps the input to the end)."""
    x = torch.rand(1, cin, 40, 52, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(0)
    plain = init_weights(ResnetGenerator(cin, cout, ngf=4, n_blocks=2, luminance=mode), "normal", 0.3).eval()
    torch.manual_seed(0)
    untied = init_weights(ResnetGenerator(cin, cout, ngf=4, n_blocks=2), "normal", 0.3).eval()
    assert all(torch.equal(p, q) for p, q in zip(plain.state_dict().values(), untied.state_dict().values()))
    with torch.no_grad():
        y, raw = plain(x), untied(x)
        luma = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:] if cin == 3 else x
        if mode == "keep":
            raw_luma = 0.299 * raw[:, :1] + 0.587 * raw[:, 1:2] + 0.114 * raw[:, 2:]
            torch.testing.assert_close(0.299 * y[:, :1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:], x)
            torch.testing.assert_close(y, raw - raw_luma + x)
        else:
            torch.testing.assert_close(y, luma + raw)
        assert torch.equal(plain.forward_with_taps(x, ["block1"])[0], y)
        torch.testing.assert_close(translate_tiled(plain, x, tile=16, ram_bytes=0), y, atol=1e-4, rtol=0)
        g = ConditionalResnetGenerator(cin, cout, K, ngf=4, n_blocks=2, luminance=mode).eval()
        z = torch.randn(1, K)
        coded = g(x, z)
        torch.testing.assert_close(g.bind(z)(x), coded)
        torch.testing.assert_close(translate_tiled(CodedGenerator(g, z), x, tile=16), coded, atol=1e-4, rtol=0)
        if mode == "keep":
            torch.testing.assert_close(0.299 * coded[:, :1] + 0.587 * coded[:, 1:2] + 0.114 * coded[:, 2:], x)


def test_the_luminance_tie_refuses_channels_it_cannot_tie():
    with pytest.raises(ValueError, match="luminance mode 'keep' maps 1 to 3 channels, not 3 to 3"):
        ResnetGenerator(3, 3, ngf=4, n_blocks=1, luminance="keep")
    with pytest.raises(ValueError, match="unknown luminance mode 'bright'"):
        ResnetGenerator(1, 3, ngf=4, n_blocks=1, luminance="bright")
