"""Distances between two sets of features: the Fréchet distance (FID, Heusel et al. 2017) and the
kernel inception distance (KID, Bińkowski et al. 2018), with the formulas of pytorch-fid and
torch-fidelity. Everything is computed in float64 NumPy."""

from __future__ import annotations

import numpy as np

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def _as_features(x, name: str = "features") -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, D), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contain NaN or infinite values")
    return x


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, ``np.cov(rowvar=False)`` as pytorch-fid) of (N, D) features."""
    f = _as_features(features)
    if len(f) < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {len(f)}")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigen-decomposition."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((Σ1 Σ2)^½). Σ1Σ2 is similar to the PSD matrix Σ1^½ Σ2 Σ1^½, whose eigenvalues are real and
    ≥ 0, so the trace is the sum of their square roots: the same value as the trace of
    ``scipy.linalg.sqrtm(Σ1 @ Σ2)`` (pytorch-fid), without its complex round-off or failures on
    singular covariances (fewer samples than dimensions)."""
    r = _psd_sqrt(sigma1)
    m = r @ sigma2 @ r
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½): the Fréchet (2-Wasserstein) distance of two Gaussians
    (Dowson & Landau 1982), the FID of Heusel et al. 2017 when fitted to Inception features."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes do not match: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2)
    return float(max(value, 0.0))


def fid_from_features(features1, features2) -> float:
    """FID between two sets of (N, D) features (Heusel et al. 2017)."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """k(x, y) = (x·y / d + coef0)^degree, the KID kernel (Bińkowski et al. 2018)."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased MMD² estimate with the polynomial kernel for two equal-sized samples
    (torch-fidelity's ``mmd2(..., mmd_est="unbiased")``): diagonal terms of K_XX, K_YY dropped."""
    m = len(x)
    if m < 2 or len(y) != m:
        raise ValueError(f"need two samples of the same size ≥ 2, got {len(x)} and {len(y)}")
    k_xx, k_yy, k_xy = (polynomial_kernel(a, b, degree, coef0) for a, b in ((x, x), (y, y), (x, y)))
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kid(
    features1,
    features2,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    degree: int = 3,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): mean and std (ddof 0) of the unbiased MMD² over ``subsets`` random
    subsets of ``subset_size`` drawn without replacement from each set, as torch-fidelity (which
    draws with ``np.random.RandomState(seed).choice``). The subset size is capped at the smaller
    set (as clean-fid does; torch-fidelity refuses instead)."""
    f1, f2 = _as_features(features1, "features1"), _as_features(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature dimensions differ: {f1.shape[1]} vs {f2.shape[1]}")
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(f1)} and {len(f2)}")
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        mmds[i] = mmd2_unbiased(x, y, degree, coef0)
    return float(mmds.mean()), float(mmds.std())
