"""Tiled translation equals the one-piece pass (whole-image instance-norm statistics, no seams)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gankit.api import CycleGAN
from gankit.cli import main
from gankit.data.images import pil_to_tensor, tensor_to_pil
from gankit.errors import GankitError
from gankit.inference import translate_paths, translate_tensor
from gankit.inference.tiled import (
    TILE_CHOICES,
    TilingUnsupported,
    check_tileable,
    choose_tile,
    estimate_one_piece_bytes,
    parse_bytes,
    translate_tiled,
)
from gankit.models.cyclegan import CycleGANConfig
from gankit.nn.generators import ResnetBlock, ResnetGenerator, UnetGenerator


@pytest.fixture(scope="module")
def photo_path(shared_data):
    return sorted((shared_data / "apple2orange" / "testA").glob("*.jpg"))[0]


def photo_tensor(path, size: tuple[int, int]) -> torch.Tensor:
    """The real photo resized (bicubic) to ``size`` = (width, height), as (1, 3, H, W) in [-1, 1]."""
    with Image.open(path) as im:
        return pil_to_tensor(im.convert("RGB").resize(size, Image.Resampling.BICUBIC))[None]


def small_resnet(**kw) -> nn.Module:
    torch.manual_seed(0)  # PyTorch's default init: outputs span the whole [-1, 1] range
    return ResnetGenerator(3, 3, ngf=8, n_blocks=2, **kw).eval()


def max_diff_255(a: torch.Tensor, b: torch.Tensor) -> int:
    """Max absolute difference of the 8-bit images, in 1/255 units."""
    x, y = (np.asarray(tensor_to_pil(t[0]), dtype=np.int16) for t in (a, b))
    return int(np.abs(x - y).max())


@pytest.mark.parametrize(
    ("size", "tiles"),
    [((256, 256), (64, 100, 256)), ((327, 198), (48, 77, 128))],  # 327x198 pads to 328x200
)
def test_tiled_equals_one_piece(photo_path, size, tiles):
    g = small_resnet()
    x = photo_tensor(photo_path, size)
    ref = translate_tensor(g, x, tile=0)
    assert ref.std() > 0.1  # a meaningful comparison: not a flat gray output
    for tile in tiles:
        y = translate_tiled(g, x, tile)
        assert y.shape == ref.shape == (1, 3, size[1], size[0])
        assert (y - ref).abs().max() < 1e-4, tile
        assert max_diff_255(y, ref) <= 2, tile


def test_statistics_are_those_of_the_whole_image(photo_path):
    g = small_resnet()
    x = photo_tensor(photo_path, (200, 136))
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(name):
        def fn(_module, inputs, _output):
            t = inputs[0].double()
            seen[name] = (t.mean(dim=(0, 2, 3)), t.var(dim=(0, 2, 3), unbiased=False))

        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in g.named_modules() if isinstance(m, nn.InstanceNorm2d)]
    try:
        translate_tensor(g, x, tile=0)
    finally:
        for h in handles:
            h.remove()
    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    translate_tiled(g, x, 40, stats=stats)
    assert sorted(stats) == sorted(seen) and len(stats) == 1 + 2 + 2 * 2 + 2  # stem, downs, blocks, ups
    for name, (mean, var) in seen.items():
        torch.testing.assert_close(stats[name][0], mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stats[name][1], var, rtol=1e-5, atol=1e-6)


def test_disk_backed_activations_match(photo_path, tmp_path):
    g = small_resnet()
    x = photo_tensor(photo_path, (150, 101))
    ref = translate_tiled(g, x, 64)
    on_disk = translate_tiled(g, x, 64, ram_bytes=0, tmp_dir=str(tmp_path))  # every activation in a file
    torch.testing.assert_close(on_disk, ref, atol=1e-6, rtol=0)
    assert list(tmp_path.iterdir()) == []  # scratch files are unlinked


@pytest.mark.parametrize(
    "kw",
    [
        dict(norm="none", padding="zeros"),
        dict(norm="batch", padding="replicate", dropout=0.5),
        dict(antialias=True),
        dict(antialias=True, norm="none"),
        dict(kernel_size=5),
        dict(downsample="avgpool", activation="leaky", kernel_size=5),
    ],
)
def test_other_norms_and_paddings(photo_path, kw):
    """… and CUT's antialiased sampling: blurred subsampling (a fixed depthwise conv) and blurred
    upsampling (a replication-padded transposed conv), tiled exactly; and SPEC §4's kernel size 5,
    LeakyReLU and average-pooled downsampling (a stride-1 conv, then the 2x2 average as one more stage)."""
    g = small_resnet(**kw)
    for m in g.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial running statistics
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    g.train()  # translate_* use eval semantics and restore the mode
    x = photo_tensor(photo_path, (97, 130))
    ref = translate_tensor(g, x, tile=0)
    y = translate_tiled(g, x, 40)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=0)
    assert g.training


def test_general_conv_stack_geometry():
    """Stride-2 convs with even kernels, dilation, a conv's own reflect padding, transposed convs with
    kernel 4, affine instance norm after an activation: every alignment matches the one-piece pass."""
    torch.manual_seed(0)
    g = nn.Sequential(
        nn.ReflectionPad2d((2, 1, 1, 2)),
        nn.Conv2d(3, 6, 3, dilation=(1, 2)),
        nn.LeakyReLU(0.2),
        nn.InstanceNorm2d(6, affine=True),
        nn.Conv2d(6, 8, 4, stride=2, padding=1),
        nn.InstanceNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"),
        nn.Tanh(),
        nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1),
        nn.InstanceNorm2d(6),
        nn.ReLU(),
        nn.ZeroPad2d(1),
        nn.Conv2d(6, 3, 3),
        nn.Sigmoid(),
    ).eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, nn.InstanceNorm2d) and m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    x = torch.rand(1, 3, 38, 52) * 2 - 1
    ref = translate_tensor(g, x, tile=0)
    for tile in (5, 11, 16, 64):
        torch.testing.assert_close(translate_tiled(g, x, tile), ref, atol=1e-5, rtol=0)


def test_average_pooling_is_tiled_exactly_on_even_sizes_and_refused_on_odd_ones():
    from gankit.nn.layers import PooledConv2d

    torch.manual_seed(0)
    g = nn.Sequential(PooledConv2d(3, 6, 3, 1, padding_mode="reflect"), nn.InstanceNorm2d(6), nn.LeakyReLU(0.2),
                      nn.Conv2d(6, 3, 3, padding=1)).eval()  # fmt: skip
    x = torch.rand(1, 3, 38, 52) * 2 - 1
    ref = translate_tensor(g, x, tile=0)
    for tile in (5, 16):
        torch.testing.assert_close(translate_tiled(g, x, tile), ref, atol=1e-5, rtol=0)
    odd = x[..., :37, :]
    with pytest.raises(TilingUnsupported, match=r"average pooling of an odd-sized activation \(52x37\)"):
        translate_tensor(g, odd, tile=16)
    assert translate_tensor(g, odd, max_memory=1).shape == (1, 3, 19, 26)  # automatic: one piece instead


def test_residual_blocks_anywhere():
    """A residual block right after the input and one ending the network (its input is kept to the end)."""
    torch.manual_seed(0)
    g = nn.Sequential(
        ResnetBlock(3, padding="zeros"),
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.InstanceNorm2d(8),
        nn.ReLU(),
        ResnetBlock(8, padding="replicate"),
    ).eval()
    x = torch.rand(1, 3, 45, 61) * 2 - 1
    ref = translate_tensor(g, x, tile=0)
    for tile in (8, 20):
        torch.testing.assert_close(translate_tiled(g, x, tile, ram_bytes=0), ref, atol=1e-5, rtol=0)


def test_unsupported_generators_are_refused_clearly():
    unet = UnetGenerator(3, 3, ngf=4, depth=3).eval()
    with pytest.raises(TilingUnsupported, match="--tile 0") as e:
        check_tileable(unet)
    assert isinstance(e.value, GankitError)
    x = torch.rand(1, 3, 40, 40) * 2 - 1
    with pytest.raises(TilingUnsupported):
        translate_tensor(unet, x, tile=16)
    with pytest.raises(TilingUnsupported, match="cannot tile layer"):
        check_tileable(nn.Sequential(nn.Conv2d(3, 3, 3), nn.Upsample(scale_factor=2)))
    # automatic tiling never picks a generator it cannot tile: one piece instead
    assert choose_tile(unet, (3, 4096, 4096), None, max_memory=1) == 0
    assert translate_tensor(unet, x, max_memory=1).shape == (1, 3, 40, 40)


def test_planning_and_sizes():
    g = ResnetGenerator(3, 3)  # the default resnet-9
    est = estimate_one_piece_bytes(g, 3, 4096, 4096)
    assert est > 4 * 2**30  # a 64-channel full-resolution activation alone is 4 GiB
    assert choose_tile(g, (3, 4096, 4096), None, max_memory=2 * 2**30) in TILE_CHOICES
    assert choose_tile(g, (3, 256, 256), None, max_memory=2 * 2**30) == 0
    assert choose_tile(g, (3, 256, 256), 128) == 128 and choose_tile(g, (3, 256, 256), 0) == 0
    assert parse_bytes("2.5G") == int(2.5 * 2**30) and parse_bytes("800MiB") == 800 * 2**20
    assert parse_bytes("1e9") == 10**9 and parse_bytes(123) == 123
    with pytest.raises(GankitError):
        parse_bytes("lots")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    torch.manual_seed(0)
    model = CycleGAN(CycleGANConfig(channels_a=3, channels_b=3, size=32, ngf=4, blocks=1).validate(),
                     with_discriminators=False)  # fmt: skip
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.reset_parameters()
    return model.save_generators(tmp_path_factory.mktemp("model") / "model.safetensors")


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im, dtype=np.int16)


def test_cli_tile_end_to_end(saved_model, photo_path, tmp_path, capsys):
    src = tmp_path / "in" / "apple.png"
    src.parent.mkdir()
    with Image.open(photo_path) as im:
        im.convert("RGB").resize((181, 143), Image.Resampling.BICUBIC).save(src)
    assert main(["translate", str(saved_model), str(src), "--out", str(tmp_path / "one"), "--tile", "0"]) == 0
    assert "tiled" not in capsys.readouterr().out
    rc = main(["translate", str(saved_model), str(src), "--out", str(tmp_path / "tiled"), "--tile", "48",
               "--roundtrip"])  # fmt: skip
    assert rc == 0
    assert "in 48 px tiles" in capsys.readouterr().out
    one, tiled = _pixels(tmp_path / "one" / "apple_a2b.png"), _pixels(tmp_path / "tiled" / "apple_a2b.png")
    assert one.shape == tiled.shape == (143, 181, 3) and one.std() > 10
    assert np.abs(one - tiled).max() <= 2
    assert sorted(p.name for p in (tmp_path / "tiled").iterdir()) == ["apple_a2b.png", "apple_a2b_roundtrip.png"]

    # automatic: a budget the one-piece pass exceeds makes it tile, and say so
    assert main(["translate", str(saved_model), str(src), "--out", str(tmp_path / "auto"), "--max-memory", "1M"]) == 0
    assert "exceed the memory budget" in capsys.readouterr().out
    assert np.abs(_pixels(tmp_path / "auto" / "apple_a2b.png") - one).max() <= 2


def test_cli_tile_with_unet_is_a_clear_error(photo_path, tmp_path, capsys):
    model = CycleGAN(CycleGANConfig(channels_a=3, channels_b=3, size=32, ngf=4, generator="unet").validate(),
                     with_discriminators=False)  # fmt: skip
    weights = model.save_generators(tmp_path / "unet.safetensors")
    assert main(["translate", str(weights), str(photo_path), "--out", str(tmp_path / "o"), "--tile", "64"]) == 1
    err = capsys.readouterr().err
    assert "gankit: error:" in err and "UnetGenerator cannot be tiled" in err
    assert not (tmp_path / "o").exists()


def test_translate_paths_records_tiled_images(saved_model, photo_path, tmp_path):
    model = CycleGAN.load(saved_model)
    result = translate_paths(model, [photo_path], tmp_path / "o", tile=100)
    assert result.ok and result.tiled == [(photo_path, 100)]
    result = translate_paths(model, [photo_path], tmp_path / "p", tile=1000)  # larger than the image: one piece
    assert result.ok and result.tiled == []
