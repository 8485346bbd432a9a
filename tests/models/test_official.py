"""Official pytorch-CycleGAN-and-pix2pix checkpoints load and reproduce the official networks' outputs.

The reference networks below re-create, layer by layer, the index layout of the official
``ResnetGenerator`` / ``UnetGenerator`` (networks.py of junyanz/pytorch-CycleGAN-and-pix2pix), so the
state dicts they save have the same key names as real ``latest_net_G_A.pth`` files.
"""

from __future__ import annotations

import functools
import random

import pytest
import torch
from torch import nn

from gankit.api import CycleGAN
from gankit.errors import CheckpointError
from gankit.models.official import load_official_generator, map_official_state_dict, official_state_dict
from gankit.nn.conv import tune_convolutions
from gankit.nn.generators import ResnetGenerator, SkipUnetGenerator

INSTANCE = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
OLD_INSTANCE = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=True)  # PyTorch < 0.4
BATCH = functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)


def _uses_bias(norm) -> bool:
    return norm.func is nn.InstanceNorm2d


class RefResnetBlock(nn.Module):
    def __init__(self, dim, norm, dropout):
        super().__init__()
        bias = _uses_bias(norm)
        block = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm(dim), nn.ReLU(True)]
        if dropout:
            block.append(nn.Dropout(0.5))
        block += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm(dim)]
        self.conv_block = nn.Sequential(*block)

    def forward(self, x):
        return x + self.conv_block(x)


class RefResnetGenerator(nn.Module):
    """The official ResnetGenerator: one Sequential named ``model``."""

    def __init__(self, in_nc, out_nc, ngf=64, n_blocks=9, norm=INSTANCE, dropout=False):
        super().__init__()
        bias = _uses_bias(norm)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, ngf, 7, bias=bias), norm(ngf), nn.ReLU(True)]
        for i in range(2):
            m = 2**i
            layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1, bias=bias), norm(ngf * m * 2),
                       nn.ReLU(True)]  # fmt: skip
        layers += [RefResnetBlock(ngf * 4, norm, dropout) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            up = nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)
            layers += [up, norm(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class RefUnetBlock(nn.Module):
    """The official UnetSkipConnectionBlock."""

    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                 norm=BATCH, dropout=False):  # fmt: skip
        super().__init__()
        self.outermost = outermost
        bias = _uses_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            model = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            model = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, norm(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=bias)
            model = [nn.LeakyReLU(0.2, True), downconv, norm(inner_nc), submodule, nn.ReLU(True), upconv,
                     norm(outer_nc)]  # fmt: skip
            if dropout:
                model.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class RefUnetGenerator(nn.Module):
    def __init__(self, in_nc, out_nc, num_downs, ngf=64, norm=BATCH, dropout=False):
        super().__init__()
        block = RefUnetBlock(ngf * 8, ngf * 8, norm=norm, innermost=True)
        for _ in range(num_downs - 5):
            block = RefUnetBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        block = RefUnetBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = RefUnetBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = RefUnetBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = RefUnetBlock(out_nc, ngf, input_nc=in_nc, submodule=block, outermost=True, norm=norm)

    def forward(self, x):
        return self.model(x)


@torch.no_grad()
def randomize(net: nn.Module, seed: int) -> nn.Module:
    """Weights and BN statistics far from any init, so a mis-mapped tensor changes the output."""
    g = torch.Generator().manual_seed(seed)
    for name, t in net.state_dict().items():
        if t.is_floating_point():
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)
    return net.eval()


# the key names of a real official resnet_9blocks generator (latest_net_G_A.pth of any CycleGAN model)
OFFICIAL_RESNET9_KEYS = [
    "model.1.weight", "model.1.bias", "model.4.weight", "model.4.bias", "model.7.weight", "model.7.bias",
    *[f"model.{i}.conv_block.{j}.{p}" for i in range(10, 19) for j in (1, 5) for p in ("weight", "bias")],
    "model.19.weight", "model.19.bias", "model.22.weight", "model.22.bias",
    "model.26.weight", "model.26.bias",
]  # fmt: skip


def test_reference_reproduces_the_official_resnet9_layout():
    ref = RefResnetGenerator(3, 3, ngf=64, n_blocks=9)
    assert list(ref.state_dict()) == OFFICIAL_RESNET9_KEYS
    assert "model.10.conv_block.1.weight" in OFFICIAL_RESNET9_KEYS
    assert sum(p.numel() for p in ref.parameters()) == 11_378_179  # the official resnet_9blocks count
    ours = ResnetGenerator(3, 3, 64, 9)
    assert [t.shape for t in ours.state_dict().values()] == [t.shape for t in ref.state_dict().values()]


def test_reference_reproduces_the_official_unet_layout():
    keys = list(RefUnetGenerator(3, 3, 8, ngf=8).state_dict())
    assert keys[:3] == [
        "model.model.0.weight",
        "model.model.1.model.1.weight",
        "model.model.1.model.2.weight",
    ]
    assert "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.1.weight" in keys  # innermost
    assert keys[-2:] == ["model.model.3.weight", "model.model.3.bias"]


def _save_variant(state: dict, variant: str, path):
    if variant == "module":
        state = {f"module.{k}": v for k, v in state.items()}
    elif variant == "wrapped":
        state = {"state_dict": state}
    torch.save(state, path)
    return path


