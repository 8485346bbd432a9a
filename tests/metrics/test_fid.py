"""FID and KID against closed forms, hand-computed cases and an independent float64 reference
(pytorch-fid's formula with scipy.linalg.sqrtm; torch-fidelity's KID written out with loops)."""

from __future__ import annotations

import numpy as np
import pytest

from gankit.metrics.fid import feature_statistics, fid_from_features, frechet_distance, kid, mmd2_unbiased


def _spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def pytorch_fid_reference(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance, re-typed in float64."""
    linalg = pytest.importorskip("scipy.linalg")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def test_identical_sets_give_zero():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(300, 8))
    assert fid_from_features(f, f) == pytest.approx(0.0, abs=1e-9)
    mean, _ = kid(f, f.copy(), subsets=10, subset_size=300)
    shifted, _ = kid(f, f + 1.0, subsets=10, subset_size=300)
    assert abs(mean) < 1e-2 * shifted


def test_equal_covariances_leave_only_the_mean_term():
    rng = np.random.default_rng(1)
    s = _spd(rng, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    assert frechet_distance(mu1, s, mu2, s) == pytest.approx(float(np.sum((mu1 - mu2) ** 2)), rel=1e-9)


def test_diagonal_covariances_closed_form():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 16.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 2.0])
    expected = 9.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # ‖μ1−μ2‖² + Σ(√a − √b)²
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_shifted_gaussian_samples_approach_the_closed_form():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20000, 3))
    y = rng.normal(size=(20000, 3)) + np.array([3.0, 0.0, 0.0])
    assert fid_from_features(x, y) == pytest.approx(9.0, rel=0.03)


@pytest.mark.parametrize("d, n", [(8, 500), (64, 300)])
def test_matches_pytorch_fid_formula(d, n):
    rng = np.random.default_rng(d)
    f1 = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    f2 = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 0.5
    mu1, s1 = f1.mean(0), np.cov(f1, rowvar=False)
    mu2, s2 = f2.mean(0), np.cov(f2, rowvar=False)
    ref = pytorch_fid_reference(mu1, s1, mu2, s2)
    assert fid_from_features(f1, f2) == pytest.approx(ref, rel=1e-6)
    m, s = feature_statistics(f1)
    np.testing.assert_allclose(m, mu1)
    np.testing.assert_allclose(s, s1)


def test_random_spd_matches_reference():
    rng = np.random.default_rng(5)
    s1, s2 = _spd(rng, 20), _spd(rng, 20)
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(pytorch_fid_reference(mu1, s1, mu2, s2), rel=1e-6)


def test_singular_covariance_is_finite():
    rng = np.random.default_rng(3)
    f1, f2 = rng.normal(size=(10, 50)), rng.normal(size=(12, 50))
    v = fid_from_features(f1, f2)
    assert np.isfinite(v) and v > 0


def test_mmd_hand_computed():
    # k(a, b) = (ab/1 + 1)^3: K_xx off-diagonal 1+1, K_yy off-diagonal 1+1, K_xy 1+1+1+27
    assert mmd2_unbiased(np.array([[0.0], [1.0]]), np.array([[0.0], [2.0]])) == pytest.approx(4 / 2 - 2 * 30 / 4)


def _kid_reference(f1, f2, subsets, m, seed=0):
    """torch-fidelity's KID written with explicit loops."""
    rng = np.random.RandomState(seed)
    d = f1.shape[1]
    vals = []
    for _ in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        k = lambda a, b: (float(a @ b) / d + 1) ** 3  # noqa: E731
        xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
        yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
        xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
        vals.append((xx + yy) / (m * (m - 1)) - 2 * xy / m**2)
    return float(np.mean(vals)), float(np.std(vals))


def test_kid_matches_loop_reference():
    rng = np.random.default_rng(4)
    f1, f2 = rng.normal(size=(40, 6)), rng.normal(size=(35, 6)) + 0.3
    mean, std = kid(f1, f2, subsets=5, subset_size=15)
    ref_mean, ref_std = _kid_reference(f1, f2, 5, 15)
    assert mean == pytest.approx(ref_mean, rel=1e-6)
    assert std == pytest.approx(ref_std, rel=1e-6)


def test_kid_subset_capped_and_errors():
    rng = np.random.default_rng(6)
    f = rng.normal(size=(5, 3))
    assert np.isfinite(kid(f, f + 1, subsets=3, subset_size=1000)[0])
    with pytest.raises(ValueError):
        kid(f, rng.normal(size=(5, 4)))
    with pytest.raises(ValueError):
        fid_from_features(f[:1], f)
