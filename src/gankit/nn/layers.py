"""Small building blocks shared by generators and discriminators.

Normalization and padding are chosen by name so that a config value (not a code change) selects
them, as the official CycleGAN code does with ``--norm`` and as seed 003 does with reflect padding.
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("instance", "batch", "none")
PADDINGS = ("reflect", "replicate", "zeros")


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


class _ShiftedSum(torch.autograd.Function):
    """out[:, c, :, x] = Σ_t z[:, c·k + t, :, x + t] for t < k: the second half of :class:`ColumnTapConv2d`.
    Its backward writes each shifted window of the output gradient once, instead of autograd's one
    full-size zero tensor per slice."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, taps: int, width: int) -> torch.Tensor:
        ctx.taps, ctx.width, ctx.shape = taps, width, z.shape
        return shifted_sum(z, taps, width)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        n, _, h, w_in = ctx.shape
        grad_z = grad.new_zeros(ctx.shape).view(n, -1, ctx.taps, h, w_in)
        for t in range(ctx.taps):
            grad_z[:, :, t, :, t : t + ctx.width] = grad
        return grad_z.view(ctx.shape), None, None


def shifted_sum(z: torch.Tensor, taps: int, width: int) -> torch.Tensor:
    zz = z.unflatten(1, (-1, taps))
    out = zz[:, :, 0, :, :width].clone()
    for t in range(1, taps):
        out += zz[:, :, t, :, t : t + width]
    return out


class ColumnTapConv2d(nn.Conv2d):
    """A k_h×k_w convolution to few output channels (CycleGAN's head: 64 → 3, 7×7) computed as a
    k_h×1 convolution to out·k_w channels, then a sum of k_w horizontally shifted slices of it.

    Same parameters, state dict and FLOPs as ``nn.Conv2d`` and the same result up to float rounding.
    oneDNN's CPU kernels vectorize over output channels, so 3 outputs fill 3 of 16 AVX-512 lanes
    while 21 fill 21 of 32: forward+backward of the resnet head at 256² is 2.4–2.9× faster
    (``benchmarks/conv_layers.py``). Used on CPU for stride-1 unpadded convs (the padding is a separate
    layer); anything else, CUDA, and TorchScript/ONNX export take the plain ``nn.Conv2d`` path.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.column_taps = (
            self.stride == (1, 1) and self.padding == (0, 0) and self.dilation == (1, 1)
            and self.groups == 1 and self.kernel_size[1] > 1 and self.padding_mode == "zeros"
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting() or torch.jit.is_tracing() or not self.column_taps or x.device.type != "cpu":
            return self._conv_forward(x, self.weight, self.bias)
        return self._column_forward(x)

    @torch.jit.unused
    def _column_forward(self, x: torch.Tensor) -> torch.Tensor:
        out_ch, in_ch, kh, kw = self.weight.shape
        columns = self.weight.permute(0, 3, 1, 2).reshape(out_ch * kw, in_ch, kh, 1)
        z = nn.functional.conv2d(x, columns)
        width = x.shape[-1] - kw + 1
        if torch.is_grad_enabled() and z.requires_grad:
            out = _ShiftedSum.apply(z, kw, width)
        else:
            out = shifted_sum(z, kw, width)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


FEW_OUTPUT_CHANNELS = 4  # image heads: gray, RGB, RGBA


def padded_conv(
    in_ch: int, out_ch: int, kernel: int, padding: str = "reflect", *, bias: bool = True
) -> list[nn.Module]:
    """A stride-1 'same' conv whose border padding is a separate layer (reflect avoids the border
    artifacts of zero padding; CycleGAN paper appendix 7.2). Convs to few channels (an RGB or gray
    head) are :class:`ColumnTapConv2d`."""
    p = kernel // 2
    conv = ColumnTapConv2d if out_ch <= FEW_OUTPUT_CHANNELS and kernel > 1 else nn.Conv2d
    if padding == "reflect":
        return [nn.ReflectionPad2d(p), conv(in_ch, out_ch, kernel, bias=bias)]
    if padding == "replicate":
        return [nn.ReplicationPad2d(p), conv(in_ch, out_ch, kernel, bias=bias)]
    if padding == "zeros":
        return [nn.Conv2d(in_ch, out_ch, kernel, padding=p, bias=bias)]
    raise ValueError(f"unknown padding {padding!r}; choose one of {PADDINGS}")


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


@torch.no_grad()
def init_weights(module: nn.Module, kind: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialize conv/linear weights from N(0, gain) and biases at 0 (CycleGAN paper §4; seeds 003,
    004); norm scales from N(1, gain). ``xavier``/``kaiming``/``orthogonal`` are offered as in the
    official code."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
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
