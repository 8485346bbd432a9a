"""Content preservation of an unpaired translation without ground truth: does G(x) keep the edge
structure of x?

``edge_structure_similarity`` compares the Sobel gradient-magnitude maps (Sobel & Feldman 1968; Gonzalez &
Woods, "Digital Image Processing", §10.2) of the luminance (ITU-R BT.601 weights) of the input and of its
translation by their per-image Pearson correlation coefficient. Colour and texture changes keep it high;
moved, removed or invented structure lowers it. In the spirit of the edge-based structure comparisons of
Wang & Bovik's SSIM family (e.g. gradient-based SSIM, Chen et al. 2006), but scale- and offset-free so that a
translation may change contrast."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gankit.nn.layers import LUMA_WEIGHTS, luminance

DEFAULT_BLUR_SIGMA = 1.0
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])

__all__ = [
    "DEFAULT_BLUR_SIGMA",
    "LUMA_WEIGHTS",
    "edge_maps",
    "edge_structure_similarity",
    "luminance",
    "pearson_per_image",
    "sobel_magnitude",
]


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, round(3 * sigma))
    g = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-(g**2) / (2 * sigma**2))
    g = g / g.sum()
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    return F.conv2d(x, g.view(1, 1, -1, 1))


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude sqrt(Gx² + Gy²) of single-channel images (N, 1, H, W) over the valid
    positions: (N, 1, H - 2, W - 2)."""
    kx = _SOBEL_X.to(x)
    k = torch.stack((kx, kx.T))[:, None]  # (2, 1, 3, 3): d/dx, d/dy
    g = F.conv2d(x, k)
    return g.pow(2).sum(1, keepdim=True).sqrt()


def edge_maps(
    x: torch.Tensor, size: tuple[int, int] | None = None, blur_sigma: float = DEFAULT_BLUR_SIGMA
) -> torch.Tensor:
    """Luminance of ``x`` (N, C, H, W), resized (bilinear, antialiased) to ``size``, lightly Gaussian-blurred
    (σ = ``blur_sigma`` px, 0 for none), then its Sobel gradient magnitude: (N, 1, h - 2, w - 2)."""
    y = luminance(x)
    if size is not None and tuple(y.shape[-2:]) != tuple(size):
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False, antialias=True)
    if blur_sigma > 0:
        y = _gaussian_blur(y, blur_sigma)
    return sobel_magnitude(y)


def pearson_per_image(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of each pair of images (flattened) in [-1, 1]; 0 where either is constant."""
    a = a.flatten(1).double()
    b = b.flatten(1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    cov = (a * b).sum(1)
    den = (a.pow(2).sum(1) * b.pow(2).sum(1)).sqrt()
    return torch.where(den > eps, cov / den.clamp_min(eps), torch.zeros_like(cov)).clamp(-1, 1)


def edge_structure_similarity(
    source: torch.Tensor,
    translated: torch.Tensor,
    size: tuple[int, int] | None = None,
    blur_sigma: float = DEFAULT_BLUR_SIGMA,
) -> torch.Tensor:
    """Per-image edge-structure similarity in [-1, 1] (higher = same structure) of a translation and its
    input, both (N, C, H, W) in [-1, 1] with C in {1, 3} (C and H, W may differ between the two).

    Both luminances are resized to ``size`` (default: the smaller height and width of the two), lightly
    blurred, reduced to Sobel gradient magnitudes, and compared by Pearson correlation. Invariant to a gain
    and offset of the luminance, and to colour changes that keep luminance edges; ≈ 0 for unrelated content;
    0 when either image has no edges at all. Returns float64 (N,)."""
    if source.ndim != 4 or translated.ndim != 4 or source.shape[0] != translated.shape[0]:
        raise ValueError(
            f"expected two (N, C, H, W) batches of equal N, got {tuple(source.shape)} and {tuple(translated.shape)}"
        )
    if size is None:
        size = (min(source.shape[-2], translated.shape[-2]), min(source.shape[-1], translated.shape[-1]))
    if min(size) < 3:
        raise ValueError(f"images must be at least 3x3 px, got {size}")
    translated = translated.to(source.device)
    return pearson_per_image(edge_maps(source, size, blur_sigma), edge_maps(translated, size, blur_sigma))
