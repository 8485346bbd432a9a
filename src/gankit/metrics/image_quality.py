"""Full-reference image quality: PSNR and SSIM (Wang, Bovik, Sheikh & Simoncelli 2004) on images
in [0, 1], batched (N, C, H, W).

Memory is bounded: both metrics work through the batch in chunks of at most ``CHUNK_ELEMENTS`` values,
in float32, with the separable Gaussian window applied as two 1-D convolutions, and only the per-image
scores (float64) are kept. :func:`paired_scores` streams an iterator of image pairs, so an evaluation set
never has to be held in memory at once."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_TILE = 32  # output tile side for the float32 centring in ``ssim``
CHUNK_ELEMENTS = 1 << 23  # float32 values per chunk temporary (32 MiB)

__all__ = [
    "CHUNK_ELEMENTS",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_TILE",
    "SSIM_WINDOW",
    "PairedScores",
    "expected_psnr",
    "gaussian_kernel_1d",
    "gaussian_window",
    "paired_scores",
    "psnr",
    "ssim",
]


def _check(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim == 3:
        x, y = x[None], y[None]
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) or (C, H, W) images, got shape {tuple(x.shape)}")
    return x, y


def _step(per_image: int) -> int:
    """Images per chunk so that one float32 temporary holds at most ``CHUNK_ELEMENTS`` values."""
    return max(1, CHUNK_ELEMENTS // max(per_image, 1))


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, 10·log10(range² / MSE) (float64 scores); ``inf`` for identical images.

    Differences are formed in float32 chunk by chunk; squared errors are summed in float64."""
    x, y = _check(x, y)
    n, per = x.shape[0], x[0].numel()
    out = torch.empty(n, dtype=torch.float64, device=x.device)
    step = _step(per)
    for i in range(0, n, step):
        d = x[i : i + step].float() - y[i : i + step].float()
        out[i : i + step] = d.pow(2).flatten(1).sum(1, dtype=torch.float64) / per
    return 10 * torch.log10(data_range**2 / out)  # mse 0 -> inf


