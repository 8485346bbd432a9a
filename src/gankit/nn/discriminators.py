"""Discriminators, selectable by name (SPEC §1). All return raw scores (logits): the loss decides
how to read them, so LSGAN, WGAN and hinge games see unsquashed values.

Their hidden activations are LeakyReLU(0.2) already (none has a ReLU to replace: SPEC §4's "LeakyReLU
everywhere" holds for them as published). ``downsample="avgpool"`` makes each stride-2 conv a stride-1
conv followed by 2×2 average pooling (:class:`~gankit.nn.layers.PooledConv2d`, same parameters and
output size)."""

from __future__ import annotations

import torch
from torch import nn

from gankit.nn.layers import conv_bias, downsampling_conv, norm_layer


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017; CycleGAN appendix 7.2): C64-C128-C256-C512 4x4 convs, LeakyReLU
    0.2, instance norm on all but the first, then a 1-channel conv. With ``n_layers=3`` each output
    scores one 70x70 patch; parameter count 2,764,737 for ndf=64 as in the official code.

    ``padding="reflect"`` follows seed 003; ``sigmoid=True`` squashes the output for the vanilla
    min-max game of seed 003 (not the default: LSGAN wants raw scores). ``kernel_size`` replaces the
    4×4 of every conv (seed 000's PatchGAN uses its generator's kernel, 5 for digits), padded by
    (k − 1) // 2 so the stride-2 convs halve the size for any kernel."""

    def __init__(
        self,
        in_channels: int,
        ndf: int = 64,
        n_layers: int = 3,
        *,
        norm: str = "instance",
        padding: str = "zeros",
        sigmoid: bool = False,
        kernel_size: int = 4,
        downsample: str = "stride",
    ):
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"the patch discriminator needs a kernel size ≥ 1, got {kernel_size}")
        bias = conv_bias(norm)
        mode = {"zeros": "zeros", "reflect": "reflect", "replicate": "replicate"}[padding]
        k, p = kernel_size, (kernel_size - 1) // 2

        def conv(i: int, o: int, stride: int, b: bool = True) -> nn.Conv2d:
            if stride == 2:
                return downsampling_conv(i, o, k, p, bias=b, padding_mode=mode, downsample=downsample)
            return nn.Conv2d(i, o, k, stride, p, bias=b, padding_mode=mode)

        layers: list[nn.Module] = [conv(in_channels, ndf, 2), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [conv(ndf * prev, ndf * mult, stride, bias), norm_layer(norm, ndf * mult)]
            layers.append(nn.LeakyReLU(0.2, True))
        layers.append(conv(ndf * mult, 1, 1))
        if sigmoid:
            layers.append(nn.Sigmoid())
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PixelGAN of the official code: judges colour statistics per pixel, no spatial structure."""

    def __init__(self, in_channels: int, ndf: int = 64, *, norm: str = "instance", sigmoid: bool = False):
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, 2 * ndf, 1, bias=bias),
            norm_layer(norm, 2 * ndf),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * ndf, 1, 1, bias=bias),
        ]
        if sigmoid:
            layers.append(nn.Sigmoid())
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ScalarDiscriminator(nn.Module):
    """Seed 000's non-PatchGAN discriminator (listing 7.1.3): LeakyReLU → Conv(k, stride 2) with 32,
    64, 128 filters and a stride-1 256 layer, no normalization, then Flatten → Linear(1), one linear
    score per image. The flatten fixes the input size, so ``image_size`` is required."""

    def __init__(
        self, in_channels: int, image_size: int, ndf: int = 32, *, kernel_size: int = 3, sigmoid: bool = False,
        downsample: str = "stride",
    ):  # fmt: skip
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"the scalar discriminator needs a kernel size ≥ 1, got {kernel_size}")
        k, p = kernel_size, kernel_size // 2
        layers: list[nn.Module] = []
        prev, size = in_channels, image_size
        for i, stride in enumerate((2, 2, 2, 1)):
            w = ndf * 2**i
            down = stride == 2
            conv = downsampling_conv(prev, w, k, p, downsample=downsample) if down else nn.Conv2d(prev, w, k, 1, p)
            layers += [nn.LeakyReLU(0.2), conv]
            prev = w
            size = (size + 2 * p - k) // stride + 1
        self.features = nn.Sequential(*layers)
        self.image_size = image_size
        self.fc = nn.Linear(prev * size * size, 1)
        self.out = nn.Sigmoid() if sigmoid else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ValueError(
                f"scalar discriminator was built for {self.image_size}px images, got {tuple(x.shape[-2:])}"
            )
        return self.out(self.fc(self.features(x).flatten(1)))


DISCRIMINATORS = ("patch", "pixel", "scalar")


def build_discriminator(
    name: str,
    in_channels: int,
    *,
    ndf: int | None = None,
    n_layers: int = 3,
    norm: str = "instance",
    padding: str = "zeros",
    sigmoid: bool = False,
    image_size: int | None = None,
    kernel_size: int | None = None,
    downsample: str = "stride",
) -> nn.Module:
    """Discriminator by name; ``ndf=None`` picks the published width (64 patch/pixel, 32 scalar),
    ``kernel_size=None`` the published kernel (4 patch, 3 scalar). The pixel discriminator judges
    single pixels with 1×1 convs: it has no kernel size to choose (one is refused) and no
    downsampling (``downsample`` leaves it as it is)."""
    if name == "patch":
        return PatchDiscriminator(in_channels, ndf or 64, n_layers, norm=norm, padding=padding, sigmoid=sigmoid,
                                  kernel_size=kernel_size or 4, downsample=downsample)  # fmt: skip
    if name == "pixel":
        if kernel_size not in (None, 1):
            raise ValueError(f"the pixel discriminator has 1x1 convs only (it judges single pixels), not {kernel_size}")
        return PixelDiscriminator(in_channels, ndf or 64, norm=norm, sigmoid=sigmoid)
    if name == "scalar":
        if image_size is None:
            raise ValueError("the scalar discriminator needs image_size (the crop size)")
        return ScalarDiscriminator(in_channels, image_size, ndf or 32, kernel_size=kernel_size or 3, sigmoid=sigmoid,
                                   downsample=downsample)  # fmt: skip
    raise ValueError(f"unknown discriminator {name!r}; choose one of {DISCRIMINATORS}")
