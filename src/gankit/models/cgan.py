"""The conditional GAN on MNIST (GANs in Action ch.8; Mirza & Osindero 2014).

The generator draws digit ``y`` from z ⊙ embedding(y); the discriminator sees the label as an extra
image channel and scores (image, label) pairs, so it punishes a well-drawn digit of the wrong class.
Every game of ch.5 is available through ``--gan-loss`` (with weight clipping for ``wgan`` and the
gradient penalty for ``wgan-gp``), with ``--n-critic``, ``--label-smoothing`` and ``--label-noise``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch import nn

from gankit.config import CompanionConfig, opt
from gankit.data.grid import make_grid
from gankit.data.images import uint8_to_unit
from gankit.data.mnist import mnist_tensors
from gankit.data.streams import BatchStream, StreamSource
from gankit.errors import ConfigError
from gankit.losses import AdversarialLoss, clip_weights, gradient_penalty
from gankit.models.base import Model, latent_lines, make_optimizer
from gankit.models.registry import register
from gankit.nn.dcgan import ConditionalDiscriminator, ConditionalGenerator
from gankit.nn.layers import count_parameters

NUM_CLASSES = 10
GRID_CELL = 56  # px: 28 × 28 digits shown at 2× in grids


@dataclass
class CGANConfig(CompanionConfig):
    z_dim: int = opt(100, "noise dimension", group="model", ge=1)
    g_width: int = opt(32, "generator width w (channels 4w → 2w → w)", group="model", ge=1)
    d_width: int = opt(32, "discriminator width w (channels w → 2w → 4w)", group="model", ge=1)
    d_norm: str = opt(
        "auto",
        "discriminator normalization (auto: none for wgan-gp, else batch)",
        choices=("auto", "batch", "layer", "none"),
        group="model",
    )
    mismatch: bool = opt(
        True,
        "matching-aware discriminator (Reed et al. 2016): real digits with a wrong label count as fakes too",
        group="loss",
    )
    steps: int = opt(5000, "training steps (generator updates)", group="run", ge=1)
    out: str = opt("runs/cgan", "run folder", group="run")

    @property
    def resolved_d_norm(self) -> str:
        if self.d_norm != "auto":
            return self.d_norm
        return "none" if self.gan_loss == "wgan-gp" else "batch"


def make_optimizers(config: CompanionConfig, g: nn.Module, d: nn.Module) -> dict[str, torch.optim.Optimizer]:
    return {"G": make_optimizer(g.parameters(), config, config.lr),
            "D": make_optimizer(d.parameters(), config, config.lr_d or config.lr)}  # fmt: skip


def adversarial_loss(config: CompanionConfig) -> AdversarialLoss:
    return AdversarialLoss(config.gan_loss, real_label=1.0 - config.label_smoothing, label_noise=config.label_noise)


def square_grid(images: torch.Tensor) -> list[list[torch.Tensor]]:
    cols = max(1, math.ceil(math.sqrt(len(images))))
    return [list(images[i : i + cols]) for i in range(0, len(images), cols)]


@register
class ConditionalGAN(Model):
    kind = "cgan"
    summary = "conditional GAN: draw a chosen digit (GANs in Action ch.8)"
    config_class = CGANConfig

    def __init__(self, config: CGANConfig, device: torch.device, *, for_training: bool = True):
        super().__init__(config, device, for_training=for_training)
        self.G = ConditionalGenerator(config.z_dim, NUM_CLASSES, config.g_width).to(device)
        self.D = ConditionalDiscriminator(NUM_CLASSES, config.d_width, norm=config.resolved_d_norm).to(device)
        self._optimizers = make_optimizers(config, self.G, self.D)
        self.loss = adversarial_loss(config)
        gen = torch.Generator().manual_seed(config.seed + 1)
        self.fixed_z = torch.randn(10, config.z_dim, generator=gen).to(device)  # one z per grid column

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def training_data(self) -> StreamSource:
        images, labels = mnist_tensors(self.config.data_root, "train")
        stream = BatchStream(images, labels, batch_size=self.config.batch_size, seed=self.config.seed, shard=self.shard)
        return StreamSource(f"MNIST train: {len(images)} digits with labels", stream=stream)

    def describe(self) -> dict[str, str]:
        return {
            "networks": f"G {count_parameters(self.G):,} parameters, D {count_parameters(self.D):,} "
            f"(norm {self.config.resolved_d_norm})"
        }

    # --- training ----------------------------------------------------------------------------------
    def _critic_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c = self.config
        with torch.no_grad():
            fake = self.G(self.shard.randn(len(x), c.z_dim, device=self.device), y)
        fake_scores = self.D(fake, y)
        if c.mismatch:  # the fake half is split between generated digits and real digits under a wrong label
            wrong = (y + self.shard.randint(1, NUM_CLASSES, len(y), device=self.device)) % NUM_CLASSES
            fake_scores = torch.cat([fake_scores, self.D(x, wrong)])
        loss = self.loss.d_loss(self.D(x, y), fake_scores)
        if c.gan_loss == "wgan-gp":
            loss = loss + c.gp_weight * gradient_penalty(lambda m: self.D(m, y), x, fake)
        return loss

    def train_step(self, batches: Sequence[Any], step: int) -> dict[str, float | torch.Tensor]:
        c, opt_g, opt_d = self.config, self._optimizers["G"], self._optimizers["D"]
        for batch in batches:
            x, y = batch["stream"]
            x, y = uint8_to_unit(x).to(self.device), y.to(self.device)
            with self.precision.autocast():
                d_loss = self._critic_loss(x, y)
            self.precision.step(d_loss, opt_d)
            if c.gan_loss == "wgan":
                clip_weights(self.D, c.clip)
        y = self.shard.randint(0, NUM_CLASSES, c.batch_size, device=self.device)
        self.D.requires_grad_(False)  # the generator step needs no gradients for D's weights
        try:
            with self.precision.autocast():
                fake = self.G(self.shard.randn(c.batch_size, c.z_dim, device=self.device), y)
                g_loss = self.loss.g_loss(self.D(fake, y))
            self.precision.step(g_loss, opt_g)
        finally:
            self.D.requires_grad_(True)
        return {"D": d_loss.detach(), "G": g_loss.detach()}

    # --- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, labels: torch.Tensor, z: torch.Tensor | None = None, batch_size: int = 1000) -> torch.Tensor:
        """Images (N, 1, 28, 28) in [-1, 1] of the digits ``labels`` (eval mode; ``z`` default random)."""
        labels = labels.to(self.device)
        if z is None:
            z = torch.randn(len(labels), self.config.z_dim, device=self.device)
        out = [
            self.G(z[i : i + batch_size].to(self.device), labels[i : i + batch_size])
            for i in range(0, len(labels), batch_size)
        ]
        return torch.cat(out).cpu()

    def digit_rows(self, z: torch.Tensor) -> list[list[torch.Tensor]]:
        """Ten rows, row k = digit k drawn from each noise vector of ``z`` (one column each)."""
        labels = torch.arange(NUM_CLASSES).repeat_interleave(len(z))
        images = self.generate(labels, z.repeat(NUM_CLASSES, 1))
        return [list(images[k * len(z) : (k + 1) * len(z)]) for k in range(NUM_CLASSES)]

    def sample_grid(self, step: int) -> Image.Image:
        rows = self.digit_rows(self.fixed_z)
        return make_grid(rows, row_labels=[str(k) for k in range(NUM_CLASSES)], min_height=GRID_CELL)

    def sample(self, *, n: int, label: int | None = None, interpolate: bool = False, seed: int = 0) -> Image.Image:
        if label is not None and not 0 <= label < NUM_CLASSES:
            raise ConfigError(f"--label must be a digit 0–9, got {label}")
        gen = torch.Generator().manual_seed(seed)
        was_training = self.G.training
        self.G.eval()
        try:
            if interpolate:
                cols = 8
                n_rows = max(1, math.ceil(n / cols))
                row_digits = [label if label is not None else r % NUM_CLASSES for r in range(n_rows)]
                z = latent_lines(n_rows, cols, self.config.z_dim, gen)
                images = self.generate(torch.tensor(row_digits).repeat_interleave(cols), z)
                rows = [list(images[r * cols : (r + 1) * cols]) for r in range(n_rows)]
                return make_grid(rows, row_labels=[str(d) for d in row_digits], min_height=GRID_CELL)
            if label is not None:
                images = self.generate(torch.full((n,), label), torch.randn(n, self.config.z_dim, generator=gen))
                return make_grid(square_grid(images), min_height=GRID_CELL)
            cols = max(1, math.ceil(n / NUM_CLASSES))
            rows = self.digit_rows(torch.randn(cols, self.config.z_dim, generator=gen))
            return make_grid(rows, row_labels=[str(k) for k in range(NUM_CLASSES)], min_height=GRID_CELL)
        finally:
            self.G.train(was_training)
