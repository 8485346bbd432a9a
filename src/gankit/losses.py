"""Loss functions: the adversarial "games" of GANs in Action ch.5 and the CycleGAN terms.

Discriminators output raw scores; each game says how to read them. ``d_loss`` is what the
discriminator minimizes, ``g_loss`` what the generator minimizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gankit.nn.layers import luminance

GAN_LOSSES = ("lsgan", "vanilla", "minimax", "wgan", "wgan-gp", "hinge")


@dataclass(frozen=True)
class AdversarialLoss:
    """One GAN game.

    - ``lsgan``: least squares (Mao et al. 2017), CycleGAN's default (paper §4): D → 1 on real,
      0 on fake; G → 1.
    - ``vanilla``: non-saturating cross-entropy (Goodfellow et al. 2014 §3): G maximizes log D(G(z)).
    - ``minimax``: the original saturating game, G minimizes log(1 − D(G(z))).
    - ``wgan`` / ``wgan-gp``: Wasserstein critic (Arjovsky et al. 2017; Gulrajani et al. 2017); pair
      ``wgan`` with weight clipping and ``wgan-gp`` with :func:`gradient_penalty`.
    - ``hinge``: Lim & Ye 2017, Miyato et al. 2018.

    ``real_label`` below 1 is one-sided label smoothing (Salimans et al. 2016); ``label_noise`` is the
    probability of flipping each real/fake target of the discriminator ("noisy labels", GANs in
    Action §5.4). Both apply to the target-based games (lsgan, vanilla, minimax) only; the critic
    games (wgan, wgan-gp, hinge) have no targets to soften.
    """

    kind: str = "lsgan"
    real_label: float = 1.0
    label_noise: float = 0.0

    def __post_init__(self):
        if self.kind not in GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {self.kind!r}; choose one of {GAN_LOSSES}")

    def targets(self, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None):
        """(real target, fake target) for the discriminator, smoothed and, with ``label_noise``,
        flipped at random (drawn from ``generator`` so runs stay reproducible)."""
        real_t = torch.full_like(real, self.real_label)
        fake_t = torch.zeros_like(fake)
        if self.label_noise > 0:
            flip_r = torch.rand(real.shape, generator=generator, device=real.device) < self.label_noise
            flip_f = torch.rand(fake.shape, generator=generator, device=fake.device) < self.label_noise
            real_t = torch.where(flip_r, torch.zeros_like(real_t), real_t)
            fake_t = torch.where(flip_f, torch.full_like(fake_t, self.real_label), fake_t)
        return real_t, fake_t

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        real, fake = real.float(), fake.float()
        if self.kind in ("lsgan", "vanilla", "minimax"):
            real_t, fake_t = self.targets(real, fake, generator)
            if self.kind == "lsgan":
                return 0.5 * (F.mse_loss(real, real_t) + F.mse_loss(fake, fake_t))
            r = F.binary_cross_entropy_with_logits(real, real_t)
            f = F.binary_cross_entropy_with_logits(fake, fake_t)
            return 0.5 * (r + f)
        if self.kind in ("wgan", "wgan-gp"):
            return fake.mean() - real.mean()
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        fake = fake.float()
        if self.kind == "lsgan":
            return F.mse_loss(fake, torch.ones_like(fake))
        if self.kind == "vanilla":
            return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
        if self.kind == "minimax":
            return -F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        return -fake.mean()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty E[(‖∇D(x̂)‖₂ − 1)²] at random interpolates x̂ (Gulrajani et al. 2017, eq. 3).
    Multiply by λ (10 in the paper). Unlike the official CycleGAN code's ``wgangp`` mode, callers
    really add it to the critic loss. Works for images (N, C, H, W) and for codes (N, K) alike."""
    alpha = torch.rand(real.shape[0], *(1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def cycle_loss(real: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
    """‖F(G(x)) − x‖₁, CycleGAN eq. 2."""
    return F.l1_loss(reconstructed.float(), real.float())


def identity_loss(real: torch.Tensor, mapped: torch.Tensor) -> torch.Tensor:
    """‖G(y) − y‖₁ (CycleGAN §5.2, after Taigman et al. 2017): keeps colours when nothing needs to change."""
    return F.l1_loss(mapped.float(), real.float())


def luminance_loss(gray: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """‖Y(colour) − gray‖₁: how far a colour image's luma is from the gray image it should share it with.
    Where one domain is the other's luminance (colorization: the gray image is Y of the colour one), a
    translation between them should change only chroma; Y is linear, so the term also holds on [-1, 1]."""
    return F.l1_loss(luminance(colour.float()), luminance(gray.float()))


def clip_weights(module: nn.Module, limit: float) -> None:
    """WGAN weight clipping to [−c, c] (Arjovsky et al. 2017, algorithm 1)."""
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-limit, limit)


def patch_nce_loss(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """PatchNCE (Park et al. 2020, CUT eq. 2 and 5), per image: each query patch embedding must pick
    its key (the input patch at the same place) out of the keys of the other sampled patches of the
    same image — cross-entropy over ``[q·k⁺, q·k⁻₁ … q·k⁻ₚ₋₁] / τ``.

    ``query`` and ``key`` are (N, P, D) L2-normalised embeddings of the same P positions of N images.
    Keys are targets (detached, as in the reference code); gradients reach the queries only. A patch's
    own key is masked out of its negatives with the reference's constant −10 (before the division by
    τ). Returns (N,) the mean loss over each image's patches."""
    key = key.detach()
    n, p, _ = query.shape
    positive = (query * key).sum(dim=2, keepdim=True)  # (N, P, 1)
    negative = torch.bmm(query, key.transpose(1, 2))  # (N, P, P)
    own = torch.eye(p, dtype=torch.bool, device=query.device)
    logits = torch.cat([positive, negative.masked_fill(own, -10.0)], dim=2) / temperature
    targets = torch.zeros(n * p, dtype=torch.long, device=query.device)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets, reduction="none").view(n, p).mean(dim=1)
