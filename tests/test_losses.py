import pytest
import torch
from torch import nn

from gankit.losses import (
    GAN_LOSSES,
    AdversarialLoss,
    clip_weights,
    cycle_loss,
    gradient_penalty,
    identity_loss,
    luminance_loss,
)


def test_lsgan_values():
    loss = AdversarialLoss("lsgan")
    ones, zeros = torch.ones(4), torch.zeros(4)
    assert loss.d_loss(ones, zeros).item() == 0.0
    assert loss.d_loss(zeros, ones).item() == pytest.approx(1.0)  # 0.5 * (1 + 1)
    assert loss.g_loss(ones).item() == 0.0
    assert loss.g_loss(zeros).item() == pytest.approx(1.0)


def test_one_sided_label_smoothing_moves_real_target_only():
    loss = AdversarialLoss("lsgan", real_label=0.9)
    assert loss.d_loss(torch.full((3,), 0.9), torch.zeros(3)).item() == pytest.approx(0.0)
    assert loss.g_loss(torch.ones(3)).item() == 0.0


def test_vanilla_and_minimax_generator_losses():
    big = torch.full((5,), 10.0)  # D is sure the fakes are real
    assert AdversarialLoss("vanilla").g_loss(big).item() < 1e-3
    # saturating game: gradient vanishes when D confidently rejects fakes
    x = torch.full((5,), -10.0, requires_grad=True)
    AdversarialLoss("minimax").g_loss(x).backward()
    y = torch.full((5,), -10.0, requires_grad=True)
    AdversarialLoss("vanilla").g_loss(y).backward()
    assert x.grad.abs().max() < 1e-3 < y.grad.abs().max()


def test_wgan_and_hinge():
    real, fake = torch.tensor([2.0, 2.0]), torch.tensor([-1.0, -3.0])
    assert AdversarialLoss("wgan").d_loss(real, fake).item() == pytest.approx(-4.0)
    assert AdversarialLoss("wgan-gp").g_loss(fake).item() == pytest.approx(2.0)
    assert AdversarialLoss("hinge").d_loss(real, fake).item() == 0.0
    assert AdversarialLoss("hinge").d_loss(torch.zeros(2), torch.zeros(2)).item() == pytest.approx(2.0)


def test_unknown_loss():
    with pytest.raises(ValueError):
        AdversarialLoss("nope")
    assert "wgan-gp" in GAN_LOSSES


def test_gradient_penalty_zero_for_unit_gradient_critic():
    # critic f(x) = sum(x) / sqrt(d) has gradient norm exactly 1 everywhere
    class Unit(nn.Module):
        def forward(self, x):
            return x.flatten(1).sum(1) / x[0].numel() ** 0.5

    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    assert gradient_penalty(Unit(), real, fake).item() == pytest.approx(0.0, abs=1e-10)

    class Double(Unit):
        def forward(self, x):
            return 2 * super().forward(x)

    assert gradient_penalty(Double(), real, fake).item() == pytest.approx(1.0, rel=1e-5)


def test_cycle_identity_and_clip():
    a = torch.zeros(1, 3, 4, 4)
    assert cycle_loss(a, a + 0.5).item() == pytest.approx(0.5)
    assert identity_loss(a, a - 0.25).item() == pytest.approx(0.25)
    lin = nn.Linear(4, 4)
    nn.init.constant_(lin.weight, 3.0)
    clip_weights(lin, 0.01)
    assert lin.weight.abs().max().item() == pytest.approx(0.01)


def test_label_noise_flips_the_requested_share_of_targets():
    loss = AdversarialLoss("vanilla", real_label=0.9, label_noise=0.2)
    g = torch.Generator().manual_seed(0)
    real_t, fake_t = loss.targets(torch.zeros(20000), torch.zeros(20000), g)
    assert abs((real_t == 0).float().mean().item() - 0.2) < 0.02
    assert abs((fake_t == 0.9).float().mean().item() - 0.2) < 0.02
    assert torch.allclose(real_t.unique(), torch.tensor([0.0, 0.9]))


def test_no_label_noise_keeps_the_plain_targets():
    real_t, fake_t = AdversarialLoss("lsgan").targets(torch.zeros(5), torch.zeros(5))
    assert torch.equal(real_t, torch.ones(5)) and torch.equal(fake_t, torch.zeros(5))


def test_luminance_loss_is_zero_for_a_colour_image_and_its_own_luma_and_reads_bt601_weights():
    colour = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    luma = 0.299 * colour[:, :1] + 0.587 * colour[:, 1:2] + 0.114 * colour[:, 2:]
    assert luminance_loss(luma, colour).item() == pytest.approx(0.0, abs=1e-6)
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0  # pure red has luma 0.299: against a black gray image the loss is exactly that
    assert luminance_loss(torch.zeros(1, 1, 4, 4), red).item() == pytest.approx(0.299)
    gray = torch.zeros(1, 1, 4, 4, requires_grad=True)
    luminance_loss(gray, red).backward()
    assert gray.grad is not None and gray.grad.abs().sum() > 0
