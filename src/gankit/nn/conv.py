"""Stride-1 convolutions computed on the CPU by whichever exact algorithm is fastest for the layer.

PyTorch runs every CPU convolution through oneDNN's direct kernels. For two kinds of layer in
CycleGAN's generator that leaves much of the machine unused (``benchmarks/conv_layers.py``):

* **3×3 convs on large maps** (the residual blocks at 256 px: 256 channels on 64×64): the
  Winograd transform F(6×6, 3×3) does the same convolution with ~5× fewer multiplications
  (Lavin & Gray 2016). NNPACK, which ships inside PyTorch's CPU build, implements it (and FFT
  convolution for 7×7 kernels). On one small map its 8×8 tiles waste work and oneDNN wins; a batch
  stacked into one tall image fills them again.
* **convs to a few channels** (the 64 → 3, 7×7 image head): oneDNN vectorizes over output channels,
  so 3 outputs fill 3 of 16 AVX-512 lanes. Computed as a 7×1 conv to 21 channels plus a sum of 7
  shifted slices (*column taps*), the same arithmetic runs 2–3× faster.
* **the 3×3 weight gradient**, which NNPACK does not expose: :func:`weight_grad_winograd` computes it
  with Winograd's F(3×3, 4×4) (the dual of F(4×4, 3×3)), 4× fewer multiplications done as 36
  batched matrix products (1.2–1.4× faster than oneDNN for the 256 px residual blocks in the
  tuner's timings, ``benchmarks/results-side-by-side.json``).

Which one wins depends on the layer's shape, the thread count and the CPU, so
:class:`ConvAlgorithmTuner` times the candidates once per shape on the first call (as
``cudnn.benchmark`` does on GPUs) and keeps the fastest — the forward, the input gradient and the
weight gradient each on their own. A candidate is kept only when it agrees with oneDNN on that input
(relative error ≤ :attr:`ConvAlgorithmTuner.tolerance`: Winograd's rounding is ~1e-5 of the
output's scale in float32, against ~1e-6 for the direct kernels) and beats it by
:attr:`ConvAlgorithmTuner.margin`. NNPACK runs on its own thread pool, which competes with OpenMP's
spinning workers unless ``GOMP_SPINCOUNT`` is low (see :mod:`gankit.launch`).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

PLAIN = "onednn"
_ONE = [1, 1]
_ZERO = [0, 0]


@functools.cache
def nnpack_available() -> bool:
    """Whether this PyTorch build can run NNPACK (the call also initializes it)."""
    try:
        return bool(torch._nnpack_available())
    except (AttributeError, RuntimeError):
        return False


def _nnpack_valid(x: torch.Tensor, weight: torch.Tensor, *, stacked: bool = False) -> torch.Tensor:
    """Valid (unpadded) stride-1 conv by NNPACK. Its fast path (``nnp_convolution_inference``) takes
    one image and transforms the filters on every call. A batch runs image by image or, ``stacked``,
    as one tall image: the images stacked along the height, the rows straddling two of them computed
    and dropped. Stacking fills NNPACK's 8×8 tiles better on 32×32 maps (resnet blocks at 128 px) and
    transforms the filters once, at the price of two copies; the tuner times both."""
    if not nnpack_available():
        raise RuntimeError("this PyTorch build has no NNPACK")
    n, c, h, w = x.shape
    if not stacked:
        return torch.cat([torch._nnpack_spatial_convolution(x[i : i + 1], weight, None, _ZERO, _ONE) for i in range(n)])
    tall = x.transpose(0, 1).reshape(1, c, n * h, w)
    y = torch._nnpack_spatial_convolution(tall, weight, None, _ZERO, _ONE)[0]
    rows = h - weight.shape[2] + 1
    return torch.stack([y[:, i * h : i * h + rows] for i in range(n)])


def _convolution_backward(grad, x, weight, mask):
    return torch.ops.aten.convolution_backward(grad, x, weight, None, _ONE, _ZERO, _ONE, False, _ZERO, 1, mask)


def column_weight(weight: torch.Tensor) -> torch.Tensor:
    """(O, C, kh, kw) → (O·kw, C, kh, 1): output channel o·kw + t is column t of filter o."""
    out_ch, in_ch, kh, kw = weight.shape
    return weight.permute(0, 3, 1, 2).reshape(out_ch * kw, in_ch, kh, 1)


def shifted_sum(z: torch.Tensor, taps: int, width: int) -> torch.Tensor:
    """out[:, o, :, x] = Σ_t z[:, o·taps + t, :, x + t] for t < taps."""
    zz = z.unflatten(1, (-1, taps))
    out = zz[:, :, 0, :, :width].clone()
    for t in range(1, taps):
        out += zz[:, :, t, :, t : t + width]
    return out


def shifted_sum_grad(grad: torch.Tensor, taps: int, in_width: int) -> torch.Tensor:
    """The gradient of :func:`shifted_sum` for z: each shifted window of ``grad`` written once."""
    n, c, h, width = grad.shape
    gz = grad.new_zeros(n, c, taps, h, in_width)
    for t in range(taps):
        gz[:, :, t, :, t : t + width] = grad
    return gz.view(n, c * taps, h, in_width)


# --- forward: (x, weight) -> y, bias excluded -------------------------------------------------------


def forward_onednn(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, weight)


def forward_nnpack(x: torch.Tensor, weight: torch.Tensor, *, stacked: bool = False) -> torch.Tensor:
    return _nnpack_valid(x, weight, stacked=stacked)


def forward_column_taps(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    kw = weight.shape[3]
    return shifted_sum(F.conv2d(x, column_weight(weight)), kw, x.shape[3] - kw + 1)


# --- input gradient: (grad, x, weight) -> grad_x ----------------------------------------------------


def input_grad_onednn(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return _convolution_backward(grad, x, weight, [True, False, False])[0]


def input_grad_nnpack(
    grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, *, stacked: bool = False
) -> torch.Tensor:
    """dL/dx of a valid conv is the 'full' conv of the output gradient with the flipped, transposed
    filters: a forward convolution, so NNPACK's fast forward applies."""
    kh, kw = weight.shape[2:]
    flipped = weight.flip(2, 3).transpose(0, 1).contiguous()
    return _nnpack_valid(F.pad(grad, (kw - 1, kw - 1, kh - 1, kh - 1)), flipped, stacked=stacked)


