"""Building blocks of the progressive GAN (Karras et al. 2018, "Progressive growing of GANs";
GANs in Action ch.6), each of the paper's four techniques a switch:

- **progressive growing with fade-in** (§2): both networks are built for the final resolution, but
  only the blocks up to the current ``depth`` run; while a new block fades in, its output is blended
  with the (nearest-upsampled) output of the previous resolution by ``alpha`` in the generator and
  with the (average-pooled) input of the previous resolution in the discriminator;
- **minibatch standard deviation** (§3): the discriminator's last block sees one extra feature map,
  the standard deviation of each feature over a group of images, averaged to one number;
- **equalized learning rate** (§4.1): weights are stored as N(0, 1) and multiplied at run time by
  He's constant ``gain / sqrt(fan_in)``, so Adam's per-parameter step has the same effect on every layer;
- **pixelwise feature normalization** (§4.2): after every generator conv, each pixel's feature vector
  is scaled to unit mean square.

Depth ``k`` means resolution ``start * 2**k``; ``alpha`` in [0, 1] is the weight of the newest block.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEAK = 0.2


class EqualizedLR(nn.Module):
    """Shared weight handling of :class:`EqConv2d` and :class:`EqLinear`. With ``equalized`` the
    stored weight is N(0, 1) and ``scale = gain / sqrt(fan_in)`` multiplies it at every forward
    pass; without, the same He-initialized weight is stored directly (``scale = 1``)."""

    weight: nn.Parameter
    bias: nn.Parameter | None

    def _init(self, shape: tuple[int, ...], fan_in: int, gain: float, equalized: bool, bias: bool) -> None:
        self.equalized, self.fan_in, self.gain = equalized, fan_in, gain
        he = gain / math.sqrt(fan_in)
        self.scale = he if equalized else 1.0
        self.weight = nn.Parameter(torch.randn(shape) * (1.0 if equalized else he))
        self.bias = nn.Parameter(torch.zeros(shape[0])) if bias else None

    def scaled_weight(self) -> torch.Tensor:
        return self.weight * self.scale if self.equalized else self.weight


class EqConv2d(EqualizedLR):
    """A stride-1 'same' convolution with (optionally) equalized learning rate."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, gain: float = math.sqrt(2), equalized: bool = True,
                 bias: bool = True):  # fmt: skip
        super().__init__()
        self.padding = kernel // 2
        self._init((out_ch, in_ch, kernel, kernel), in_ch * kernel * kernel, gain, equalized, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.scaled_weight(), self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i}, {o}, kernel={k}, equalized={self.equalized}, scale={self.scale:.4g}"


class EqLinear(EqualizedLR):
    """A fully connected layer with (optionally) equalized learning rate."""

    def __init__(self, in_f: int, out_f: int, *, gain: float = math.sqrt(2), equalized: bool = True, bias: bool = True):
        super().__init__()
        self._init((out_f, in_f), in_f, gain, equalized, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.scaled_weight(), self.bias)

    def extra_repr(self) -> str:
        o, i = self.weight.shape
        return f"{i}, {o}, equalized={self.equalized}, scale={self.scale:.4g}"


