"""The translation options of issue 17 part 4 on the model side: what the flags and recipes build,
what they refuse, what saved runs of earlier versions rebuild, and CycleGAN's noisy and smoothed
labels, and the noise that keeps the cycle from hiding the input in its translations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from gankit.cli import main
from gankit.config import read_yaml_options
from gankit.data.loading import resolve_config
from gankit.data.recipes import load_recipe
from gankit.io import save_safetensors
from gankit.losses import cycle_loss
from gankit.models.cyclegan import CycleGANConfig, CycleGANModel, CycleGANNetworks, perturbed_for_reconstruction
from gankit.models.persist import WEIGHTS_FORMAT, load_model, make_config

OLD_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_0" / "cyclegan"
TINY = {"channels_a": 1, "channels_b": 3, "size": 32, "ngf": 4, "ndf": 4, "blocks": 1, "conv_algorithms": "plain"}


def kernels(net: nn.Module) -> set[int]:
    return {m.kernel_size[0] for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}


def networks(config: CycleGANConfig) -> CycleGANNetworks:
    torch.manual_seed(0)
    return CycleGANNetworks(config)


def old_style(**options) -> dict:
    """A config as gankit saved it before g_kernel_size / d_kernel_size existed."""
    saved = CycleGANConfig(**TINY).to_dict() | options
    del saved["g_kernel_size"], saved["d_kernel_size"]
    return saved


@pytest.mark.parametrize(
    "generator, discriminator, old, g_kernels, d_kernels",
    [
        ("resnet", "patch", 3, {7, 3}, {4}),  # resnet and PatchGAN ignored the saved kernel_size
        ("unet", "scalar", 5, {5}, {5}),  # the two networks that read it
        ("unet", "patch", 5, {5}, {4}),
        ("resnet", "scalar", 5, {7, 3}, {5}),
    ],
)
def test_saved_configs_of_earlier_versions_rebuild_the_networks_they_trained(generator, discriminator, old,
                                                                             g_kernels, d_kernels):  # fmt: skip
    saved = old_style(generator=generator, discriminator=discriminator, kernel_size=old)
    config = make_config("cyclegan", saved, "old run")
    nets = networks(config)
    assert kernels(nets.g_ab) == g_kernels and kernels(nets.d_a) == d_kernels
    # what the same flags mean today: --kernel-size reaches every network
    today = networks(CycleGANConfig.from_dict(saved))
    assert kernels(today.d_a) == ({old} if discriminator == "patch" else d_kernels)


def test_the_v0_1_0_config_upgrades_to_the_default_networks():
    saved = read_yaml_options(OLD_RUN / "config.yaml")
    assert saved["kernel_size"] == 3 and "g_kernel_size" not in saved
    config = make_config("cyclegan", saved, "config.yaml")
    assert (config.kernel_size, config.g_kernel_size, config.d_kernel_size) == (None, None, None)


def test_configs_saved_now_are_read_as_written():
    config = CycleGANConfig(**TINY, kernel_size=5)
    again = make_config("cyclegan", config.to_dict(), "new run")
    assert again == config
    nets = networks(again)
    assert kernels(nets.g_ab) == {7, 5} and kernels(nets.d_a) == {5}


def test_an_old_model_file_with_kernel_5_loads_into_identical_networks(tmp_path):
    """End to end through ``load_model``: a unet run of an earlier version (kernel_size 5 reached the
    unet; the PatchGAN kept 4) saved its weights and its old-style config."""
    torch.manual_seed(0)
    model = CycleGANModel(CycleGANConfig(**TINY, generator="unet", g_kernel_size=5), torch.device("cpu"),
                          for_training=False)  # fmt: skip
    tensors = model.weights(model.exported)
    meta = {"format": WEIGHTS_FORMAT, "kind": "cyclegan", "gankit_version": "0.2.0", "extra": "{}",
            "config": json.dumps(old_style(generator="unet", kernel_size=5))}  # fmt: skip
    path = save_safetensors(tensors, tmp_path / "model.safetensors", metadata=meta)
    loaded = load_model(path, "cpu")
    assert kernels(loaded.networks()["g_ab"]) == {5} and loaded.config.discriminator_kernel is None
    for name, net in model.networks().items():
        other = loaded.networks()[name].state_dict()
        assert all(torch.equal(v, other[k]) for k, v in net.state_dict().items())


def test_digit_recipes_default_to_kernel_5_and_flags_override(capsys):
    def resolved(*argv):
        assert main(["train", "cyclegan", *argv, "--dry-run"]) == 0
        return yaml.safe_load(capsys.readouterr().out)

    assert resolved("--dataset", "mnist-usps")["kernel_size"] == 5
    assert resolved("--dataset", "mnist-mnistm", "--kernel-size", "3")["kernel_size"] == 3
    assert resolved("--dataset", "apple2orange")["kernel_size"] is None
    earlier = resolved("--dataset", "mnist-usps", "--kernel-size", "3", "--d-kernel-size", "4")  # the pre-5 digits
    earlier.pop("kind")
    nets = networks(CycleGANConfig.from_dict({**earlier, **TINY}))
    assert kernels(nets.g_ab) == {7, 3} and kernels(nets.d_a) == {4}


def test_mnist_usps_trains_on_random_32_px_crops_of_34_px_digits(shared_data):
    """Shifts of up to 2 px (docs/results.md: USPS → MNIST keeps more labels); the crop scales with --size."""

    def load_size(dataset: str = "mnist-usps", **flags) -> int:
        return resolve_config(CycleGANConfig(**flags), load_recipe(dataset, shared_data)).load_size

    assert (load_size(), load_size(size=64), load_size(load_size=32)) == (34, 68, 32)
    assert load_size("mnist-mnistm") == 32


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--kernel-size", "4"], "--kernel-size 4: expected an odd number"),
        (["--generator", "unet", "--g-kernel-size", "2"], "--g-kernel-size 2: the unet generator needs an odd kernel"),
        (["--discriminator", "pixel", "--d-kernel-size", "3"], "--d-kernel-size 3: the pixel discriminator has 1x1"),
        (["--downsample", "avgpool", "--antialias"], "--downsample 'avgpool': the antialiased resnet generator"),
    ],
)
def test_options_an_architecture_cannot_honour_are_one_line_usage_errors(capsys, flags, message):
    assert main(["train", "cyclegan", "--dry-run", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_noisy_and_smoothed_labels_reach_cyclegans_discriminators():
    """GANs in Action §5.4.6 (seed 001): a perfect discriminator (1 on real, 0 on fake) has LSGAN loss
    0 against clean targets, (1 − 0.9)² / 2 with one-sided smoothing 0.1, and about the flip
    probability p with noisy labels (each flipped target costs 1; 0.5 · (p + p))."""

    def d_loss(**options) -> float:
        nets = networks(CycleGANConfig(**TINY, **options))
        nets.d_a, nets.d_b = _Perfect(), _Perfect()
        real_a, real_b = torch.ones(4, 1, 32, 32), torch.ones(4, 3, 32, 32)
        _, terms = nets.discriminator_loss(real_a, real_b, -real_a, -real_b)
        return float(terms["D_b"])

    assert d_loss() == 0.0
    assert d_loss(label_smoothing=0.1) == pytest.approx(0.5 * 0.1**2)
    torch.manual_seed(0)
    assert d_loss(label_noise=0.3) == pytest.approx(0.3, abs=0.03)  # 8192 targets: σ ≈ 0.005


def test_cycle_noise_spoils_a_reconstruction_paid_by_a_hidden_signal_and_not_the_translation():
    """Chu et al. 2017: a cycle can be paid by a faint copy of the input hidden in the translation. Here
    G writes the input at amplitude 0.01 over a constant and F amplifies it back: exact without noise,
    while noise of std 0.1 costs the reconstruction about 0.1 / 0.01 · √(2/π) ≈ 8 per pixel; the other cycle,
    whose translation F(b) carries b at full amplitude, only 0.1 · 0.01 · √(2/π)."""
    nets = networks(CycleGANConfig(**TINY | {"channels_b": 1}))
    nets.g_ab, nets.g_ba = _Hide(), _Reveal()
    real = torch.rand(2, 1, 32, 32) * 2 - 1
    clean = nets.cycle(real, real)
    torch.manual_seed(0)
    noisy = nets.cycle(real, real, cycle_noise=0.1)
    assert torch.equal(noisy.fake_b, clean.fake_b) and torch.equal(noisy.fake_a, clean.fake_a)
    assert cycle_loss(real, clean.rec_a) < 1e-5
    assert cycle_loss(real, noisy.rec_a) == pytest.approx(0.1 / 0.01 * (2 / torch.pi) ** 0.5, rel=0.05)
    assert cycle_loss(real, noisy.rec_b) == pytest.approx(0.1 * 0.01 * (2 / torch.pi) ** 0.5, rel=0.05)


def test_cycle_noise_has_the_requested_spread_and_zero_is_the_identity():
    image = torch.zeros(4, 3, 64, 64)
    assert perturbed_for_reconstruction(image, 0.0) is image
    torch.manual_seed(0)
    assert float(perturbed_for_reconstruction(image, 0.2).std()) == pytest.approx(0.2, rel=0.02)


class _Hide(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 + 0.01 * x


class _Reveal(nn.Module):
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return (y - 0.5) / 0.01


class _Perfect(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.mean(1, keepdim=True) > 0).float()