def _resnet_state(ref: RefResnetGenerator, variant: str, seed: int) -> dict:
    if variant != "old":
        return ref.state_dict()
    # checkpoints from PyTorch < 0.4 carry InstanceNorm running stats, interleaved with the weights
    old = RefResnetGenerator(3, 3, ngf=8, n_blocks=9, norm=OLD_INSTANCE)
    old.load_state_dict(ref.state_dict(), strict=False)
    g = torch.Generator().manual_seed(seed)
    state = old.state_dict()
    for k, v in state.items():
        if k.endswith(("running_mean", "running_var")):
            v.copy_(torch.rand(v.shape, generator=g) + 3)  # would ruin the output if used
    assert any(k.endswith("running_mean") for k in state)
    assert any(k.endswith("num_batches_tracked") for k in state)
    return state


@pytest.mark.parametrize("variant", ["plain", "old", "module", "wrapped"])
def test_cyclegan_load_official_matches_reference(tmp_path, variant):
    ref_a = randomize(RefResnetGenerator(3, 3, ngf=8, n_blocks=9), 1)
    ref_b = randomize(RefResnetGenerator(3, 3, ngf=8, n_blocks=9), 2)
    path_a = _save_variant(_resnet_state(ref_a, variant, 3), variant, tmp_path / "latest_net_G_A.pth")
    path_b = _save_variant(_resnet_state(ref_b, variant, 4), variant, tmp_path / "latest_net_G_B.pth")
    model = CycleGAN.load_official(path_a, path_b, ngf=8)
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    # tuned convs pick Winograd/FFT/column taps by timing (other rounding, amplified by 9 blocks);
    # a wrong or misplaced weight moves the tanh output by 0.1 or more
    with torch.no_grad():
        torch.testing.assert_close(model.generator("a2b")(x), ref_a(x), atol=1e-3, rtol=0)
        torch.testing.assert_close(model.generator("b2a")(x), ref_b(x), atol=1e-3, rtol=0)
    tune_convolutions(model, None)  # PyTorch's own convs: the reference's arithmetic
    with torch.no_grad():
        torch.testing.assert_close(model.generator("a2b")(x), ref_a(x), atol=1e-5, rtol=0)


def test_official_resnet_batchnorm_dropout_six_blocks(tmp_path):
    ref = randomize(RefResnetGenerator(3, 3, ngf=8, n_blocks=6, norm=BATCH, dropout=True), 5)
    path = tmp_path / "G.pth"
    torch.save(ref.state_dict(), path)
    state = official_state_dict(path)
    assert any(k.endswith("running_var") for k in state)  # BatchNorm keeps its statistics
    model = CycleGAN.load_official(path, path, ngf=8, blocks=6, norm="batch", dropout=0.5)
    x = torch.rand(1, 3, 36, 28) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model.generator("a2b")(x), ref(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("norm", "name", "dropout"), [(BATCH, "batch", True), (INSTANCE, "instance", False)])
def test_official_unet_loads_into_skip_unet(tmp_path, norm, name, dropout):
    ref = randomize(RefUnetGenerator(3, 1, num_downs=6, ngf=4, norm=norm, dropout=dropout), 7)
    path = tmp_path / "latest_net_G.pth"
    torch.save(ref.state_dict(), path)
    ours = load_official_generator(SkipUnetGenerator(3, 1, ngf=4, num_downs=6, norm=name, dropout=0.5), path)
    ours.eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=0)


def test_wrong_architecture_names_file_and_first_mismatch(tmp_path):
    path = tmp_path / "six_blocks_G_A.pth"
    torch.save(RefResnetGenerator(3, 3, ngf=8, n_blocks=6).state_dict(), path)
    with pytest.raises(CheckpointError) as e:
        CycleGAN.load_official(path, path, ngf=8, blocks=9)
    msg = str(e.value)
    assert str(path) in msg and "'model.16.weight'" in msg and "'blocks.6.body.1.weight'" in msg
    assert "[32, 16, 3, 3]" in msg and "[32, 32, 3, 3]" in msg
    # a unet file into a resnet, and a width mismatch
    unet = tmp_path / "unet.pth"
    torch.save(RefUnetGenerator(3, 3, 5, ngf=4).state_dict(), unet)
    with pytest.raises(CheckpointError, match="unet.pth"):
        load_official_generator(ResnetGenerator(3, 3, 4, 1), unet)
    with pytest.raises(CheckpointError, match="six_blocks_G_A.pth"):
        load_official_generator(ResnetGenerator(3, 3, 16, 6), path)


def test_count_mismatch_without_shape_mismatch(tmp_path):
    official = RefResnetGenerator(3, 3, ngf=8, n_blocks=2).state_dict()
    shorter = dict(list(official.items())[:-2])
    with pytest.raises(
        CheckpointError,
        match=r"x\.pth.*18 tensors in the file, 20 expected \(nothing for 'head\.1\.weight'\)",
    ):
        map_official_state_dict(shorter, ResnetGenerator(3, 3, 8, 2), source="x.pth")


def test_unreadable_files_raise_checkpoint_error_naming_the_file(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(RefResnetGenerator(3, 3, ngf=4, n_blocks=1).state_dict(), good)
    truncated = tmp_path / "truncated_net_G_A.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "random_net_G_A.pth"
    garbage.write_bytes(random.Random(0).randbytes(4096))
    not_state = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_state)
    for path in (truncated, garbage, not_state, tmp_path / "missing.pth"):
        with pytest.raises(CheckpointError) as e:
            CycleGAN.load_official(path, good, ngf=4, blocks=1)
        assert str(path) in str(e.value)