def gaussian_kernel_1d(
    size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Normalized 1-D Gaussian of ``size`` taps; its outer product with itself is :func:`gaussian_window`."""
    g = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(g**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalized 2-D Gaussian window (size x size), float64."""
    g = gaussian_kernel_1d(size, sigma)
    return g[:, None] * g[None, :]


def _filter_valid(t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable "valid" filtering of the last two dims of ``t`` with the 1-D kernel ``g``: a 1-D convolution
    along W, then one along H, each written as a weighted sum of shifted views (as exact as ``conv2d`` and
    several times faster on CPU for single-channel planes)."""
    k = len(g)
    wts = [float(v) for v in g]
    w_out = t.shape[-1] - k + 1
    rows = torch.mul(t[..., :w_out], wts[0])
    for i in range(1, k):
        rows.add_(t[..., i : i + w_out], alpha=wts[i])
    h_out = t.shape[-2] - k + 1
    out = torch.mul(rows[..., :h_out, :], wts[0])
    for i in range(1, k):
        out.add_(rows[..., i : i + h_out, :], alpha=wts[i])
    return out


def _ssim_chunk(x: torch.Tensor, y: torch.Tensor, g: torch.Tensor, c1: float, c2: float) -> torch.Tensor:
    """Per-image mean SSIM of a float32 chunk (n, c, h, w), as float64.

    Float32 cancellation in E[x²] - E[x]² grows with the magnitude of the values, so the valid output grid is
    cut into tiles of about ``SSIM_TILE`` px; each tile's input (with its k - 1 px halo) is shifted by its own
    mean. Every window lies inside one tile, and (co)variances are invariant to a constant shift, so this is
    exact algebraically and keeps the result within ~1e-6 of float64 on real photographs."""
    n, c, h, w = x.shape
    k = len(g)
    ho, wo = h - k + 1, w - k + 1
    nh, nw = -(-ho // SSIM_TILE), -(-wo // SSIM_TILE)
    th, tw = -(-ho // nh), -(-wo // nw)
    pad = (0, nw * tw - wo, 0, nh * th - ho)

    def tiles(t: torch.Tensor) -> torch.Tensor:  # (n, c, nh, nw, th + k - 1, tw + k - 1)
        if any(pad):
            t = F.pad(t, pad, mode="replicate")
        return t.unfold(2, th + k - 1, th).unfold(3, tw + k - 1, tw)

    x, y = tiles(x), tiles(y)
    mx = x.mean((-2, -1), keepdim=True)
    my = y.mean((-2, -1), keepdim=True)
    x, y = x - mx, y - my
    f = _filter_valid(torch.stack((x, y, x * x, y * y, x * y)), g)
    del x, y
    mu_x, mu_y = f[0], f[1]
    sxx = f[2] - mu_x * mu_x
    syy = f[3] - mu_y * mu_y
    sxy = f[4] - mu_x * mu_y
    mu_x, mu_y = mu_x + mx, mu_y + my
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2))
    if any(pad):
        s = s.permute(0, 1, 2, 4, 3, 5).reshape(n, c, nh * th, nw * tw)[..., :ho, :wo]
    return s.reshape(n, -1).sum(1, dtype=torch.float64) / (c * ho * wo)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    window: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
) -> torch.Tensor:
    """Per-image mean SSIM (Wang et al. 2004, Eq. 13 with the Gaussian weighting of Sec. III-C): window 11,
    σ 1.5, C1 = (0.01 L)², C2 = (0.03 L)², local statistics over the "valid" window positions (as the
    authors' MATLAB code), averaged over positions and channels. Equals
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.

    Computed in float32 with the Gaussian applied separably (two 1-D convolutions), tile-centred (see
    ``_ssim_chunk``) and in chunks of images; returns float64 scores within ~1e-6 relative of float64."""
    x, y = _check(x, y)
    n, c, h, w = x.shape
    if min(h, w) < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window} px, got {h}x{w}")
    g = gaussian_kernel_1d(window, sigma, torch.float32).to(x.device)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    out = torch.empty(n, dtype=torch.float64, device=x.device)
    step = _step(10 * c * h * w)  # five stacked local-statistics maps of the tiles with their halos
    for i in range(0, n, step):
        out[i : i + step] = _ssim_chunk(x[i : i + step].float(), y[i : i + step].float(), g, c1, c2)
    return out


def expected_psnr(noise_std: float, data_range: float = 1.0) -> float:
    """PSNR of additive noise with this standard deviation (MSE = σ²)."""
    return 10 * math.log10(data_range**2 / noise_std**2)


@dataclass(frozen=True)
class PairedScores:
    """Per-image PSNR (dB, ``inf`` for identical pairs) and SSIM of a streamed set of pairs."""

    psnr: np.ndarray
    ssim: np.ndarray

    def __len__(self) -> int:
        return len(self.ssim)

    def summary(self) -> dict[str, float]:
        """Means and standard deviations; the PSNR ones over the finite values (``psnr_inf`` counts the rest)."""
        finite = self.psnr[np.isfinite(self.psnr)]
        return {
            "n": float(len(self)),
            "psnr_mean": float(finite.mean()) if finite.size else (math.inf if len(self) else math.nan),
            "psnr_std": float(finite.std()) if finite.size else 0.0,
            "psnr_inf": float(len(self.psnr) - finite.size),
            "ssim_mean": float(self.ssim.mean()) if len(self) else math.nan,
            "ssim_std": float(self.ssim.std()) if len(self) else math.nan,
        }


def paired_scores(
    pairs: Iterable[tuple[torch.Tensor, torch.Tensor]],
    batch_size: int = 16,
    data_range: float = 1.0,
) -> PairedScores:
    """Stream (x, y) pairs, each (C, H, W) or a small batch (N, C, H, W), through :func:`psnr` and
    :func:`ssim` ``batch_size`` images at a time; only the per-image scores are kept."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ps: list[torch.Tensor] = []
    ss: list[torch.Tensor] = []
    buf_x: list[torch.Tensor] = []
    buf_y: list[torch.Tensor] = []
    held = 0

    def flush() -> None:
        nonlocal held
        if not held:
            return
        x, y = torch.cat(buf_x), torch.cat(buf_y)
        buf_x.clear()
        buf_y.clear()
        held = 0
        ps.append(psnr(x, y, data_range).cpu())
        ss.append(ssim(x, y, data_range).cpu())

    for x, y in pairs:
        x, y = _check(x, y)
        if buf_x and x.shape[1:] != buf_x[0].shape[1:]:
            flush()
        buf_x.append(x)
        buf_y.append(y)
        held += x.shape[0]
        if held >= batch_size:
            flush()
    flush()
    return PairedScores(psnr=_to_numpy(ps), ssim=_to_numpy(ss))


def _to_numpy(parts: list[torch.Tensor]) -> np.ndarray:
    return torch.cat(parts).numpy() if parts else np.zeros(0)