def input_grad_column_taps(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    gz = shifted_sum_grad(grad, weight.shape[3], x.shape[3])
    return _convolution_backward(gz, x, column_weight(weight), [True, False, False])[0]


# --- weight gradient: (grad, x, weight) -> grad_weight ----------------------------------------------


def weight_grad_onednn(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return _convolution_backward(grad, x, weight, [False, True, False])[1]


def weight_grad_column_taps(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    out_ch, in_ch, kh, kw = weight.shape
    gz = shifted_sum_grad(grad, kw, x.shape[3])
    g_columns = _convolution_backward(gz, x, column_weight(weight), [False, True, False])[1]
    return g_columns.view(out_ch, kw, in_ch, kh).permute(0, 2, 3, 1).contiguous()


@functools.cache
def winograd_weight_grad_matrices(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The 2-D transforms of Winograd's F(3, 4) as Kronecker products: A (9×36, output), G (36×16,
    gradient tile) and B (36×36, input tile), for points 0, ±1, ±2, ∞ (Lavin & Gray 2016 §4).

    F(3, 4) — 3 outputs y_j = Σ_i x_{i+j} d_i of a 4-tap correlation — is the transpose of the
    linear convolution of a 3-term by a 4-term polynomial, which Toom–Cook computes by evaluating both
    at 6 points (E, G), multiplying, and interpolating (V⁻¹): y = Eᵀ [(G d) ⊙ (V⁻ᵀ x)]."""

    def evaluation(terms: int) -> torch.Tensor:
        rows = [[float(p) ** i for i in range(terms)] for p in (0, 1, -1, 2, -2)]
        return torch.tensor([*rows, [0.0] * (terms - 1) + [1.0]], dtype=torch.float64)

    a_t, g, b_t = evaluation(3).T, evaluation(4), torch.linalg.inv(evaluation(6)).T
    return tuple(torch.kron(m, m).to(dtype=dtype, device=device) for m in (a_t, g, b_t))


def weight_grad_winograd(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The 3×3 weight gradient Σ_n x_n ⋆ grad_n with F(3×3, 4×4): ``grad`` cut into 4×4 tiles, ``x``
    into the matching overlapping 6×6 tiles, both transformed to 36 points, one (K × tiles)·(tiles × C)
    product per point summed over every tile of every image, and the 36 sums taken back to 3×3."""
    a, g, b = winograd_weight_grad_matrices(x.dtype, x.device)
    n, k, h, w = grad.shape
    c = x.shape[1]
    th, tw = -(-h // 4), -(-w // 4)
    if (4 * th, 4 * tw) != (h, w):  # zero rows/columns add nothing to the sums
        grad = F.pad(grad, (0, 4 * tw - w, 0, 4 * th - h))
        x = F.pad(x, (0, 4 * tw - w, 0, 4 * th - h))
    x_tiles = x.transpose(0, 1).unfold(2, 6, 4).unfold(3, 6, 4).permute(4, 5, 0, 1, 2, 3).reshape(36, -1)
    x_points = (b @ x_tiles).view(36, c, -1).transpose(1, 2)  # 36 × (N·tiles) × C
    g_tiles = grad.transpose(0, 1).reshape(k, n, th, 4, tw, 4).permute(3, 5, 0, 1, 2, 4).reshape(16, -1)
    g_points = (g @ g_tiles).view(36, k, -1)  # 36 × K × (N·tiles)
    sums = torch.bmm(g_points, x_points)  # 36 × K × C
    return (sums.view(36, -1).T @ a.T).view(k, c, 3, 3)


FORWARD = {
    "onednn": forward_onednn,
    "nnpack": forward_nnpack,
    "nnpack-stacked": functools.partial(forward_nnpack, stacked=True),
    "column-taps": forward_column_taps,
}
INPUT_GRAD = {"onednn": input_grad_onednn, "nnpack": input_grad_nnpack,
              "nnpack-stacked": functools.partial(input_grad_nnpack, stacked=True),
              "column-taps": input_grad_column_taps}  # fmt: skip
WEIGHT_GRAD = {"onednn": weight_grad_onednn, "winograd": weight_grad_winograd, "column-taps": weight_grad_column_taps}
ALGORITHMS = {"forward": FORWARD, "input_grad": INPUT_GRAD, "weight_grad": WEIGHT_GRAD}


def candidates(kind: str, x: torch.Tensor, weight: torch.Tensor) -> list[str]:
    """The algorithms worth timing for this computation: NNPACK only in float32 (its only dtype) and
    for spatial kernels (stacked only for a batch); Winograd weight gradients for 3×3 kernels; column
    taps only for kernels wider than one column."""
    names = [PLAIN]
    if "nnpack" in ALGORITHMS[kind] and x.dtype == torch.float32 and weight.shape[2] > 1 and nnpack_available():
        names += ["nnpack", "nnpack-stacked"] if x.shape[0] > 1 else ["nnpack"]
    if "winograd" in ALGORITHMS[kind] and tuple(weight.shape[2:]) == (3, 3):
        names.append("winograd")
    if weight.shape[3] > 1:
        names.append("column-taps")
    return names


@dataclass
class ConvAlgorithmTuner:
    """Times each candidate algorithm once per (computation, input shape, filter shape, dtype,
    thread count) and remembers the fastest; shared by every conv of a model, so the eighteen
    residual convs of a resnet-9 are timed once. Each candidate is timed up to ``repeats`` times
    (the minimum counts), fewer when one round of all of them takes more than ``budget_s`` / ``repeats``
    (a 1024 px image translated once should not spend seconds on tuning)."""

    margin: float = 1.05
    repeats: int = 5
    budget_s: float = 1.0
    force: tuple[str, ...] = ()  # the first of these that applies, untimed (to check their numerics)
    tolerance: float = 1e-3
    choices: dict[tuple, str] = field(default_factory=dict)
    timings: dict[tuple, dict[str, float]] = field(default_factory=dict)

    def choose(self, kind: str, args: tuple[torch.Tensor, ...]) -> str:
        """The algorithm for ``ALGORITHMS[kind](*args)``; ``args`` end with (input, weight)."""
        x, weight = args[-2:]
        key = (kind, tuple(x.shape), tuple(weight.shape), x.dtype, torch.get_num_threads())
        choice = self.choices.get(key)
        if choice is None:
            with torch.no_grad():
                choice = self._tune(key, kind, args)
            self.choices[key] = choice
        return choice

    def compute(self, kind: str, *args: torch.Tensor) -> torch.Tensor:
        return ALGORITHMS[kind][self.choose(kind, args)](*args)

    def _tune(self, key: tuple, kind: str, args: tuple[torch.Tensor, ...]) -> str:
        table = ALGORITHMS[kind]
        reference = table[PLAIN](*args)
        scale = reference.abs().max().item() or 1.0
        usable = [PLAIN]
        t_round = time.perf_counter()
        for name in candidates(kind, *args[-2:]):
            if name == PLAIN:
                continue
            try:
                out = table[name](*args)
            except RuntimeError:  # e.g. a shape NNPACK does not support
                continue
            if out.shape == reference.shape and (out - reference).abs().max().item() <= self.tolerance * scale:
                usable.append(name)
        if self.force or len(usable) == 1:
            return next((name for name in self.force if name in usable), PLAIN)
        t_round = time.perf_counter() - t_round  # ~ one round of every candidate but the plain one
        rounds = max(1, min(self.repeats, int(self.budget_s / max(2 * t_round, 1e-9))))
        best = {name: float("inf") for name in usable}
        for _ in range(rounds):
            for name in usable:
                t0 = time.perf_counter()
                table[name](*args)
                best[name] = min(best[name], time.perf_counter() - t0)
        self.timings[key] = best
        fastest = min(best, key=best.__getitem__)
        return fastest if best[fastest] * self.margin < best[PLAIN] else PLAIN

    def summary(self) -> list[dict]:
        """One row per tuned computation: what was chosen and the times measured (ms)."""
        rows = []
        for key, choice in self.choices.items():
            kind, x_shape, w_shape, dtype, threads = key
            rows.append({"computation": kind, "input": list(x_shape), "weight": list(w_shape),
                         "dtype": str(dtype).removeprefix("torch."), "threads": threads, "chosen": choice,
                         "ms": {k: round(v * 1e3, 3) for k, v in self.timings.get(key, {}).items()}})  # fmt: skip
        return rows


def _compute_plain(kind: str, *args: torch.Tensor) -> torch.Tensor:
    return ALGORITHMS[kind][PLAIN](*args)


class _TunedConvolution(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, tuner: ConvAlgorithmTuner):
        y = tuner.compute("forward", x, weight)
        if bias is not None:
            y = y + bias.view(1, -1, 1, 1)
        ctx.save_for_backward(x, weight)
        ctx.tuner, ctx.has_bias = tuner, bias is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        # a double backward (e.g. a gradient penalty) needs differentiable ops: PyTorch's own
        compute = _compute_plain if torch.is_grad_enabled() else ctx.tuner.compute
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = compute("input_grad", grad, x, weight)
        if ctx.needs_input_grad[1]:
            grad_w = compute("weight_grad", grad, x, weight)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


class TunedConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, state dict and result up to float rounding) that, once given a
    :class:`ConvAlgorithmTuner` (see :func:`tune_convolutions`), computes itself on the CPU with the
    fastest exact algorithm for each input shape. Without a tuner, on CUDA, in TorchScript/ONNX
    export, under ``torch.compile`` and for anything but an unpadded stride-1 dense conv it is the
    plain ``nn.Conv2d``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tunable = (
            self.stride == (1, 1) and self.padding == (0, 0) and self.dilation == (1, 1)
            and self.groups == 1 and self.padding_mode == "zeros"
        )  # fmt: skip
        self.tuned = False  # set with the tuner by tune_convolutions (a bool, so TorchScript can read it)
        self.tuner: ConvAlgorithmTuner | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting() or torch.jit.is_tracing() or not (self.tuned and self.tunable):
            return self._conv_forward(x, self.weight, self.bias)
        return self._tuned_forward(x)

    @torch.jit.unused
    def _tuned_forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dim() != 4 or torch.compiler.is_compiling():
            return self._conv_forward(x, self.weight, self.bias)
        return _TunedConvolution.apply(x.contiguous(), self.weight, self.bias, self.tuner)


def tune_convolutions(module: nn.Module, tuner: ConvAlgorithmTuner | None) -> int:
    """Give every :class:`TunedConv2d` in ``module`` the (shared) ``tuner``; ``None`` restores the
    plain path. Returns how many convs it set."""
    convs = [m for m in module.modules() if isinstance(m, TunedConv2d)]
    for m in convs:
        m.tuner, m.tuned = tuner, tuner is not None
    return len(convs)
