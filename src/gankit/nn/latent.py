"""The networks of Augmented CycleGAN (Almahairi, Rajeswar, Sordoni, Bachman & Courville, "Augmented
CycleGAN: Learning Many-to-Many Mappings from Unpaired Data", ICML 2018): a generator conditioned on a
latent code through conditional instance norm, an encoder that infers the code of one domain from an
(a, b) pair, and a discriminator that tells inferred codes from codes drawn from the prior N(0, I).

- :class:`ConditionalInstanceNorm2d`: instance norm whose per-channel scale and shift are affine maps
  of the code (conditional instance norm, Dumoulin et al. 2017; the paper's stochastic generators
  G_AB: A × Z_b → B and G_BA: B × Z_a → A inject the code this way, §4 and the appendix).
- :class:`ConditionalResnetGenerator`: CycleGAN's resnet generator with every instance norm made
  conditional, ``forward(x, z)``; :meth:`~ConditionalResnetGenerator.bind` turns it, for one code, into
  a plain :class:`~gankit.nn.generators.ResnetGenerator` (affine instance norms), which the exact
  tiler, the exporters and every single-input consumer run unchanged.
- :class:`CodedGenerator`: a conditional generator with its code fixed, ``forward(x)`` — what a
  translator hands to ``translate``, ``eval`` and ``serve``.
- :class:`LatentEncoder`: E_A, E_B: A × B → Z (deterministic encoders, the paper's default), the
  two images concatenated along channels, strided convs, global average pooling, a linear head.
- :class:`CodeDiscriminator`: D_Za, D_Zb, a small MLP on codes.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from gankit.nn.generators import ResnetGenerator


class ConditionalInstanceNorm2d(nn.Module):
    """``y = (x − μ(x)) / σ(x) · (1 + γ(z)) + β(z)``: instance norm (statistics of each image and channel,
    no running statistics, as CycleGAN's) followed by a per-image, per-channel scale and shift that are
    affine maps of the latent code z (N, K). With γ = β = 0 it is CycleGAN's instance norm, so a code
    the generator ignores gives back the deterministic generator.

    :meth:`reset_modulation` starts the maps at weights N(0, 1/K) and zero bias, so that under the prior
    every γ_c(z), β_c(z) is N(0, 1): the code changes a translation from the first step. With CycleGAN's
    N(0, 0.02²) init (what ``--init normal`` gives every linear layer) its effect starts at a standard
    deviation of 0.02·√K, too weak for the encoders to pick up: measured on a tiny model (ngf 4, K = 2,
    lr 2e-3, λ_latent 10), the round-trip code error stayed at the untrained 0.84 for 80 steps, against
    0.37 with this init."""

    def __init__(self, channels: int, latent_dim: int, eps: float = 1e-5):
        super().__init__()
        self.channels, self.latent_dim, self.eps = channels, latent_dim, eps
        self.modulation = nn.Linear(latent_dim, 2 * channels)
        self.reset_modulation()

    @torch.no_grad()
    def reset_modulation(self) -> None:
        """Weights N(0, 1/K), bias 0 (see the class docstring)."""
        nn.init.normal_(self.modulation.weight, 0.0, self.latent_dim**-0.5)
        nn.init.zeros_(self.modulation.bias)

    def scale_and_shift(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1 + γ(z), β(z)), each (N, C)."""
        gamma, beta = self.modulation(z).chunk(2, dim=1)
        return 1 + gamma, beta

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_and_shift(z)
        return F.instance_norm(x, eps=self.eps) * scale[:, :, None, None] + shift[:, :, None, None]

    @torch.no_grad()
    def bound(self, z: torch.Tensor) -> nn.InstanceNorm2d:
        """The plain affine instance norm this layer is for one code ``z`` (1, K)."""
        scale, shift = self.scale_and_shift(z.to(self.modulation.weight))
        norm = nn.InstanceNorm2d(self.channels, eps=self.eps, affine=True, track_running_stats=False)
        norm = norm.to(device=scale.device, dtype=scale.dtype)
        norm.weight.copy_(scale[0])
        norm.bias.copy_(shift[0])
        return norm


def check_code(z: torch.Tensor, latent_dim: int, batch: int | None = None) -> torch.Tensor:
    """``z`` if it is an (N, K) code with K = ``latent_dim`` (and N 1 or ``batch``), else ValueError."""
    if z.dim() != 2 or z.shape[1] != latent_dim:
        raise ValueError(f"expected latent codes of shape (N, {latent_dim}), got {tuple(z.shape)}")
    if batch is not None and z.shape[0] not in (1, batch):
        raise ValueError(f"{z.shape[0]} latent codes for {batch} images (give 1 or {batch})")
    return z


def _replace_instance_norms(module: nn.Module, latent_dim: int) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.InstanceNorm2d):
            setattr(module, name, ConditionalInstanceNorm2d(child.num_features, latent_dim, child.eps))
        else:
            _replace_instance_norms(child, latent_dim)


