"""PSNR and SSIM against hand-computed cases and scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gankit.metrics.image_quality import SSIM_K1, SSIM_K2, expected_psnr, psnr, ssim


def _img(seed=0, shape=(2, 3, 32, 32)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_identical_images():
    x = _img()
    assert torch.all(torch.isinf(psnr(x, x)))
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("sigma", [0.1, 0.05, 0.01])
def test_known_noise_level_gives_known_psnr(sigma):
    x = _img(shape=(1, 1, 24, 24)) * 0.5 + 0.25
    signs = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(1)).double() * 2 - 1
    y = x + sigma * signs  # every pixel off by exactly sigma: MSE = sigma²
    assert float(psnr(y, x)) == pytest.approx(expected_psnr(sigma), rel=1e-9)
    assert expected_psnr(0.1) == pytest.approx(20.0)


def test_constant_images_hand_computed():
    a, b = 0.3, 0.6
    x, y = (torch.full((1, 1, 16, 16), v, dtype=torch.float64) for v in (a, b))
    c1 = SSIM_K1**2
    assert float(ssim(x, y)) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)
    assert float(psnr(x, y)) == pytest.approx(10 * math.log10(1 / 0.09), rel=1e-9)
    assert SSIM_K2 == 0.03


def test_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    x = _img(2, (1, 3, 40, 48))
    y = (x + 0.1 * _img(3, (1, 3, 40, 48)) - 0.05).clamp(0, 1)
    ref = metrics.structural_similarity(
        x[0].numpy(),
        y[0].numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=0,
    )
    assert float(ssim(x, y)) == pytest.approx(ref, rel=1e-6)
    ref_psnr = metrics.peak_signal_noise_ratio(x[0].numpy(), y[0].numpy(), data_range=1.0)
    assert float(psnr(x, y)) == pytest.approx(ref_psnr, rel=1e-9)


def test_ssim_orders_degradations_and_rejects_bad_input():
    x = _img(4, (1, 1, 32, 32))
    noise = _img(5, (1, 1, 32, 32)) - 0.5
    assert float(ssim(x, x + 0.05 * noise)) > float(ssim(x, x + 0.3 * noise)) > 0
    with pytest.raises(ValueError):
        ssim(x[..., :8, :8], x[..., :8, :8])
    with pytest.raises(ValueError):
        psnr(x, x[..., :16])
    assert np.isfinite(float(ssim(x[0], x[0] * 0.5)))  # CHW accepted
