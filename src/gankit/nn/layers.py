"""Small building blocks shared by generators and discriminators.

Normalization and padding are chosen by name so that a config value (not a code change) selects
them, as the official CycleGAN code does with ``--norm`` and as seed 003 does with reflect padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gankit.nn.conv import TunedConv2d

NORMS = ("instance", "batch", "none")
PADDINGS = ("reflect", "replicate", "zeros")


class Dropout(nn.Dropout):
    """Element-wise dropout (Srivastava et al. 2014) whose mask on the CPU comes from 16 random bits
    per element, drawn four to a 64-bit generator call, instead of ``torch.bernoulli``'s one draw
    per element (one-off timing, 300×128×7×7 tensor, 2 threads: 22.8 → 2.5 ms), which was a quarter
    of an SGAN step. The drop probability is rounded to a multiple of 1/65536 (exact for 0.5). Kept
    elements are scaled by 1/(1 − p) as in :class:`torch.nn.Dropout`; other devices, TorchScript and
    tracing use that class's path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            not self.training
            or self.p == 0
            or self.p >= 1
            or self.inplace
            or x.device.type != "cpu"
            or torch.jit.is_scripting()
            or torch.jit.is_tracing()
        ):
            return F.dropout(x, self.p, self.training, self.inplace)
        return self._masked(x)

    @torch.jit.unused
    def _masked(self, x: torch.Tensor) -> torch.Tensor:
        return x * dropout_mask(x, self.p)


def dropout_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """0 with probability ``p`` (rounded to 1/65536), else 1/(1 − p), shaped and typed like ``x``."""
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)
    threshold = round(p * 65536) - 32768
    keep = bits.view(torch.int16)[:n].view(x.shape) >= threshold
    return keep.to(x.dtype).mul_(1.0 / (1.0 - p))


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Instance norm without affine parameters or running stats, as in CycleGAN (Zhu et al. 2017 §4,
    after Ulyanov et al. 2016); batch norm for pix2pix-style models; identity for none."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


def conv_bias(norm: str) -> bool:
    """A conv followed by batch norm needs no bias (BN's shift replaces it); instance norm without
    affine keeps the conv bias, matching the official parameter count (11,378,179 for resnet-9)."""
    return norm != "batch"


def padded_conv(
    in_ch: int, out_ch: int, kernel: int, padding: str = "reflect", *, bias: bool = True
) -> list[nn.Module]:
    """A stride-1 'same' conv whose border padding is a separate layer (reflect avoids the border
    artifacts of zero padding; CycleGAN paper appendix 7.2). The conv is a :class:`TunedConv2d`: a
    plain ``nn.Conv2d`` until a model hands it a tuner (:func:`gankit.nn.conv.tune_convolutions`)."""
    p = kernel // 2
    if padding == "reflect":
        return [nn.ReflectionPad2d(p), TunedConv2d(in_ch, out_ch, kernel, bias=bias)]
    if padding == "replicate":
        return [nn.ReplicationPad2d(p), TunedConv2d(in_ch, out_ch, kernel, bias=bias)]
    if padding == "zeros":
        return [nn.Conv2d(in_ch, out_ch, kernel, padding=p, bias=bias)]
    raise ValueError(f"unknown padding {padding!r}; choose one of {PADDINGS}")


ACTIVATIONS = ("relu", "leaky")
DOWNSAMPLES = ("stride", "avgpool")


def hidden_activation(kind: str = "relu") -> nn.Module:
    """What a network puts where its architecture has a ReLU: the ReLU itself, or with ``leaky`` a
    LeakyReLU of slope 0.2 (the slope of the networks' other LeakyReLUs and of seed 000). GANs in
    Action §5.4.5 (seed 001; SPEC §4 "LeakyReLU everywhere"): ReLU's zero gradient for negative inputs
    is a sparse gradient that makes GAN training harder; LeakyReLU passes information from the
    negative side too."""
    if kind == "relu":
        return nn.ReLU(True)
    if kind == "leaky":
        return nn.LeakyReLU(0.2, True)
    raise ValueError(f"unknown activation {kind!r}; choose one of {ACTIVATIONS}")


