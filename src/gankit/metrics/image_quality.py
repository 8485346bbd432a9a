"""Full-reference image quality: PSNR and SSIM (Wang, Bovik, Sheikh & Simoncelli 2004) on images
in [0, 1], batched (N, C, H, W)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _check(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim == 3:
        x, y = x[None], y[None]
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) or (C, H, W) images, got shape {tuple(x.shape)}")
    return x.double(), y.double()


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, 10·log10(range² / MSE); ``inf`` for identical images."""
    x, y = _check(x, y)
    mse = (x - y).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)  # mse 0 -> inf


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalized 2-D Gaussian window (size x size), float64."""
    g = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(g**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    window: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
) -> torch.Tensor:
    """Per-image mean SSIM (Wang et al. 2004): Gaussian window 11, σ 1.5, C1 = (0.01 L)², C2 = (0.03 L)²,
    local statistics over the "valid" window positions (as the authors' MATLAB code), averaged over
    positions and channels. Equals ``skimage.metrics.structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)``."""
    x, y = _check(x, y)
    _, c, h, w = x.shape
    if min(h, w) < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window} px, got {h}x{w}")
    k = gaussian_window(window, sigma).to(x.device)[None, None].repeat(c, 1, 1, 1)

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, k, groups=c)

    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = filt(x), filt(y)
    sxx = filt(x * x) - mu_x**2
    syy = filt(y * y) - mu_y**2
    sxy = filt(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


def expected_psnr(noise_std: float, data_range: float = 1.0) -> float:
    """PSNR of additive noise with this standard deviation (MSE = σ²)."""
    return 10 * math.log10(data_range**2 / noise_std**2)
