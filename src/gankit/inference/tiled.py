"""Exact tiled translation: any image size in memory bounded by the tile size, without seams.

Why naive tiling is wrong
-------------------------
Instance norm (the CycleGAN default) normalizes every channel by its mean and variance over the
*whole* image. Translating tiles independently normalizes each tile by its own statistics, so
neighbouring tiles get different brightness and contrast and their borders show as seams; overlap
and blending hide the seams but the result is still not the image the network would produce.

How this executor stays exact
-----------------------------
The generator is compiled into *stages*. A stage is one spatial op (a conv or a transposed conv,
together with the padding layer in front of it); what follows it up to the next spatial op —
normalization, activation, residual addition — is a chain of *pointwise* ops. A stage's raw output
(the conv result before the chain) is stored whole; the chain is applied lazily, when the next stage
reads its input.

Each stage is computed one output tile at a time. A tile of output needs a slightly larger window of
the previous activation (the halo: 3 pixels for a 7x7 conv, 1 for a 3x3 conv, 1 input pixel for a
stride-2 transposed conv). That window is read from the stored raw activation and turned into values
by the chain — whose normalization statistics are complete by then, because the previous stage has
finished — and then padded exactly as the one-piece pass pads (reflection or replication at the true
image border only, zeros for a conv's own padding; a stride-2 conv or transposed conv uses the same
input/output alignment as over the whole image). Every output pixel therefore sees exactly the input
values and padding it sees in the one-piece pass, so the raw output is the same up to float rounding.

While a stage writes its tiles (which are disjoint and cover the output), it accumulates for the
instance norm that follows it the per-channel sum and sum of squares in float64 (shifted by the first
tile's mean to avoid cancellation). When the stage ends these give the whole-image mean and biased
variance, which is exactly what :class:`torch.nn.InstanceNorm2d` computes; the norm is then applied
with its ``eps`` (and affine parameters, if any). Residual blocks keep their input: it is written once,
materialized (chain applied), while the block's first conv reads it, and added back lazily.

Memory
------
Activations beyond ``ram_bytes`` (in total) live in an unlinked temporary file in height-width-channel
layout (a full-width band of rows is then one contiguous run), read and written with
``pread``/``pwrite``. Page cache is not part of the process's resident memory, unlike pages of an
``mmap``; so the resident set is bounded by a few tile windows (tile² × channels × 4 bytes each) plus
the input and output images, not by height × width × channels. The peak of temporary disk space is
about two full-resolution activations (2 × 64 channels × H × W × 4 bytes for the default resnet).

What can be tiled
-----------------
:class:`~gankit.nn.generators.ResnetGenerator` (all norms: instance, batch in eval mode, none; all
paddings; dropout is off in eval mode; with or without antialiased sampling, whose fixed blur
filters are depthwise convs and padded transposed convs; any kernel size; ReLU or LeakyReLU; strided
or average-pooled downsampling, a :class:`~gankit.nn.layers.PooledConv2d` running as its stride-1 conv
followed by the 2×2 average as a depthwise stride-2 conv of weight 1/4) and plain ``nn.Sequential`` stacks
of convs, transposed convs, pads, norms and elementwise activations. U-Nets concatenate skip connections
across resolutions and are refused with :class:`TilingUnsupported` (a :class:`~gankit.errors.GankitError`). A
conditional generator with one fixed latent code (:class:`~gankit.nn.latent.CodedGenerator`, Augmented CycleGAN) is
run as the plain resnet generator for that code, so every tile gets the same code.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import GankitError
from gankit.inference.padding import pad_to_multiple
from gankit.nn.generators import ResnetBlock, ResnetGenerator
from gankit.nn.latent import CodedGenerator
from gankit.nn.layers import FixedDepthwiseConv2d, PooledConv2d, with_input_luminance
from gankit.runtime import available_memory

DEFAULT_RAM_BYTES = 256 * 2**20
"""Activations up to this size stay in memory while tiling; larger ones go to a temporary file."""

TILE_CHOICES = (1024, 512, 256, 128, 64)
"""Tile sizes :func:`choose_tile` picks from when tiling is automatic (largest that fits the budget)."""

_MIN_STAGE_TILE = 8


class TilingUnsupported(GankitError):
    """The generator contains something the exact tiled executor cannot stream (skip connections
    across resolutions, an unknown layer, two statistics norms without a conv between them…)."""


# --- memory helpers ---------------------------------------------------------------------------------


def parse_bytes(text: str | int) -> int:
    """``"2.5G"``, ``"800M"``, ``"512MiB"``, ``"1e9"`` or an int → bytes (K/M/G/T are powers of 1024)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text), flags=re.IGNORECASE)
    if not m:
        raise GankitError(f"cannot read memory size {text!r} (examples: 2.5G, 800M, 1073741824)")
    scale = 1024 ** "_kmgt".index(m.group(2).lower() or "_")
    return int(float(m.group(1)) * scale)


