"""PSNR and SSIM against hand-computed cases, scikit-image and the previous float64 implementation;
bounded-memory chunking and the streaming ``paired_scores``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gankit.metrics import image_quality
from gankit.metrics.image_quality import (
    SSIM_K1,
    SSIM_K2,
    expected_psnr,
    gaussian_kernel_1d,
    gaussian_window,
    paired_scores,
    psnr,
    ssim,
)

REL = 1e-5  # float32 computation vs the float64 reference


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
    assert float(psnr(y, x)) == pytest.approx(expected_psnr(sigma), rel=1e-6)
    assert expected_psnr(0.1) == pytest.approx(20.0)


def test_constant_images_hand_computed():
    a, b = 0.3, 0.6
    x, y = (torch.full((1, 1, 16, 16), v, dtype=torch.float64) for v in (a, b))
    c1 = SSIM_K1**2
    assert float(ssim(x, y)) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-6)
    assert float(psnr(x, y)) == pytest.approx(10 * math.log10(1 / 0.09), rel=1e-6)
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
    assert float(psnr(x, y)) == pytest.approx(ref_psnr, rel=1e-6)


def test_ssim_orders_degradations_and_rejects_bad_input():
    x = _img(4, (1, 1, 32, 32))
    noise = _img(5, (1, 1, 32, 32)) - 0.5
    assert float(ssim(x, x + 0.05 * noise)) > float(ssim(x, x + 0.3 * noise)) > 0
    with pytest.raises(ValueError):
        ssim(x[..., :8, :8], x[..., :8, :8])
    with pytest.raises(ValueError):
        psnr(x, x[..., :16])
    assert np.isfinite(float(ssim(x[0], x[0] * 0.5)))  # CHW accepted


# --- the previous implementation (float64, dense 2-D window through a grouped conv), as the reference ---


def _old_psnr(x, y, data_range=1.0):
    x, y = x.double(), y.double()
    return 10 * torch.log10(data_range**2 / (x - y).pow(2).flatten(1).mean(1))


def _old_ssim(x, y, data_range=1.0):
    x, y = x.double(), y.double()
    c = x.shape[1]
    k = gaussian_window()[None, None].repeat(c, 1, 1, 1)

    def filt(t):
        return F.conv2d(t, k, groups=c)

    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = filt(x), filt(y)
    sxx, syy, sxy = filt(x * x) - mu_x**2, filt(y * y) - mu_y**2, filt(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


def _real_images(shared_data, n=2):
    files = sorted((shared_data / "apple2orange" / "testA").glob("*.jpg"))[:n]
    arr = np.stack([np.array(Image.open(f).convert("RGB")) for f in files])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255


def test_separable_window_is_the_2d_window():
    g = gaussian_kernel_1d()
    assert g.sum().item() == pytest.approx(1.0)
    assert torch.allclose(g[:, None] * g[None, :], gaussian_window(), rtol=0, atol=1e-15)


@pytest.mark.parametrize("shape", [(3, 3, 40, 48), (2, 1, 11, 11), (2, 3, 45, 13), (1, 3, 70, 33)])
def test_matches_previous_float64_implementation(shape):
    x = _img(7, shape)
    y = (x + 0.3 * (_img(8, shape) - 0.5)).clamp(0, 1)
    assert ssim(x, y).dtype == torch.float64
    assert torch.allclose(ssim(x, y), _old_ssim(x, y), rtol=REL, atol=0)
    assert torch.allclose(psnr(x, y), _old_psnr(x, y), rtol=REL, atol=0)
    assert torch.allclose(ssim(x, y, data_range=2.0), _old_ssim(x, y, 2.0), rtol=REL, atol=0)


def test_matches_previous_implementation_on_photographs(shared_data):
    # Gray input vs colour truth (the colorization floor) has large flat regions, where float32
    # cancellation in E[x²] - E[x]² hurts most without the per-tile centring.
    x = _real_images(shared_data)[..., 64:160, 64:160]
    gray = x.mean(1, keepdim=True).expand_as(x)
    tinted = x * torch.tensor([1.0, 0.7, 0.4]).view(1, 3, 1, 1)
    for y in (gray, tinted, x.flip(0)):
        assert torch.allclose(ssim(x, y), _old_ssim(x, y), rtol=REL, atol=0)
        assert torch.allclose(psnr(x, y), _old_psnr(x, y), rtol=REL, atol=0)


def test_chunking_does_not_change_scores(monkeypatch):
    x = _img(9, (5, 3, 24, 20))
    y = (x + 0.2 * (_img(10, (5, 3, 24, 20)) - 0.5)).clamp(0, 1)
    whole_s, whole_p = ssim(x, y), psnr(x, y)
    monkeypatch.setattr(image_quality, "CHUNK_ELEMENTS", 1)  # one image per chunk
    assert torch.equal(ssim(x, y), whole_s)
    assert torch.equal(psnr(x, y), whole_p)


def test_paired_scores_streams_single_images_and_batches():
    x = _img(11, (7, 3, 16, 16))
    y = (x + 0.1 * (_img(12, (7, 3, 16, 16)) - 0.5)).clamp(0, 1)
    y[2] = x[2]  # one identical pair: PSNR inf

    def pairs():
        yield x[0], y[0]  # (C, H, W)
        yield x[1:4], y[1:4]  # a small batch
        for i in range(4, 7):
            yield x[i], y[i]

    res = paired_scores(pairs(), batch_size=2)
    assert len(res) == 7
    assert np.allclose(res.ssim, ssim(x, y).numpy(), rtol=1e-12, atol=0)
    assert np.array_equal(res.psnr, psnr(x, y).numpy())
    summary = res.summary()
    finite = np.delete(res.psnr, 2)
    assert summary["psnr_inf"] == 1 and summary["n"] == 7
    assert summary["psnr_mean"] == pytest.approx(finite.mean())
    assert summary["ssim_mean"] == pytest.approx(res.ssim.mean()) and summary["ssim_std"] >= 0
    empty = paired_scores(iter(()))
    assert len(empty) == 0 and empty.psnr.shape == (0,)
    with pytest.raises(ValueError):
        paired_scores(pairs(), batch_size=0)