class PooledConv2d(nn.Conv2d):
    """A stride-1 conv followed by 2×2 average pooling, in place of a stride-2 conv with the same
    kernel and padding: GANs in Action §5.4.5 (seed 001; SPEC §4 "average pooling") advises average
    pooling over strided or max-pooled downsampling, which keeps an average of every position rather
    than a subsample. The parameters, their names and shapes are the strided conv's (so inits, weight
    counts and state-dict keys compare), and the output has the strided conv's size for every input
    size: the pooling is ceil-mode, a last partial window averaging the pixels it covers. It costs
    four times the strided conv's multiply-adds (the conv runs at full resolution). The conv's own
    attributes (``stride`` 1, ``padding``) describe the conv before the pooling, which is how the
    exact tiled executor reads it."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, *, bias: bool = True,
                 padding_mode: str = "zeros"):  # fmt: skip
        super().__init__(in_channels, out_channels, kernel_size, 1, padding, bias=bias, padding_mode=padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self._conv_forward(x, self.weight, self.bias), 2, ceil_mode=True)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", then 2x2 average pooling"


def downsampling_conv(in_ch: int, out_ch: int, kernel: int, padding: int, *, bias: bool = True,
                      padding_mode: str = "zeros", downsample: str = "stride") -> nn.Conv2d:  # fmt: skip
    """A conv that halves the resolution: stride 2 (``stride``), or stride 1 then 2×2 average
    pooling (``avgpool``, :class:`PooledConv2d`), with the same parameters and output size."""
    if downsample == "stride":
        return nn.Conv2d(in_ch, out_ch, kernel, 2, padding, bias=bias, padding_mode=padding_mode)
    if downsample == "avgpool":
        return PooledConv2d(in_ch, out_ch, kernel, padding, bias=bias, padding_mode=padding_mode)
    raise ValueError(f"unknown downsampling {downsample!r}; choose one of {DOWNSAMPLES}")


def _binomial_filter(taps: int) -> torch.Tensor:
    """The normalised 2-D binomial filter of ``taps`` per side (3: [1, 2, 1]⊗[1, 2, 1] / 16)."""
    row = torch.tensor([math.comb(taps - 1, i) for i in range(taps)], dtype=torch.float32)
    kernel = torch.outer(row, row)
    return kernel / kernel.sum()


class FixedDepthwiseConv2d(nn.Conv2d):
    """A depthwise conv with a fixed (not trained) filter: a buffer, not a parameter, so optimizers,
    weight init and checkpoints leave it alone, while the tiler and the exporters see a plain conv."""

    def __init__(self, channels: int, kernel: torch.Tensor, stride: int):
        super().__init__(channels, channels, kernel.shape[-1], stride=stride, groups=channels, bias=False)
        del self.weight
        self.register_buffer("weight", kernel.expand(channels, 1, *kernel.shape).clone(), persistent=False)


class FixedDepthwiseConvTranspose2d(nn.ConvTranspose2d):
    """The transposed counterpart of :class:`FixedDepthwiseConv2d`."""

    def __init__(self, channels: int, kernel: torch.Tensor, stride: int, padding: int):
        super().__init__(channels, channels, kernel.shape[-1], stride=stride, padding=padding, groups=channels,
                         bias=False)  # fmt: skip
        del self.weight
        self.register_buffer("weight", kernel.expand(channels, 1, *kernel.shape).clone(), persistent=False)


def blur_downsample(channels: int) -> nn.Sequential:
    """Anti-aliased stride-2 subsampling (Zhang 2019, "Making convolutional networks shift-invariant
    again"): low-pass with a 3×3 binomial filter over reflected borders, then keep every second pixel.
    CUT (Park et al. 2020) uses it after a stride-1 conv in place of a stride-2 conv. (A depthwise conv
    is the fastest form on the CPU, measured against average pools and strided slices.)"""
    return nn.Sequential(nn.ReflectionPad2d(1), FixedDepthwiseConv2d(channels, _binomial_filter(3), stride=2))


def blur_upsample(channels: int) -> nn.Sequential:
    """Anti-aliased ×2 upsampling (Zhang 2019; CUT's decoder): zero insertion, then a 4×4 binomial
    filter over replicated borders — exactly bilinear ×2 upsampling (``align_corners=False``), written
    as a padded depthwise transposed conv, which exact tiling and the exporters handle (and which is
    faster than ``F.interpolate``'s backward on the CPU)."""
    blur = FixedDepthwiseConvTranspose2d(channels, 4 * _binomial_filter(4), stride=2, padding=3)
    return nn.Sequential(nn.ReplicationPad2d(1), blur)


def final_activation(kind: str) -> nn.Module:
    """tanh matches inputs normalized to [-1, 1] (GANs in Action ch.5 tips); sigmoid is seed 000's
    choice for [0, 1] images; none gives raw outputs."""
    if kind == "tanh":
        return nn.Tanh()
    if kind == "sigmoid":
        return nn.Sigmoid()
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown final activation {kind!r}; choose tanh, sigmoid or none")


LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights of R, G, B: how PIL (and so every gray domain built here) turns colour into gray."""
LUMINANCE_MODES = ("keep", "residual")


def luminance(x: torch.Tensor) -> torch.Tensor:
    """Luma (N, 1, H, W) of images (N, C, H, W) with C = 1 (returned as is) or C = 3 (BT.601 weights); one
    image (C, H, W) gives (1, H, W)."""
    if x.ndim not in (3, 4) or x.shape[-3] not in (1, 3):
        raise ValueError(f"expected (N, 1 or 3, H, W) images, got shape {tuple(x.shape)}")
    x = x if x.is_floating_point() else x.float()
    if x.shape[-3] == 1:
        return x
    w = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * w).sum(-3, keepdim=True)


def with_input_luminance(output: torch.Tensor, source: torch.Tensor, mode: str) -> torch.Tensor:
    """A gray ↔ colour generator's output tied to its input's luma. ``keep`` (gray → colour): the output's
    own luma is replaced by the gray input, ``output − Y(output) + source``, so the network chooses only
    chroma; ``residual`` (colour → gray): the output is a correction of the input's luma, ``Y(source) +
    output``. Instance norm removes each image's mean and contrast from the first layer on, so without the
    tie a colorization network cannot know how bright the image it colours was (Zhang et al. 2016 predict
    chroma given the lightness for the same reason)."""
    if mode == "keep":
        return output - luminance(output) + source
    if mode == "residual":
        return luminance(source) + output
    raise ValueError(f"unknown luminance mode {mode!r}; choose one of {LUMINANCE_MODES}")


def check_luminance_channels(mode: str | None, in_channels: int, out_channels: int) -> None:
    """``mode`` needs a gray input and a colour output (``keep``) or the reverse (``residual``)."""
    wanted = {None: None, "keep": (1, 3), "residual": (3, 1)}
    if mode not in wanted:
        raise ValueError(f"unknown luminance mode {mode!r}; choose one of {LUMINANCE_MODES}")
    if mode is not None and (in_channels, out_channels) != wanted[mode]:
        raise ValueError(f"luminance mode {mode!r} maps {wanted[mode][0]} to {wanted[mode][1]} channels, not "
                         f"{in_channels} to {out_channels}")  # fmt: skip


@torch.no_grad()
def init_weights(module: nn.Module, kind: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialize conv/linear weights from N(0, gain) and biases at 0 (CycleGAN paper §4; seeds 003,
    004); norm scales from N(1, gain). ``xavier``/``kaiming``/``orthogonal`` are offered as in the
    official code."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and isinstance(m.weight, nn.Parameter):
            if kind == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif kind == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif kind == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            elif kind == "orthogonal":
                nn.init.orthogonal_(m.weight, gain=gain)
            else:
                raise ValueError(f"unknown init {kind!r}")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return module


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