class PixelNorm(nn.Module):
    """x / sqrt(mean over channels of x² + ε): every pixel's feature vector gets unit mean square (§4.2)."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


class MinibatchStd(nn.Module):
    """Appends one feature map: the standard deviation of every feature and pixel over a group of
    ``group_size`` images (biased, as the paper), averaged over features and pixels to one number per
    group, repeated over the group's images and pixels (§3). The group shrinks to a divisor of the batch."""

    def __init__(self, group_size: int = 4, eps: float = 1e-8):
        super().__init__()
        self.group_size, self.eps = group_size, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        y = x.reshape(g, n // g, c, h, w)  # image i belongs to group i % (n // g)
        std = (y.var(dim=0, unbiased=False) + self.eps).sqrt()  # (n/g, c, h, w)
        stat = std.mean(dim=(1, 2, 3))  # (n/g,)
        stat = stat.repeat(g).reshape(n, 1, 1, 1).expand(n, 1, h, w)
        return torch.cat([x, stat.to(x.dtype)], dim=1)


def _act() -> nn.Module:
    return nn.LeakyReLU(LEAK)


def widths(start: int, final: int, fmap_base: int, fmap_max: int, fmap_min: int = 8) -> list[int]:
    """Feature maps per resolution start, 2·start, …, final: ``min(fmap_max, fmap_base / res)`` (paper)."""
    out, res = [], start
    while res <= final:
        out.append(max(fmap_min, min(fmap_max, fmap_base // res)))
        res *= 2
    return out


def _check_sizes(start: int, final: int) -> int:
    if start < 4 or final < start or (final // start) * start != final or (final // start) & (final // start - 1):
        raise ValueError(f"resolutions must grow by powers of 2 from ≥ 4: start {start}, final {final}")
    return int(math.log2(final // start))


class ProgressiveGenerator(nn.Module):
    """latent → (pixel norm) → dense 4×4 → conv, then per doubling: nearest ×2, conv, conv; each
    resolution has its own 1×1 ``to_rgb``. LeakyReLU(0.2) and pixel norm after every conv."""

    def __init__(self, latent_dim: int = 128, channels: int = 3, start: int = 4, final: int = 32,
                 fmap_base: int = 1024, fmap_max: int = 128, *, equalized_lr: bool = True,
                 pixel_norm: bool = True):  # fmt: skip
        super().__init__()
        self.max_depth = _check_sizes(start, final)
        self.latent_dim, self.start, self.final = latent_dim, start, final
        w = widths(start, final, fmap_base, fmap_max)
        eq = {"equalized": equalized_lr}

        def norm() -> nn.Module:
            return PixelNorm() if pixel_norm else nn.Identity()

        self.input_norm = norm()
        # the paper's first layer is a 4×4 "conv" of the 1×1 latent: a dense layer (gain √2 / 4 per the official code)
        self.dense = EqLinear(latent_dim, w[0] * start * start, gain=math.sqrt(2) / 4, **eq)
        self.first = nn.Sequential(_act(), norm(), EqConv2d(w[0], w[0], 3, **eq), _act(), norm())
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                EqConv2d(w[k - 1], w[k], 3, **eq),
                _act(),
                norm(),
                EqConv2d(w[k], w[k], 3, **eq),
                _act(),
                norm(),
            )
            for k in range(1, len(w))
        )
        self.to_rgb = nn.ModuleList(EqConv2d(c, channels, 1, gain=1.0, **eq) for c in w)
        self.widths = w

    def resolution(self, depth: int) -> int:
        return self.start * 2**depth

    def forward(self, z: torch.Tensor, depth: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        """Images at resolution ``start * 2**depth`` (default: final). While ``alpha < 1`` the newest
        block's image is blended with the nearest-upsampled image of the previous resolution."""
        depth = self.max_depth if depth is None else depth
        if not 0 <= depth <= self.max_depth:
            raise ValueError(f"depth {depth} outside 0…{self.max_depth}")
        h = self.dense(self.input_norm(z)).view(len(z), self.widths[0], self.start, self.start)
        h = self.first(h)
        prev = h
        for k in range(1, depth + 1):
            prev, h = h, self.blocks[k - 1](h)
        out = self.to_rgb[depth](h)
        if depth > 0 and alpha < 1.0:
            old = F.interpolate(self.to_rgb[depth - 1](prev), scale_factor=2, mode="nearest")
            out = alpha * out + (1.0 - alpha) * old
        return out


class ProgressiveDiscriminator(nn.Module):
    """Mirror of the generator: per resolution a 1×1 ``from_rgb``, then per halving conv, conv, 2×2
    average pool; at 4×4 (optional) minibatch std, conv, dense, dense → one raw score per image."""

    def __init__(self, channels: int = 3, start: int = 4, final: int = 32, fmap_base: int = 1024,
                 fmap_max: int = 128, *, equalized_lr: bool = True, minibatch_std: bool = True,
                 mbstd_group: int = 4):  # fmt: skip
        super().__init__()
        self.max_depth = _check_sizes(start, final)
        self.start, self.final = start, final
        w = widths(start, final, fmap_base, fmap_max)
        eq = {"equalized": equalized_lr}
        self.from_rgb = nn.ModuleList(nn.Sequential(EqConv2d(channels, c, 1, **eq), _act()) for c in w)
        # blocks[k - 1] takes resolution start·2^k (w[k] maps) down to start·2^(k-1) (w[k-1] maps)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                EqConv2d(w[k], w[k], 3, **eq), _act(), EqConv2d(w[k], w[k - 1], 3, **eq), _act(), nn.AvgPool2d(2)
            )
            for k in range(1, len(w))
        )
        self.mbstd = MinibatchStd(mbstd_group) if minibatch_std else nn.Identity()
        extra = 1 if minibatch_std else 0
        self.final_block = nn.Sequential(
            EqConv2d(w[0] + extra, w[0], 3, **eq), _act(), nn.Flatten(),
            EqLinear(w[0] * start * start, w[0], **eq), _act(), EqLinear(w[0], 1, gain=1.0, **eq),
        )  # fmt: skip
        self.widths = w

    def forward(self, x: torch.Tensor, depth: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        """Scores (N, 1) of images at resolution ``start * 2**depth`` (default: final). While
        ``alpha < 1`` the newest block's features are blended with ``from_rgb`` of the average-pooled input."""
        depth = self.max_depth if depth is None else depth
        if not 0 <= depth <= self.max_depth:
            raise ValueError(f"depth {depth} outside 0…{self.max_depth}")
        expected = self.start * 2**depth
        if x.shape[-1] != expected or x.shape[-2] != expected:
            raise ValueError(f"depth {depth} expects {expected}×{expected} images, got {tuple(x.shape[-2:])}")
        h = self.from_rgb[depth](x)
        if depth > 0:
            h = self.blocks[depth - 1](h)
            if alpha < 1.0:
                old = self.from_rgb[depth - 1](F.avg_pool2d(x, 2))
                h = alpha * h + (1.0 - alpha) * old
            for k in range(depth - 1, 0, -1):
                h = self.blocks[k - 1](h)
        return self.final_block(self.mbstd(h))


class AtDepth(nn.Module):
    """A discriminator fixed at one ``depth`` and ``alpha`` (for :func:`gankit.losses.gradient_penalty`)."""

    def __init__(self, net: ProgressiveDiscriminator, depth: int, alpha: float):
        super().__init__()
        self.net, self.depth, self.alpha = net, depth, alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.depth, self.alpha)


def downscale(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average-pool square images to ``size`` (a power-of-2 fraction of their size)."""
    factor = x.shape[-1] // size
    return F.avg_pool2d(x, factor) if factor > 1 else x


def real_at(x: torch.Tensor, depth: int, alpha: float, start: int = 4) -> torch.Tensor:
    """Real images as the discriminator should see them at ``depth`` and ``alpha``: pooled to the
    current resolution and, while fading, blended with the upsampled previous resolution — the same
    blend the generator's output goes through (official implementation's level-of-detail input)."""
    size = start * 2**depth
    cur = downscale(x, size)
    if depth > 0 and alpha < 1.0:
        old = F.interpolate(downscale(x, size // 2), scale_factor=2, mode="nearest")
        cur = alpha * cur + (1.0 - alpha) * old
    return cur


def clip_effective_weights(module: nn.Module, limit: float) -> None:
    """WGAN weight clipping (Arjovsky et al. 2017) of the weights the network actually applies: an
    equalized layer's stored N(0, 1) weight is clamped to ±limit / scale, so that ``weight · scale``
    lies in [−limit, limit] (clamping the stored weight itself would shrink the critic by the He
    constant in every layer and starve the generator of gradient). Other parameters: ±limit."""
    with torch.no_grad():
        done: set[int] = set()
        for m in module.modules():
            if isinstance(m, EqualizedLR):
                bound = limit / m.scale if m.equalized else limit
                m.weight.clamp_(-bound, bound)
                done.add(id(m.weight))
        for p in module.parameters():
            if id(p) not in done:
                p.clamp_(-limit, limit)
