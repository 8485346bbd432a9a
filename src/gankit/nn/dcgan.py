"""Networks of the MNIST companion GANs (GANs in Action ch.7–8).

- :class:`ConditionalGenerator` / :class:`ConditionalDiscriminator`: the conditional DCGAN of ch.8.
  The generator multiplies the noise by a learned embedding of the label (z ⊙ e(y)) and upsamples it
  with transposed convolutions; the discriminator gets the label as a second image channel (a learned
  28 × 28 embedding) and scores the (image, label) pair with one raw logit.
- :class:`MLPGenerator` / :class:`MLPDiscriminator`: the semi-supervised GAN's fully connected
  networks after Salimans et al. 2016 §5 (MNIST): a discriminator with Gaussian noise on its input
  and hidden units and ``num_classes`` class logits, a generator with batch-normalized softplus units.
"""

from __future__ import annotations

import torch
from torch import nn

from gankit.nn.layers import Dropout, init_weights


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose batch, layer or none")


class ConditionalGenerator(nn.Module):
    """(z (N, z_dim), labels (N,)) → images (N, 1, 28, 28) in [-1, 1]:
    z ⊙ embedding(label) → linear → (4w, 7, 7) → 14 × 14 (2w) → 14 × 14 (w) → 28 × 28 → tanh.
    With ``num_classes=0`` it is an unconditional DCGAN generator of z alone."""

    def __init__(self, z_dim: int = 100, num_classes: int = 10, width: int = 32, channels: int = 1):
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.embed = nn.Embedding(num_classes, z_dim) if num_classes else None  # 0 classes: unconditional
        self.project = nn.Linear(z_dim, 4 * width * 7 * 7)
        self.body = nn.Sequential(
            nn.Unflatten(1, (4 * width, 7, 7)),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * width, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, channels, 4, 2, 1),
            nn.Tanh(),
        )
        init_weights(self)  # conv/linear N(0, 0.02); the label embeddings keep N(0, 1), so labels differ from the start

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(self.project(z if self.embed is None else z * self.embed(labels)))


class ConditionalDiscriminator(nn.Module):
    """(images (N, 1, 28, 28), labels (N,)) → one raw score per image: the label embedding reshaped to
    28 × 28 is a second input channel; three stride-2 convs (w, 2w, 4w), a linear score."""

    def __init__(self, num_classes: int = 10, width: int = 32, channels: int = 1, norm: str = "batch", size: int = 28):
        super().__init__()
        self.size = size
        self.embed = nn.Embedding(num_classes, size * size)
        bias = norm == "none"
        self.body = nn.Sequential(
            nn.Conv2d(channels + 1, width, 3, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 3, 2, 1, bias=bias),
            _norm(norm, 2 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1, bias=bias),
            _norm(norm, 4 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        side = (((size + 1) // 2 + 1) // 2 + 1) // 2
        self.score = nn.Linear(4 * width * side * side, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        plane = self.embed(labels).view(-1, 1, self.size, self.size)
        return self.score(self.body(torch.cat([x, plane], 1))).flatten()


class Affine(nn.Module):
    """x ↦ scale · x + shift (fixed)."""

    def __init__(self, scale: float, shift: float):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class GaussianNoise(nn.Module):
    """Adds N(0, σ²) noise in training mode only (Salimans et al. 2016, MNIST discriminator)."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * torch.randn_like(x) if self.training and self.sigma > 0 else x

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


def _linear(n_in: int, n_out: int, weight_norm: bool) -> nn.Module:
    layer = nn.Linear(n_in, n_out)
    return nn.utils.parametrizations.weight_norm(layer) if weight_norm else layer


class MLPDiscriminator(nn.Module):
    """Images (N, 1, 28, 28) → ``num_classes`` class logits; :meth:`features` is the last hidden layer
    (the feature-matching target). Noise σ_in on the pixels and σ_hidden before every hidden layer;
    weight-normalized linear layers (Salimans & Kingma 2016) unless ``weight_norm=False``."""

    def __init__(
        self,
        hidden: tuple[int, ...] = (1000, 500, 250, 250, 250),
        num_classes: int = 10,
        in_features: int = 784,
        input_noise: float = 0.3,
        hidden_noise: float = 0.5,
        weight_norm: bool = True,
    ):
        super().__init__()
        # pixels are read in [0, 1] (inputs arrive in [-1, 1]), the scale the noise levels were set for
        layers: list[nn.Module] = [nn.Flatten(), Affine(0.5, 0.5), GaussianNoise(input_noise)]
        width = in_features
        for i, h in enumerate(hidden):
            if i:
                layers.append(GaussianNoise(hidden_noise))
            layers += [_linear(width, h, weight_norm), nn.ReLU(inplace=True)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = _linear(width, num_classes, weight_norm)
        self.feature_dim = width

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ConvClassifier(nn.Module):
    """Images (N, 1, 28, 28) → ``num_classes`` logits with a small conv body (the book's SGAN
    discriminator layout): Gaussian noise on the [0, 1] pixels, three stride-2 3×3 convs (w, 2w, 4w) with
    LeakyReLU, dropout, a linear head. :meth:`features` is the flattened last conv output."""

    def __init__(self, num_classes: int = 10, width: int = 32, input_noise: float = 0.3, dropout: float = 0.5):
        super().__init__()
        self.body = nn.Sequential(
            Affine(0.5, 0.5),
            GaussianNoise(input_noise),
            nn.Conv2d(1, width, 3, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 3, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            Dropout(dropout),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        self.drop = Dropout(dropout)
        self.head = nn.Linear(4 * width * 16, num_classes)
        self.feature_dim = 4 * width * 16

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.body(x)))


class MLPGenerator(nn.Module):
    """z (N, z_dim) → images (N, 1, 28, 28) in [-1, 1]: batch-normalized softplus hidden layers."""

    def __init__(self, z_dim: int = 100, hidden: tuple[int, ...] = (500, 500), out_shape=(1, 28, 28)):
        super().__init__()
        self.z_dim = z_dim
        layers: list[nn.Module] = []
        width = z_dim
        for h in hidden:
            layers += [nn.Linear(width, h, bias=False), nn.BatchNorm1d(h), nn.Softplus()]
            width = h
        n_out = int(torch.tensor(out_shape).prod())
        layers += [nn.Linear(width, n_out), nn.Tanh(), nn.Unflatten(1, tuple(out_shape))]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)