def default_memory_budget() -> int:
    """Half of the available memory: what a one-piece pass may use before translation tiles."""
    return available_memory() // 2


# --- the compiled program --------------------------------------------------------------------------


@dataclass
class _Pad:
    mode: str  # zeros | reflect | replicate | circular
    top: int
    bottom: int
    left: int
    right: int


class _Act:
    """One activation: a raw stored tensor plus the pointwise chain that turns it into values."""

    def __init__(self, index: int):
        self.index = index
        self.chain: list[_Op] = []
        self.stat: _StatNorm | None = None  # the norm whose statistics are gathered as raw is written
        self.materialize = False  # a residual source: its values are stored when first read
        self.shape: tuple[int, int, int] | None = None  # (C, H, W)
        self.store: _Store | None = None
        self.value_store: _Store | None = None


class _Op:
    def apply(self, x: torch.Tensor, region: tuple[int, int, int, int], ctx: _Context, owned: bool) -> torch.Tensor:
        """The op on values ``x`` of ``region``; in place when ``owned`` (``x`` is a temporary)."""
        raise NotImplementedError


_Fn = Callable[[torch.Tensor], torch.Tensor]


class _Elementwise(_Op):
    def __init__(self, fn: _Fn, fn_: _Fn | None = None):
        self.fn, self.fn_ = fn, fn_

    def apply(self, x, region, ctx, owned):
        return self.fn_(x) if owned and self.fn_ is not None else self.fn(x)


class _Affine(_Op):
    """Batch norm in eval mode (or instance norm with running statistics): a per-channel affine map."""

    def __init__(self, m: nn.Module):
        var, mean = m.running_var.double(), m.running_mean.double()
        scale = 1.0 / torch.sqrt(var + m.eps)
        if m.weight is not None:
            scale = scale * m.weight.detach().double()
        shift = -mean * scale
        if m.bias is not None:
            shift = shift + m.bias.detach().double()
        self.scale, self.shift = scale.float(), shift.float()

    def apply(self, x, region, ctx, owned):
        x = x.mul_(self.scale.to(x)[:, None, None]) if owned else x * self.scale.to(x)[:, None, None]
        return x.add_(self.shift.to(x)[:, None, None])


