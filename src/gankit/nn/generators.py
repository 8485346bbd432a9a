"""Image-to-image generators, selectable by name (SPEC §1).

Every generator maps ``(N, in_channels, H, W)`` in [-1, 1] to ``(N, out_channels, H, W)`` and is fully
convolutional, so any image size works once it is padded to ``size_multiple`` (see
``gankit.inference``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gankit.nn.conv import TunedConv2d
from gankit.nn.layers import (
    Dropout,
    blur_downsample,
    blur_upsample,
    check_luminance_channels,
    conv_bias,
    downsampling_conv,
    final_activation,
    hidden_activation,
    norm_layer,
    padded_conv,
    with_input_luminance,
)


def _odd_kernel(kernel_size: int, network: str) -> int:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"the {network} generator needs an odd kernel size (its convs pad 'same' on both sides), "
                         f"got {kernel_size}")  # fmt: skip
    return kernel_size


class ResnetBlock(nn.Module):
    """Two 3x3 convs (``kernel_size`` × ``kernel_size``) with a skip connection (He et al. 2016), the
    CycleGAN transformer block."""

    def __init__(self, channels: int, *, norm: str = "instance", padding: str = "reflect", dropout: float = 0.0,
                 kernel_size: int = 3, activation: str = "relu"):  # fmt: skip
        super().__init__()
        bias = conv_bias(norm)
        k = _odd_kernel(kernel_size, "resnet")
        layers: list[nn.Module] = [
            *padded_conv(channels, channels, k, padding, bias=bias),
            norm_layer(norm, channels),
            hidden_activation(activation),
        ]
        if dropout > 0:
            layers.append(Dropout(dropout))
        layers += [*padded_conv(channels, channels, k, padding, bias=bias), norm_layer(norm, channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's generator (Zhu et al. 2017, appendix 7.2, after Johnson et al. 2016):
    c7s1-ngf, d(2ngf), d(4ngf), n_blocks x R(4ngf), u(2ngf), u(ngf), c7s1-out, tanh.

    Use 6 blocks for 128 px and 9 for 256 px training images. Module order mirrors the official
    implementation so its checkpoints map onto this one parameter by parameter.

    ``antialias`` replaces each stride-2 conv by a stride-1 conv followed by a blurred subsampling and
    each transposed conv by a blurred upsampling followed by a stride-1 conv (Zhang 2019), CUT's
    default (Park et al. 2020); off, the network is CycleGAN's.

    The options of SPEC §4 and seed 000, each off by default (CycleGAN's network): ``kernel_size`` is
    the kernel of the down- and upsampling convs and of the residual blocks (3 in CycleGAN; seed 000
    uses 5 for digits). The 7×7 stem and head stay 7×7: they are the full-resolution projections into
    and out of feature space (Johnson et al. 2016), already wider than any body kernel asked for in
    practice, and a kernel option that shrank them would narrow what the seed widens.
    ``activation="leaky"`` puts LeakyReLU(0.2) in place of every ReLU, and ``downsample="avgpool"``
    makes each stride-2 conv a stride-1 conv followed by 2×2 average pooling (GANs in Action §5.4.5,
    seed 001; :class:`~gankit.nn.layers.PooledConv2d`); both keep every parameter's name and shape.
    ``luminance`` (``keep`` for gray → colour, ``residual`` for colour → gray) ties the output to the
    input's luma (:func:`~gankit.nn.layers.with_input_luminance`); it adds no parameter.

    :meth:`forward_with_taps` also returns intermediate features at named *taps* (:attr:`tap_names`):
    ``input``, ``stem`` (after the first conv block), ``down1``/``down2`` (the raw output of each
    downsampling conv) and ``block1`` … ``blockN`` (the output of each residual block), what
    PatchNCE compares (CUT §3).
    """

    size_multiple = 4

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ngf: int = 64,
        n_blocks: int = 9,
        *,
        norm: str = "instance",
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
        if antialias and downsample != "stride":
            raise ValueError(f"antialiased sampling downsamples by blurring; it cannot be combined with {downsample!r}")
        check_luminance_channels(luminance, in_channels, out_channels)
        self.in_channels, self.ngf, self.luminance = in_channels, ngf, luminance
        bias = conv_bias(norm)
        k = _odd_kernel(kernel_size, "resnet")
        p = k // 2
        self.stem = nn.Sequential(
            *padded_conv(in_channels, ngf, 7, padding, bias=bias), norm_layer(norm, ngf), hidden_activation(activation)
        )
        down: list[nn.Module] = []
        for i in range(2):
            c = ngf * 2**i
            if antialias:
                down += [nn.ZeroPad2d(p), TunedConv2d(c, 2 * c, k, bias=bias), norm_layer(norm, 2 * c),
                         hidden_activation(activation), blur_downsample(2 * c)]  # fmt: skip
            else:
                down += [downsampling_conv(c, 2 * c, k, p, bias=bias, downsample=downsample), norm_layer(norm, 2 * c),
                         hidden_activation(activation)]  # fmt: skip
        self.down = nn.Sequential(*down)
        width = ngf * 4
        block = {"norm": norm, "padding": padding, "dropout": dropout, "kernel_size": k, "activation": activation}
        self.blocks = nn.Sequential(*[ResnetBlock(width, **block) for _ in range(n_blocks)])
        up: list[nn.Module] = []
        for i in range(2):
            c = width // 2**i
            if antialias:
                up += [blur_upsample(c), nn.ZeroPad2d(p), TunedConv2d(c, c // 2, k, bias=bias)]
            else:
                up.append(nn.ConvTranspose2d(c, c // 2, k, stride=2, padding=p, output_padding=1, bias=bias))
            up += [norm_layer(norm, c // 2), hidden_activation(activation)]
        self.up = nn.Sequential(*up)
        self.head = nn.Sequential(*padded_conv(ngf, out_channels, 7, padding), final_activation(final))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tie_luminance(self.head(self.up(self.blocks(self.down(self.stem(x))))), x)

    def tie_luminance(self, output: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """``output`` tied to the input ``source``'s luma as ``luminance`` says (unchanged without it)."""
        return output if self.luminance is None else with_input_luminance(output, source, self.luminance)

    @property
    def tap_names(self) -> tuple[str, ...]:
        return ("input", "stem", "down1", "down2", *(f"block{i + 1}" for i in range(len(self.blocks))))

    def tap_channels(self, tap: str) -> int:
        """Channels of the features at ``tap``."""
        if tap not in self.tap_names:
            raise ValueError(f"unknown tap {tap!r}; this generator has {', '.join(self.tap_names)}")
        return {"input": self.in_channels, "stem": self.ngf, "down1": 2 * self.ngf}.get(tap, 4 * self.ngf)

    def _tapped_layers(self) -> list[tuple[nn.Module, str | None]]:
        """The layers in execution order, each with the tap its output is (or None)."""
        layers: list[tuple[nn.Module, str | None]] = [(m, None) for m in self.stem]
        layers[-1] = (layers[-1][0], "stem")
        convs = 0
        for m in self.down:
            trained_conv = isinstance(m, nn.Conv2d) and isinstance(m.weight, nn.Parameter)
            convs += trained_conv
            layers.append((m, f"down{convs}" if trained_conv else None))
        layers += [(m, f"block{i + 1}") for i, m in enumerate(self.blocks)]
        return layers + [(m, None) for m in (*self.up, *self.head)]

    def forward_with_taps(
        self, x: torch.Tensor, taps: Sequence[str], *, encode_only: bool = False
    ) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """``(output, [features at each of taps])``; with ``encode_only`` the pass stops after the deepest
        tap and the output is None (CUT encodes translations this way, §3.1)."""
        unknown = [t for t in taps if t not in self.tap_names]
        if unknown:
            raise ValueError(f"unknown tap(s) {', '.join(unknown)}; this generator has {', '.join(self.tap_names)}")
        wanted = set(taps)
        feats = {"input": x} if "input" in wanted else {}
        if encode_only and len(feats) == len(wanted):
            return None, [feats[t] for t in taps]
        source = x
        for layer, tap in self._tapped_layers():
            x = layer(x)
            if tap in wanted:
                feats[tap] = x
                if encode_only and len(feats) == len(wanted):
                    return None, [feats[t] for t in taps]
        return self.tie_luminance(x, source), [feats[t] for t in taps]


class UnetGenerator(nn.Module):
    """Seed 000's U-Net (Atienza, *Advanced Deep Learning with TF2*, listing 7.1.2): ``depth`` encoder
    layers IN → LeakyReLU(0.2) → Conv(k, stride 2; the first stride 1) with ngf·2^i filters, decoder
    layers IN → ReLU → ConvTranspose(stride 2) followed by concatenation with the mirrored encoder
    output, then a stride-1 ConvTranspose to ``out_channels``. Seed 000 ends with a sigmoid; tanh is
    the default here because images are scaled to [-1, 1]. ``kernel_size`` is every conv's (seed 000:
    3, and 5 for MNIST ↔ SVHN); ``activation="leaky"`` makes the decoders' ReLUs LeakyReLU(0.2) too
    (seed 000's layers offer either); ``downsample="avgpool"`` makes each stride-2 encoder conv a stride-1
    conv followed by 2×2 average pooling (SPEC §4)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ngf: int = 32,
        depth: int = 4,
        *,
        kernel_size: int = 3,
        norm: str = "instance",
        final: str = "tanh",
        activation: str = "relu",
        downsample: str = "stride",
    ):
        super().__init__()
        if depth < 2:
            raise ValueError("unet depth must be at least 2")
        self.size_multiple = 2 ** (depth - 1)
        k = _odd_kernel(kernel_size, "unet")
        p = k // 2
        widths = [ngf * 2**i for i in range(depth)]
        self.encoders = nn.ModuleList()
        prev = in_channels
        for i, w in enumerate(widths):
            conv = nn.Conv2d(prev, w, k, 1, p) if i == 0 else downsampling_conv(prev, w, k, p, downsample=downsample)
            self.encoders.append(nn.Sequential(norm_layer(norm, prev), nn.LeakyReLU(0.2, True), conv))
            prev = w
        self.decoders = nn.ModuleList()
        for w, skip in zip(reversed(widths[:-1]), reversed(widths[:-1])):
            self.decoders.append(
                nn.Sequential(
                    norm_layer(norm, prev),
                    hidden_activation(activation),
                    nn.ConvTranspose2d(prev, w, k, stride=2, padding=p, output_padding=1),
                )
            )
            prev = w + skip
        self.head = nn.Sequential(nn.ConvTranspose2d(prev, out_channels, k, 1, p), final_activation(final))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
        skips.pop()
        for dec in self.decoders:
            x = torch.cat([dec(x), skips.pop()], dim=1)
        return self.head(x)


class _SamePad4(nn.ZeroPad2d):
    """TensorFlow's 'same' padding for a 4x4 stride-1 kernel pads 1 before and 2 after."""

    def __init__(self):
        super().__init__((1, 2, 1, 2))


def _same_pad(kernel: int) -> nn.ZeroPad2d:
    """TensorFlow's 'same' padding of a stride-1 ``kernel`` × ``kernel`` conv: (k − 1) // 2 before, k // 2 after."""
    return _SamePad4() if kernel == 4 else nn.ZeroPad2d(((kernel - 1) // 2, kernel // 2) * 2)


class UnetUpsampleGenerator(nn.Module):
    """GANs in Action ch.9 CycleGAN generator (after Keras-GAN): downs Conv(k4, s2) → LeakyReLU(0.2)
    → IN with gf, 2gf, 4gf, 8gf filters; ups nearest Upsample(2) → Conv(k4) → ReLU → (dropout) → IN →
    concat skip; a final Upsample → Conv(k4) → tanh. Upsampling + conv avoids the checkerboard
    artifacts of transposed convs (Odena et al. 2016). ``kernel_size`` (default 4, the book's) is every
    conv's; ``activation="leaky"`` makes the ups' ReLUs LeakyReLU(0.2); ``downsample="avgpool"`` makes
    each stride-2 down conv a stride-1 conv followed by 2×2 average pooling (SPEC §4)."""

    size_multiple = 16

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ngf: int = 32,
        *,
        norm: str = "instance",
        dropout: float = 0.0,
        final: str = "tanh",
        kernel_size: int = 4,
        activation: str = "relu",
        downsample: str = "stride",
    ):
        super().__init__()
        k = kernel_size
        if k < 1:
            raise ValueError(f"the unet-upsample generator needs a kernel size ≥ 1, got {k}")
        widths = [ngf, 2 * ngf, 4 * ngf, 8 * ngf]
        self.downs = nn.ModuleList()
        prev = in_channels
        for w in widths:
            conv = downsampling_conv(prev, w, k, (k - 1) // 2, downsample=downsample)
            self.downs.append(nn.Sequential(conv, nn.LeakyReLU(0.2, True), norm_layer(norm, w)))
            prev = w
        self.ups = nn.ModuleList()
        for w in reversed(widths[:-1]):
            layers: list[nn.Module] = [
                nn.Upsample(scale_factor=2, mode="nearest"),
                _same_pad(k),
                nn.Conv2d(prev, w, k),
                hidden_activation(activation),
            ]
            if dropout > 0:
                layers.append(Dropout(dropout))
            layers.append(norm_layer(norm, w))
            self.ups.append(nn.Sequential(*layers))
            prev = 2 * w
        self.head = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            _same_pad(k),
            nn.Conv2d(prev, out_channels, k),
            final_activation(final),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        skips.pop()
        for up in self.ups:
            x = torch.cat([up(x), skips.pop()], dim=1)
        return self.head(x)


class _SkipBlock(nn.Module):
    """One level of pix2pix's recursive U-Net (Isola et al. 2017); the output concatenates input and
    processed features, except at the outermost level."""

    def __init__(
        self,
        outer: int,
        inner: int,
        in_ch: int,
        sub: nn.Module | None,
        *,
        outermost: bool,
        norm: str,
        dropout: float,
        out_ch: int | None = None,
        kernel_size: int = 4,
        activation: str = "relu",
        downsample: str = "stride",
    ):
        super().__init__()
        bias = conv_bias(norm)
        self.outermost = outermost
        k, p, op = kernel_size, (kernel_size - 1) // 2, kernel_size % 2  # every k doubles the size exactly
        down_conv = downsampling_conv(in_ch, inner, k, p, bias=bias, downsample=downsample)

        def up_conv(i: int, o: int, b: bool = True) -> nn.ConvTranspose2d:
            return nn.ConvTranspose2d(i, o, k, 2, p, output_padding=op, bias=b)

        if outermost:
            up = [hidden_activation(activation), up_conv(inner * 2, out_ch), nn.Tanh()]
            layers = [down_conv, sub, *up]
        elif sub is None:
            up = [hidden_activation(activation), up_conv(inner, outer, bias), norm_layer(norm, outer)]
            layers = [nn.LeakyReLU(0.2, True), down_conv, *up]
        else:
            up = [hidden_activation(activation), up_conv(inner * 2, outer, bias), norm_layer(norm, outer)]
            if dropout > 0:
                up.append(Dropout(dropout))
            layers = [nn.LeakyReLU(0.2, True), down_conv, norm_layer(norm, inner), sub, *up]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y if self.outermost else torch.cat([x, y], 1)


class SkipUnetGenerator(nn.Module):
    """The official code's ``unet_128``/``unet_256`` generator (pix2pix, Isola et al. 2017): a
    recursive U-Net with ``num_downs`` stride-2 4x4 convs (7 → 128 px, 8 → 256 px). Offered so
    official U-Net checkpoints load; its bottleneck is 1x1 at the training size. ``kernel_size``
    (default 4, the official one) is every conv's; ``activation="leaky"`` makes the up path's ReLUs
    LeakyReLU(0.2); ``downsample="avgpool"`` makes each stride-2 conv a stride-1 conv followed by 2×2
    average pooling (SPEC §4)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ngf: int = 64,
        num_downs: int = 8,
        *,
        norm: str = "instance",
        dropout: float = 0.0,
        kernel_size: int = 4,
        activation: str = "relu",
        downsample: str = "stride",
    ):
        super().__init__()
        if num_downs < 5:
            raise ValueError("unet-skip needs num_downs >= 5")
        if kernel_size < 1:
            raise ValueError(f"the unet-skip generator needs a kernel size ≥ 1, got {kernel_size}")
        self.size_multiple = 2**num_downs
        kw = {"norm": norm, "kernel_size": kernel_size, "activation": activation, "downsample": downsample}
        block = _SkipBlock(ngf * 8, ngf * 8, ngf * 8, None, outermost=False, dropout=0, **kw)
        for _ in range(num_downs - 5):
            block = _SkipBlock(ngf * 8, ngf * 8, ngf * 8, block, outermost=False, dropout=dropout, **kw)
        for mult in (4, 2, 1):
            block = _SkipBlock(ngf * mult, ngf * mult * 2, ngf * mult, block, outermost=False, dropout=0, **kw)
        self.model = _SkipBlock(out_channels, ngf, in_channels, block, outermost=True, dropout=0, out_ch=out_channels,
                                **kw)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


GENERATORS = ("resnet", "unet", "unet-upsample", "unet-skip")


def build_generator(
    name: str,
    in_channels: int,
    out_channels: int,
    *,
    ngf: int | None = None,
    n_blocks: int = 9,
    depth: int | None = None,
    kernel_size: int | None = None,
    norm: str = "instance",
    padding: str = "reflect",
    dropout: float = 0.0,
    final: str = "tanh",
    antialias: bool = False,
    activation: str = "relu",
    downsample: str = "stride",
    luminance: str | None = None,
) -> nn.Module:
    """Generator by name; ``ngf=None``/``depth=None``/``kernel_size=None`` pick each architecture's
    published values (kernel 3 for resnet and unet, 4 for unet-upsample and unet-skip); ``antialias``
    and ``luminance`` apply to the resnet generator only."""
    if antialias and name != "resnet":
        raise ValueError(f"antialiased sampling is an option of the resnet generator, not of {name!r}")
    if luminance is not None and name != "resnet":
        raise ValueError(f"the luminance tie is an option of the resnet generator, not of {name!r}")
    opts = {"activation": activation, "downsample": downsample}
    if kernel_size is not None:
        opts["kernel_size"] = kernel_size
    if name == "resnet":
        return ResnetGenerator(in_channels, out_channels, ngf or 64, n_blocks, norm=norm, padding=padding,
                               dropout=dropout, final=final, antialias=antialias, luminance=luminance,
                               **opts)  # fmt: skip
    if name == "unet":
        return UnetGenerator(in_channels, out_channels, ngf or 32, depth or 4, norm=norm, final=final, **opts)
    if name == "unet-upsample":
        return UnetUpsampleGenerator(in_channels, out_channels, ngf or 32, norm=norm, dropout=dropout, final=final,
                                     **opts)  # fmt: skip
    if name == "unet-skip":
        return SkipUnetGenerator(in_channels, out_channels, ngf or 64, depth or 8, norm=norm, dropout=dropout, **opts)
    raise ValueError(f"unknown generator {name!r}; choose one of {GENERATORS}")


def generator_size_multiple(name: str, *, depth: int | None = None) -> int:
    """What image sides ``name`` needs to be a multiple of (its total down-sampling), without building it."""
    with torch.device("meta"):
        return int(build_generator(name, 1, 1, ngf=1, n_blocks=1, depth=depth).size_multiple)
