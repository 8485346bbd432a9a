"""Edge-structure similarity on real apple2orange photographs: high for colour changes, low for
noise, mirrored or shuffled content, in between for blur."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gankit.metrics.content import (
    edge_maps,
    edge_structure_similarity,
    luminance,
    pearson_per_image,
    sobel_magnitude,
)
from gankit.metrics.garbage import heavy_blur, patch_shuffle, uniform_noise


@pytest.fixture(scope="module")
def photos(shared_data) -> torch.Tensor:
    files = sorted((shared_data / "apple2orange" / "testA").glob("*.jpg"))[:4]
    assert len(files) == 4
    arr = np.stack([np.array(Image.open(f).convert("RGB")) for f in files])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1  # (4, 3, 256, 256) in [-1, 1]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _hue_rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate the chroma plane of YIQ by ``degrees`` (luma kept), back to RGB in [-1, 1]."""
    m = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    yiq = torch.einsum("ij,njhw->nihw", m, (x + 1) / 2)
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, q = yiq[:, 1] * c - yiq[:, 2] * s, yiq[:, 1] * s + yiq[:, 2] * c
    rgb = torch.einsum("ij,njhw->nihw", torch.linalg.inv(m), torch.stack((yiq[:, 0], i, q), 1))
    return (rgb * 2 - 1).clamp(-1, 1)


def test_building_blocks():
    x = torch.zeros(1, 3, 8, 8)
    x[..., :, 4:] = 1.0  # vertical step edge
    y = luminance(x)
    assert y.shape == (1, 1, 8, 8) and torch.allclose(y[..., 4:], torch.ones(1))
    g = sobel_magnitude(y)
    assert g.shape == (1, 1, 6, 6)
    assert torch.allclose(g[..., 2:4], torch.full((1, 1, 6, 2), 4.0)) and g[..., :2].abs().max() == 0
    assert edge_maps(x, size=(16, 16)).shape == (1, 1, 14, 14)
    a = torch.arange(12.0).view(2, 6)
    assert torch.allclose(pearson_per_image(a, 3 * a + 1), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(pearson_per_image(a, -a), -torch.ones(2, dtype=torch.float64))
    assert pearson_per_image(a, torch.ones(2, 6)).tolist() == [0.0, 0.0]  # constant: no structure
    with pytest.raises(ValueError):
        luminance(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError):
        edge_structure_similarity(torch.zeros(2, 3, 8, 8), torch.zeros(3, 3, 8, 8))


def test_identity_and_colour_changes_score_high(photos):
    x = photos
    assert edge_structure_similarity(x, x).min() > 0.99
    tint = ((x + 1) * torch.tensor([1.0, 0.7, 0.4]).view(1, 3, 1, 1) - 1).clamp(-1, 1)
    assert edge_structure_similarity(x, tint).min() > 0.9
    assert edge_structure_similarity(x, _hue_rotate(x, 90)).min() > 0.9
    # different channel count and size: gray, half-resolution output
    gray_small = F.interpolate(luminance(x), size=(128, 128), mode="bilinear", antialias=True)
    scores = edge_structure_similarity(x, gray_small)
    assert scores.shape == (4,) and scores.dtype == torch.float64 and scores.min() > 0.9


def test_unrelated_or_rearranged_structure_scores_low(photos):
    x = photos
    ident = edge_structure_similarity(x, x)
    noise = edge_structure_similarity(x, uniform_noise(x, _gen()))
    assert noise.abs().max() < 0.2
    shuffled = edge_structure_similarity(x, patch_shuffle(x, _gen(), grid=4))
    assert shuffled.max() < 0.3
    flipped = edge_structure_similarity(x, x.flip(-1))
    assert flipped.mean() < 0.5 and (flipped < ident - 0.2).all()  # some apples are nearly mirror-symmetric
    other = edge_structure_similarity(x, x.roll(1, 0))  # another photograph's structure
    assert other.abs().max() < 0.3


def test_blur_scores_between(photos):
    x = photos
    noise = edge_structure_similarity(x, uniform_noise(x, _gen()))
    light = edge_structure_similarity(x, heavy_blur(x, _gen(), sigma_fraction=2 / 256))  # σ = 2 px
    heavy = edge_structure_similarity(x, heavy_blur(x, _gen()))  # σ = 16 px
    assert (light < 0.99).all() and (light > 0.7).all()
    assert (noise < heavy).all() and (heavy < light).all()


def test_score_range_and_constant_output(photos):
    x = photos[:2]
    flat = torch.zeros_like(x)
    assert edge_structure_similarity(x, flat).tolist() == [0.0, 0.0]
    s = edge_structure_similarity(x, -x, blur_sigma=0)  # inverted luminance: same edge magnitudes
    assert s.min() > 0.99 and s.max() <= 1.0