class _StatNorm(_Op):
    """Instance norm with statistics of the whole image, known once the producing stage has ended."""

    def __init__(self, m: nn.Module, name: str):
        self.name = name
        self.eps = m.eps
        self.weight = m.weight.detach().float() if m.weight is not None else None
        self.bias = m.bias.detach().float() if m.bias is not None else None
        self.mean: torch.Tensor | None = None  # float64, per channel
        self.var: torch.Tensor | None = None
        self._mean32 = self._scale32 = self._shift32 = None

    def set_stats(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        self.mean, self.var = mean, var
        invstd = 1.0 / torch.sqrt(var + self.eps)
        scale = invstd * self.weight.double() if self.weight is not None else invstd
        self._mean32, self._scale32 = mean.float(), scale.float()
        self._shift32 = self.bias if self.bias is not None else None

    def apply(self, x, region, ctx, owned):
        if self._mean32 is None:
            raise RuntimeError(f"statistics of {self.name} are used before they are complete")
        mean = self._mean32.to(x)[:, None, None]
        y = x.sub_(mean) if owned else x - mean
        y.mul_(self._scale32.to(x)[:, None, None])
        if self._shift32 is not None:
            y.add_(self._shift32.to(x)[:, None, None])
        return y


class _Residual(_Op):
    def __init__(self, src: _Act):
        self.src = src

    def apply(self, x, region, ctx, owned):
        other = ctx.value(self.src, *region)
        return x.add_(other) if owned else x + other


@dataclass
class _Stage:
    module: nn.Conv2d | nn.ConvTranspose2d
    pad: _Pad | None
    src: _Act
    dst: _Act


class _LuminanceTie(_Residual):
    """The resnet generator's tie of its output to the input's luma (``luminance``), a residual from the input."""

    def __init__(self, src: _Act, mode: str):
        super().__init__(src)
        self.mode = mode

    def apply(self, x, region, ctx, owned):
        return with_input_luminance(x, ctx.value(self.src, *region), self.mode)


class _ResBegin:
    pass


class _ResEnd:
    pass


@dataclass
class _LuminanceEnd:
    mode: str


class _AveragePool2x2(FixedDepthwiseConv2d):
    """The 2×2 average pooling after a :class:`PooledConv2d`'s conv, as the depthwise stride-2 conv of
    weight 1/4 it equals on even sizes (odd ones are refused in :func:`_infer_shapes`): one more stage."""

    def __init__(self, conv: PooledConv2d):
        super().__init__(conv.out_channels, torch.full((2, 2), 0.25), stride=2)
        self.to(conv.weight.device, conv.weight.dtype)


def _flatten(module: nn.Module) -> list:
    """The generator as a flat list of layers and residual markers, in execution order."""
    if isinstance(module, PooledConv2d) and type(module).forward is PooledConv2d.forward:
        return [module, _AveragePool2x2(module)]  # its own attributes describe the stride-1 conv
    if isinstance(module, ResnetGenerator) and type(module).forward is ResnetGenerator.forward:
        layers = [
            x for part in (module.stem, module.down, module.blocks, module.up, module.head) for x in _flatten(part)
        ]
        return layers if module.luminance is None else [_ResBegin(), *layers, _LuminanceEnd(module.luminance)]
    if isinstance(module, ResnetBlock) and type(module).forward is ResnetBlock.forward:
        return [_ResBegin(), *_flatten(module.body), _ResEnd()]
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        return [x for child in module for x in _flatten(child)]
    return [module]


_PADS = {nn.ReflectionPad2d: "reflect", nn.ReplicationPad2d: "replicate", nn.ZeroPad2d: "zeros"}
_ELEMENTWISE: dict[type, Callable[[nn.Module], tuple[_Fn, _Fn | None]]] = {  # (out of place, in place)
    nn.ReLU: lambda m: (torch.relu, torch.relu_),
    nn.LeakyReLU: lambda m: (lambda x: F.leaky_relu(x, m.negative_slope), lambda x: F.leaky_relu_(x, m.negative_slope)),
    nn.Tanh: lambda m: (torch.tanh, torch.tanh_),
    nn.Sigmoid: lambda m: (torch.sigmoid, torch.sigmoid_),
    nn.GELU: lambda m: (lambda x: F.gelu(x, approximate=m.approximate), None),
    nn.SiLU: lambda m: (F.silu, lambda x: F.silu(x, inplace=True)),
}
_EVAL_IDENTITY = (nn.Identity, nn.Dropout, nn.Dropout2d)


def _pad_of(m: nn.Module) -> _Pad:
    mode = next((v for k, v in _PADS.items() if isinstance(m, k)), None)
    if mode is None and isinstance(m, nn.ConstantPad2d) and m.value == 0:
        mode = "zeros"
    if mode is None and hasattr(nn, "CircularPad2d") and isinstance(m, nn.CircularPad2d):
        mode = "circular"
    if mode is None:
        raise TilingUnsupported(f"cannot tile padding layer {m}")
    left, right, top, bottom = m.padding
    if min(left, right, top, bottom) < 0:
        raise TilingUnsupported(f"cannot tile negative padding {m}")
    return _Pad(mode, top, bottom, left, right)


def _pointwise(m: nn.Module, name: str) -> _Op | None:
    if isinstance(m, _EVAL_IDENTITY):
        return None  # dropout is off in eval mode
    for kind, make in _ELEMENTWISE.items():
        if type(m) is kind:
            return _Elementwise(*make(m))
    if type(m) in (nn.InstanceNorm2d, nn.BatchNorm2d):
        running = getattr(m, "running_mean", None) is not None and m.track_running_stats
        if running:
            return _Affine(m)
        if isinstance(m, nn.InstanceNorm2d):
            return _StatNorm(m, name)
        raise TilingUnsupported(f"{name}: batch norm without running statistics cannot be tiled per image")
    raise TilingUnsupported(f"cannot tile layer {name} ({type(m).__name__})")


def _plain(generator: nn.Module) -> nn.Module:
    """The network the executor runs: a conditional generator with one fixed code (Augmented CycleGAN)
    becomes the plain generator for that code, so every tile sees the same code."""
    if isinstance(generator, CodedGenerator):
        if generator.code.shape[0] != 1:
            raise TilingUnsupported("a batch translated with one latent code per image cannot be tiled; tile one "
                                    "code at a time")  # fmt: skip
        return generator.bound()
    return generator


def _compile(generator: nn.Module) -> tuple[list[_Act], list[_Stage]]:
    generator = _plain(generator)
    names = {id(m): n for n, m in generator.named_modules()}
    items = _flatten(generator)
    if len(items) == 1 and items[0] is generator:
        raise TilingUnsupported(
            f"{type(generator).__name__} cannot be tiled exactly (only resnet generators and plain conv stacks can; "
            "U-Nets join skip connections across resolutions); use --tile 0"
        )
    acts = [_Act(0)]
    stages: list[_Stage] = []
    cur = acts[0]
    pad: _Pad | None = None
    stack: list[_Act] = []
    for item in items:
        if isinstance(item, (_ResBegin, _ResEnd, _LuminanceEnd)):
            if pad is not None:
                raise TilingUnsupported("a padding layer directly before a residual boundary cannot be tiled")
            if isinstance(item, _ResBegin):
                cur.materialize = True
                stack.append(cur)
            elif isinstance(item, _LuminanceEnd):
                cur.chain.append(_LuminanceTie(stack.pop(), item.mode))
            else:
                cur.chain.append(_Residual(stack.pop()))
            continue
        name = names.get(id(item), type(item).__name__)
        if isinstance(item, (nn.Conv2d, nn.ConvTranspose2d)):
            if isinstance(item, nn.ConvTranspose2d) and (item.dilation != (1, 1) or item.padding_mode != "zeros"):
                raise TilingUnsupported(f"{name}: dilated or non-zero-padded transposed convs cannot be tiled")
            if isinstance(item, nn.Conv2d) and item.padding_mode not in ("zeros", "reflect", "replicate", "circular"):
                raise TilingUnsupported(f"{name}: padding mode {item.padding_mode!r} cannot be tiled")
            nxt = _Act(len(acts))
            acts.append(nxt)
            stages.append(_Stage(item, pad, cur, nxt))
            cur, pad = nxt, None
            continue
        if pad is not None:
            raise TilingUnsupported(f"{name}: only a conv may follow a padding layer when tiling")
        if any(isinstance(item, k) for k in _PADS) or isinstance(item, nn.ConstantPad2d):
            pad = _pad_of(item)
            continue
        op = _pointwise(item, name)
        if op is None:
            continue
        if isinstance(op, _StatNorm):
            if cur.stat is not None:
                raise TilingUnsupported(f"{name}: two instance norms without a conv between them cannot be tiled")
            if not stages:
                raise TilingUnsupported(f"{name}: an instance norm of the input image cannot be tiled")
            cur.stat = op
        cur.chain.append(op)
    if stack or pad is not None or not stages:
        raise TilingUnsupported(f"{type(generator).__name__} has an unbalanced structure and cannot be tiled")
    return acts, stages


def check_tileable(generator: nn.Module) -> None:
    """Raise :class:`TilingUnsupported` unless :func:`translate_tiled` can run ``generator`` exactly."""
    _compile(generator)


def is_tileable(generator: nn.Module) -> bool:
    try:
        _compile(generator)
    except TilingUnsupported:
        return False
    return True


# --- geometry ------------------------------------------------------------------------------------


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv_padding(m: nn.Conv2d) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) of a conv's own padding."""
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return (0, 0), (0, 0)
        out = []
        for k, d in zip(m.kernel_size, m.dilation):
            total = d * (k - 1)
            out.append((total // 2, total - total // 2))
        return out[0], out[1]
    ph, pw = _pair(m.padding)
    return (ph, ph), (pw, pw)


def _map_index(j: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Positions ``j`` of a padded axis of length-``n`` data → source index, -1 for a zero."""
    out = (j < 0) | (j >= n)
    if not out.any():
        return j
    if mode == "zeros":
        return np.where(out, -1, j)
    if mode == "replicate":
        return np.clip(j, 0, n - 1)
    if mode == "circular":
        return np.mod(j, n)
    r = np.where(j < 0, -j, j)
    r = np.where(r >= n, 2 * (n - 1) - r, r)
    if (r < 0).any() or (r >= n).any():
        raise TilingUnsupported(f"reflection padding larger than the activation ({n} px) cannot be tiled")
    return r


class _AxisPlan:
    """For output positions [o0, o1) along one axis: source indices of the stage input (-1 = zero)
    and where the wanted outputs start in what the op computes on them."""

    def __init__(self, idx: np.ndarray, crop: int):
        self.idx, self.crop = idx, crop


def _conv_axis(stage: _Stage, axis: int, n: int, o0: int, o1: int) -> _AxisPlan:
    m = stage.module
    k, d, s = m.kernel_size[axis], m.dilation[axis], m.stride[axis]
    pad = stage.pad
    pb1, pa1 = ((pad.top, pad.bottom) if axis == 0 else (pad.left, pad.right)) if pad else (0, 0)
    if isinstance(m, nn.ConvTranspose2d):  # over the padded input, whose positions map back to the source
        p = m.padding[axis]
        a = max(0, -(-(o0 + p - (k - 1)) // s))
        b = min(n + pb1 + pa1 - 1, (o1 - 1 + p) // s)
        if a > b:
            raise TilingUnsupported(f"{type(m).__name__} with kernel smaller than stride cannot be tiled")
        local_len = s * (b - a) + k
        end = o1 - 1 + p - s * a
        extra = max(0, -(-(end - local_len + 1) // s))  # zero rows contribute nothing but extend the output
        padded = np.arange(a, b + 1)
        source = _map_index(padded - pb1, n, pad.mode) if pad else padded
        idx = np.concatenate([source, np.full(extra, -1)])
        return _AxisPlan(idx, o0 + p - s * a)
    pb2 = _conv_padding(m)[axis][0]
    mode2 = m.padding_mode
    j = np.arange(s * o0, s * (o1 - 1) + d * (k - 1) + 1)
    i1 = _map_index(j - pb2, n + pb1 + pa1, mode2)
    i = _map_index(np.where(i1 >= 0, i1, 0) - pb1, n, pad.mode if pad else "zeros")
    return _AxisPlan(np.where(i1 >= 0, i, -1), 0)


def _out_len(stage: _Stage, axis: int, n: int) -> int:
    m = stage.module
    k, d, s = m.kernel_size[axis], m.dilation[axis], m.stride[axis]
    pad = stage.pad
    extra = ((pad.top + pad.bottom) if axis == 0 else (pad.left + pad.right)) if pad else 0
    if isinstance(m, nn.ConvTranspose2d):
        return (n + extra - 1) * s - 2 * m.padding[axis] + d * (k - 1) + m.output_padding[axis] + 1
    pb2, pa2 = _conv_padding(m)[axis]
    return (n + extra + pb2 + pa2 - d * (k - 1) - 1) // s + 1


def _infer_shapes(acts: list[_Act], stages: list[_Stage], c: int, h: int, w: int) -> None:
    acts[0].shape = (c, h, w)
    for st in stages:
        _, sh, sw = st.src.shape
        if isinstance(st.module, _AveragePool2x2) and (sh % 2 or sw % 2):
            raise TilingUnsupported(f"2x2 average pooling of an odd-sized activation ({sw}x{sh}) cannot be tiled "
                                    "exactly (its last window is partial); use --tile 0")  # fmt: skip
        oh, ow = _out_len(st, 0, sh), _out_len(st, 1, sw)
        if oh < 1 or ow < 1:
            raise TilingUnsupported(f"the image ({w}x{h}) is too small for {type(st.module).__name__} layers")
        st.dst.shape = (st.module.out_channels, oh, ow)


# --- storage -------------------------------------------------------------------------------------


class _Store:
    def read(self, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        raise NotImplementedError

    def write(self, r0: int, c0: int, x: torch.Tensor) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _RamStore(_Store):
    def __init__(
        self,
        shape: tuple[int, int, int],
        tensor: torch.Tensor | None = None,
        on_close: Callable[[int], None] | None = None,
    ):
        self.t = tensor if tensor is not None else torch.empty(shape, dtype=torch.float32)
        self.on_close = on_close

    def read(self, r0, r1, c0, c1):
        return self.t[:, r0:r1, c0:c1]

    def write(self, r0, c0, x):
        self.t[:, r0 : r0 + x.shape[1], c0 : c0 + x.shape[2]] = x

    def close(self):
        if self.t is not None and self.on_close is not None:
            self.on_close(4 * self.t.numel())
        self.t = None


class _DiskStore(_Store):
    """float32 (C, H, W) kept as HWC in an unlinked temporary file, accessed with pread/pwrite (not
    mmap), so it occupies page cache rather than this process's resident memory."""

    def __init__(self, shape: tuple[int, int, int], tmp_dir: str | None):
        self.c, self.h, self.w = shape
        self.row = self.w * self.c * 4
        size = self.h * self.row
        self.file = tempfile.TemporaryFile(prefix="gankit-tile-", dir=tmp_dir)  # noqa: SIM115 (closed by close())
        self.fd = self.file.fileno()
        try:
            os.posix_fallocate(self.fd, 0, size)
        except OSError as e:
            self.file.close()
            where = tmp_dir or tempfile.gettempdir()
            free = shutil.disk_usage(where).free
            raise GankitError(
                f"tiled translation needs {size / 2**30:.1f} GiB of temporary space in {where} "
                f"({free / 2**30:.1f} GiB free; {e.strerror}); set TMPDIR to a larger disk"
            ) from None
        except AttributeError:  # no posix_fallocate on this platform
            os.ftruncate(self.fd, size)

    def _offset(self, r: int, c: int) -> int:
        return r * self.row + c * self.c * 4

    def read(self, r0, r1, c0, c1):
        buf = np.empty((r1 - r0, c1 - c0, self.c), dtype=np.float32)
        if c0 == 0 and c1 == self.w:
            self._pread(memoryview(buf).cast("B"), self._offset(r0, 0))
        else:
            for i in range(r1 - r0):
                self._pread(memoryview(buf[i]).cast("B"), self._offset(r0 + i, c0))
        return torch.from_numpy(buf).permute(2, 0, 1)

    def write(self, r0, c0, x):
        a = x.detach().to("cpu", torch.float32).permute(1, 2, 0).contiguous().numpy()
        if c0 == 0 and a.shape[1] == self.w:
            self._pwrite(memoryview(a).cast("B"), self._offset(r0, 0))
        else:
            for i in range(a.shape[0]):
                self._pwrite(memoryview(a[i]).cast("B"), self._offset(r0 + i, c0))

    def _pread(self, mv: memoryview, offset: int) -> None:
        while len(mv):
            n = os.preadv(self.fd, [mv], offset)
            if n <= 0:
                raise OSError("short read from the tiling scratch file")
            mv, offset = mv[n:], offset + n

    def _pwrite(self, mv: memoryview, offset: int) -> None:
        while len(mv):
            n = os.pwrite(self.fd, mv, offset)
            mv, offset = mv[n:], offset + n

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


class _Stats:
    """Per-channel mean and biased variance over disjoint tiles: float64 sums of values shifted by
    the first tile's mean, so large means do not cancel the variance."""

    def __init__(self):
        self.shift: torch.Tensor | None = None
        self.s1 = self.s2 = None
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().to("cpu", torch.float32)
        if self.shift is None:
            self.shift = x.mean(dim=(1, 2))
            self.s1 = torch.zeros(x.shape[0], dtype=torch.float64)
            self.s2 = torch.zeros(x.shape[0], dtype=torch.float64)
        d = x - self.shift[:, None, None]
        self.s1 += d.sum(dim=(1, 2), dtype=torch.float64)
        self.s2 += (d * d).sum(dim=(1, 2), dtype=torch.float64)
        self.n += x.shape[1] * x.shape[2]

    def finish(self) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.s1 / self.n
        var = (self.s2 / self.n - m * m).clamp_min(0)
        return self.shift.double() + m, var


# --- execution -----------------------------------------------------------------------------------


class _Context:
    def __init__(self, device: torch.device, dtype: torch.dtype, ram_bytes: int, tmp_dir: str | None):
        self.device, self.dtype = device, dtype
        self.ram_bytes, self.tmp_dir = ram_bytes, tmp_dir
        self.ram_used = 0
        self.open: list[_Store] = []

    def new_store(self, shape: tuple[int, int, int]) -> _Store:
        """Memory while the activations held in memory total at most ``ram_bytes``, else a file."""
        nbytes = 4 * math.prod(shape)
        if self.ram_used + nbytes <= self.ram_bytes:
            self.ram_used += nbytes
            store: _Store = _RamStore(shape, on_close=self._freed)
        else:
            store = _DiskStore(shape, self.tmp_dir)
        self.open.append(store)
        return store

    def _freed(self, nbytes: int) -> None:
        self.ram_used -= nbytes

    def value(self, act: _Act, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """Values of ``act`` (chain applied) in rows [r0, r1), columns [c0, c1), on the device."""
        if act.value_store is not None:
            return act.value_store.read(r0, r1, c0, c1).to(self.device, self.dtype)
        raw = act.store.read(r0, r1, c0, c1)
        x = raw.to(self.device, self.dtype)
        owned = x is not raw or not isinstance(act.store, _RamStore)  # a view of a stored tensor is not ours
        for op in act.chain:
            x = op.apply(x, (r0, r1, c0, c1), self, owned)
            owned = True
        return x

    def prefix(self, act: _Act, raw: torch.Tensor, region: tuple[int, int, int, int]) -> torch.Tensor:
        """Raw output turned into what the act's statistics norm sees (the chain up to that norm)."""
        x = raw
        for op in act.chain:
            if op is act.stat:
                return x
            x = op.apply(x, region, self, True)  # the raw tile is already stored: it may be overwritten
        raise AssertionError("no statistics norm in chain")


def _take(x: torch.Tensor, local: np.ndarray, dim: int) -> torch.Tensor:
    """Select positions ``local`` (-1 = zero) of ``x`` along ``dim``; a plain slice when possible."""
    if (local >= 0).all() and (np.diff(local) == 1).all():
        return x.narrow(dim, int(local[0]), len(local))
    if (local < 0).any():
        shape = list(x.shape)
        shape[dim] = 1
        x = torch.cat([x, x.new_zeros(shape)], dim=dim)
        local = np.where(local < 0, x.shape[dim] - 1, local)
    return x.index_select(dim, torch.from_numpy(local.astype(np.int64)).to(x.device))


def _tile_ranges(n: int, t: int) -> list[tuple[int, int]]:
    return [(a, min(n, a + t)) for a in range(0, n, t)]


def _stage_tile(tile: int, out_len: int, image_len: int) -> int:
    return max(_MIN_STAGE_TILE, round(tile * out_len / image_len))


def _run_stage(stage: _Stage, ctx: _Context, tile: int, image_hw: tuple[int, int]) -> None:
    src, dst, m = stage.src, stage.dst, stage.module
    _, sh, sw = src.shape
    _, oh, ow = dst.shape
    same_grid = isinstance(m, nn.Conv2d) and m.stride == (1, 1) and (oh, ow) == (sh, sw)
    inline = src.materialize and src.value_store is None and same_grid
    if src.materialize and src.value_store is None and not same_grid:
        _materialize(src, ctx, tile, image_hw)
    values = ctx.new_store(src.shape) if inline else None
    dst.store = ctx.new_store(dst.shape)
    stats = _Stats() if dst.stat is not None else None
    weight = m.weight.detach()
    bias = m.bias.detach() if m.bias is not None else None
    th, tw = _stage_tile(tile, oh, image_hw[0]), _stage_tile(tile, ow, image_hw[1])
    for o0, o1 in _tile_ranges(oh, th):
        rows = _conv_axis(stage, 0, sh, o0, o1)
        rv = rows.idx[rows.idx >= 0]
        for q0, q1 in _tile_ranges(ow, tw):
            cols = _conv_axis(stage, 1, sw, q0, q1)
            cv = cols.idx[cols.idx >= 0]
            r_lo, r_hi, c_lo, c_hi = int(rv.min()), int(rv.max()) + 1, int(cv.min()), int(cv.max()) + 1
            val = ctx.value(src, r_lo, r_hi, c_lo, c_hi)
            if values is not None:
                values.write(o0, q0, val[:, o0 - r_lo : o1 - r_lo, q0 - c_lo : q1 - c_lo])
            x = _take(
                _take(val, rows.idx - np.where(rows.idx >= 0, r_lo, 0), 1),
                cols.idx - np.where(cols.idx >= 0, c_lo, 0),
                2,
            )
            del val
            if isinstance(m, nn.ConvTranspose2d):
                y = F.conv_transpose2d(x[None], weight, bias, m.stride, 0, 0, m.groups)[0]
                y = y[:, rows.crop : rows.crop + o1 - o0, cols.crop : cols.crop + q1 - q0]
            else:
                y = F.conv2d(x[None], weight, bias, m.stride, 0, m.dilation, m.groups)[0]
            del x
            if y.shape[1:] != (o1 - o0, q1 - q0):
                raise AssertionError(f"tile shape {tuple(y.shape)} for rows {o0}:{o1} cols {q0}:{q1}")
            dst.store.write(o0, q0, y)
            if stats is not None:
                stats.add(ctx.prefix(dst, y, (o0, o1, q0, q1)))
            del y
    if values is not None:
        src.value_store = values
    if stats is not None:
        dst.stat.set_stats(*stats.finish())


def _materialize(act: _Act, ctx: _Context, tile: int, image_hw: tuple[int, int]) -> None:
    _, h, w = act.shape
    values = ctx.new_store(act.shape)
    th, tw = _stage_tile(tile, h, image_hw[0]), _stage_tile(tile, w, image_hw[1])
    for r0, r1 in _tile_ranges(h, th):
        for c0, c1 in _tile_ranges(w, tw):
            values.write(r0, c0, ctx.value(act, r0, r1, c0, c1))
    act.value_store = values


def _release(acts: list[_Act], after_stage: int) -> None:
    """Close stores no stage after ``after_stage`` reads."""
    for act in acts:
        # raw of act i is read by stage i (and by its materialization, which happens no later)
        if act.store is not None and act.index <= after_stage and (not act.materialize or act.value_store):
            act.store.close()
            act.store = None
        if act.value_store is not None:
            users = [a.index for a in acts if any(isinstance(op, _Residual) and op.src is act for op in a.chain)]
            if all(u <= after_stage for u in users) and act.index <= after_stage:
                act.value_store.close()
                act.value_store = None


def _device_dtype(generator: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in generator.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.float32


@torch.no_grad()
def _translate_one(
    generator: nn.Module,
    x: torch.Tensor,
    tile: int,
    ram_bytes: int,
    tmp_dir: str | None,
    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] | None,
) -> torch.Tensor:
    """(C, H, W) already padded to the generator's multiple → (C_out, H, W) on the CPU."""
    acts, stages = _compile(generator)
    c, h, w = x.shape
    _infer_shapes(acts, stages, c, h, w)
    device, dtype = _device_dtype(generator)
    ctx = _Context(device, dtype, ram_bytes, tmp_dir)
    acts[0].store = _RamStore(acts[0].shape, x.detach().to("cpu", torch.float32))
    try:
        for i, stage in enumerate(stages):
            _run_stage(stage, ctx, tile, (h, w))
            _release(acts, i)
        last = acts[-1]
        _, oh, ow = last.shape
        out = ctx.value(last, 0, oh, 0, ow).to("cpu", torch.float32)
        if stats is not None:
            for act in acts:
                if act.stat is not None:
                    stats[act.stat.name] = (act.stat.mean, act.stat.var)
        return out
    finally:
        for store in ctx.open:
            store.close()


def translate_tiled(
    generator: nn.Module,
    x: torch.Tensor,
    tile: int = 512,
    *,
    ram_bytes: int = DEFAULT_RAM_BYTES,
    tmp_dir: str | None = None,
    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> torch.Tensor:
    """Translate (N, C, H, W) in [-1, 1] of any size in ``tile`` × ``tile`` pixel tiles with the result
    of the one-piece pass (:func:`~gankit.inference.translate.translate_tensor`) up to float rounding.

    Eval-mode semantics (dropout off, batch norm with running statistics), the same reflection padding
    to the generator's ``size_multiple`` and the same crop back. Activations beyond ``ram_bytes`` go to
    temporary files in ``tmp_dir`` (default: the system's). ``stats``, when given, receives for every
    instance norm (by module name) the whole-image per-channel ``(mean, biased variance)`` in float64
    (of the last image of the batch). Returns a float tensor on the generator's device. Raises
    :class:`TilingUnsupported` for generators that cannot be tiled exactly.
    """
    if x.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    if tile < 1:
        raise ValueError(f"tile must be a positive number of pixels, got {tile}")
    check_tileable(generator)
    h, w = x.shape[-2:]
    multiple = int(getattr(generator, "size_multiple", 1) or 1)
    padded, (top, _, left, _) = pad_to_multiple(x.detach().float().cpu(), multiple)
    outs = [_translate_one(generator, padded[i], tile, ram_bytes, tmp_dir, stats) for i in range(x.shape[0])]
    del padded
    y = outs[0][None] if len(outs) == 1 else torch.stack(outs)
    y = y[..., top : top + h, left : left + w]
    device, _ = _device_dtype(generator)
    return y.to(device).contiguous()


# --- planning ------------------------------------------------------------------------------------


def estimate_one_piece_bytes(generator: nn.Module, channels: int, height: int, width: int) -> int | None:
    """Rough peak bytes of a one-piece eval pass (already padded size): the largest stage's input
    values, padded copy, conv output and norm output, plus the residual input kept alive, and half as
    much again for convolution workspace and the images around the pass (measured: 1.3 GB peak RSS for
    the default resnet-9 at 1024 px, of which ~0.35 GB is the interpreter and torch). ``None`` when the
    generator is not one the executor understands."""
    try:
        acts, stages = _compile(generator)
        _infer_shapes(acts, stages, channels, height, width)
    except TilingUnsupported:
        return None
    _, elem = _device_dtype(generator)
    size = torch.tensor([], dtype=elem).element_size()
    peak = 0
    for st in stages:
        src, dst = st.src, st.dst
        n_in, n_out = math.prod(src.shape), math.prod(dst.shape)
        padded = n_in if st.pad else 0
        peak = max(peak, n_in + padded + 2 * n_out + (n_in if src.materialize else 0))
    return peak * size * 3 // 2


def choose_tile(
    generator: nn.Module,
    shape: tuple[int, int, int],
    tile: int | None = None,
    max_memory: int | None = None,
) -> int:
    """The tile size to use for one (C, H, W) image: ``tile`` if given (0 = one piece); otherwise 0
    when the one-piece pass fits in ``max_memory`` (default :func:`default_memory_budget`) or the
    generator cannot be tiled, else the largest of :data:`TILE_CHOICES` whose working set fits."""
    if tile is not None:
        return max(0, int(tile))
    budget = default_memory_budget() if max_memory is None else max_memory
    c, h, w = shape
    multiple = int(getattr(generator, "size_multiple", 1) or 1)
    ph, pw = h + (-h) % multiple, w + (-w) % multiple
    need = estimate_one_piece_bytes(generator, c, ph, pw)
    if need is None or need <= budget:
        return 0
    for t in TILE_CHOICES:
        working = estimate_one_piece_bytes(generator, c, t + 16, t + 16) or 0
        if working + 2 * min(DEFAULT_RAM_BYTES, budget // 8) <= budget:
            return t
    return TILE_CHOICES[-1]