def _run(layers: nn.Sequential, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        x = layer(x, z) if isinstance(layer, ConditionalInstanceNorm2d) else layer(x)
    return x


def _bound_copy(module: nn.Module, z: torch.Tensor) -> nn.Module:
    """``module`` with every conditional norm replaced by its plain form for ``z``; containers are
    copied, every other layer (and so every trained weight) is shared, not duplicated."""
    if isinstance(module, ConditionalInstanceNorm2d):
        return module.bound(z)
    if not module._modules:
        return module
    new = copy.copy(module)
    new._modules = {name: _bound_copy(child, z) for name, child in module._modules.items()}
    return new


class ConditionalResnetGenerator(nn.Module):
    """CycleGAN's resnet generator (:class:`~gankit.nn.generators.ResnetGenerator`, same layers and
    options) whose instance norms are :class:`ConditionalInstanceNorm2d`: ``forward(x, z)`` maps
    (N, C_in, H, W) and codes (N, K) — or (1, K) for one code for the whole batch — to (N, C_out, H, W).
    Every norm of the network, in the stem, the down- and upsampling stages and both convs of every
    residual block, is modulated by the code."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        latent_dim: int,
        ngf: int = 64,
        n_blocks: int = 9,
        *,
        padding: str = "reflect",
        dropout: float = 0.0,
        final: str = "tanh",
        antialias: bool = False,
        kernel_size: int = 3,
        activation: str = "relu",
        downsample: str = "stride",
        luminance: str | None = None,
    ):
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be at least 1, got {latent_dim}")
        self.latent_dim = latent_dim
        self.body = ResnetGenerator(in_channels, out_channels, ngf, n_blocks, norm="instance", padding=padding,
                                    dropout=dropout, final=final, antialias=antialias, kernel_size=kernel_size,
                                    activation=activation, downsample=downsample, luminance=luminance)  # fmt: skip
        _replace_instance_norms(self.body, latent_dim)
        self.size_multiple = self.body.size_multiple

    @property
    def in_channels(self) -> int:
        return self.body.in_channels

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        b, source = self.body, x
        x = _run(b.down, _run(b.stem, x, z), z)
        for block in b.blocks:
            x = x + _run(block.body, x, z)
        return b.tie_luminance(_run(b.head, _run(b.up, x, z), z), source)

    def bind(self, z: torch.Tensor) -> ResnetGenerator:
        """A plain :class:`ResnetGenerator` computing ``self(x, z)`` for one code ``z`` (1, K), its conv
        weights shared with this network: what the exact tiled executor and single-input consumers run."""
        check_code(z, self.latent_dim)
        if z.shape[0] != 1:
            raise ValueError(f"bind takes one code (1, {self.latent_dim}), got {z.shape[0]}")
        return _bound_copy(self.body, z)


class CodedGenerator(nn.Module):
    """A conditional generator with its code fixed: ``forward(x)`` is ``generator(x, code)``. ``code`` is
    (1, K) — the same code for every image of a batch and every tile of a large image — or (N, K), one
    per image of a batch of N. A buffer, so ``.to()`` moves it with the generator; not saved anywhere."""

    def __init__(self, generator: ConditionalResnetGenerator, code: torch.Tensor):
        super().__init__()
        self.generator = generator
        self.register_buffer("code", check_code(code.detach(), generator.latent_dim).clone(), persistent=False)
        self.size_multiple = generator.size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator(x, check_code(self.code, self.generator.latent_dim, x.shape[0]).to(x))

    def bound(self) -> ResnetGenerator:
        """The plain generator for the one code (see :meth:`ConditionalResnetGenerator.bind`)."""
        return self.generator.bind(self.code)


class LatentEncoder(nn.Module):
    """E: A × B → Z (the paper's E_A and E_B, deterministic): the pair (a, b) concatenated along
    channels, ``layers`` 4×4 stride-2 convs of width ``width``·2^i (at most 8·width) with LeakyReLU(0.2)
    and no normalisation (instance norm would erase the global colour and contrast a code has to carry;
    batch norm would tie images of a batch of one together), global average pooling, then a linear
    map to the code. Any image size works; ``(a, b)`` must have the same height and width."""

    def __init__(self, channels_a: int, channels_b: int, latent_dim: int, width: int = 32, layers: int = 3):
        super().__init__()
        convs: list[nn.Module] = []
        prev = channels_a + channels_b
        for i in range(layers):
            w = width * min(2**i, 8)
            convs += [nn.Conv2d(prev, w, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            prev = w
        self.features = nn.Sequential(*convs)
        self.head = nn.Linear(prev, latent_dim)
        self.latent_dim = latent_dim

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape[-2:] != b.shape[-2:]:
            sizes = f"{tuple(a.shape[-2:])} and {tuple(b.shape[-2:])}"
            raise ValueError(f"the encoder's two images differ in size: {sizes}")
        return self.head(self.features(torch.cat([a, b], dim=1)).mean(dim=(2, 3)))


class CodeDiscriminator(nn.Module):
    """D_Z: scores a code (N, K) → (N, 1) raw, real for codes of the prior N(0, I), fake for inferred
    codes: ``layers`` linear layers of ``width`` units with LeakyReLU(0.2), no normalisation (batches
    are often a single image)."""

    def __init__(self, latent_dim: int, width: int = 64, layers: int = 3):
        super().__init__()
        mlp: list[nn.Module] = []
        prev = latent_dim
        for _ in range(layers - 1):
            mlp += [nn.Linear(prev, width), nn.LeakyReLU(0.2, True)]
            prev = width
        mlp.append(nn.Linear(prev, 1))
        self.model = nn.Sequential(*mlp)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)
