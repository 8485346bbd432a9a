"""Improved precision and recall of generative models (Kynkäänniemi, Karras, Laine, Lehtinen & Aila,
"Improved Precision and Recall Metric for Assessing Generative Models", NeurIPS 2019), with bootstrap
percentile intervals (Efron & Tibshirani 1993, ch. 13).

Each set's manifold is the union of hyperspheres around its feature vectors, of radius the distance to the
k-th nearest neighbour within the set (Eq. 1, itself excluded); precision is the share of generated samples
inside the real manifold and recall the share of real samples inside the generated one (Eq. 2). Distances
are computed in row chunks with ``torch.cdist``, so memory is O(chunk · N) rather than O(N · M)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_K = 3
DEFAULT_CHUNK = 1024

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_K",
    "PrecisionRecall",
    "bootstrap_interval",
    "knn_radii",
    "manifold_membership",
    "precision_recall",
]


@dataclass(frozen=True)
class PrecisionRecall:
    """Improved precision/recall of ``n_fake`` generated vs ``n_real`` real samples with k neighbours; the
    intervals are 95 % (or ``level``) bootstrap percentile intervals when requested, else ``None``."""

    precision: float
    recall: float
    k: int
    n_real: int
    n_fake: int
    precision_interval: tuple[float, float] | None = None
    recall_interval: tuple[float, float] | None = None


def _features(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim != 2:
        raise ValueError(f"{name} features must be (N, D), got shape {tuple(x.shape)}")
    return x if x.dtype == torch.float64 else x.float()


def knn_radii(features: torch.Tensor, k: int = DEFAULT_K, chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Distance from each row of ``features`` (N, D) to its k-th nearest neighbour among the other rows
    (Kynkäänniemi et al. 2019, Eq. 1: NN_k(φ, Φ)); the point itself is excluded by index, so duplicates count
    as neighbours at distance 0. Returns (N,)."""
    f = _features(features, "the")
    n = f.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, N - 1] = [1, {n - 1}], got {k}")
    out = torch.empty(n, dtype=f.dtype, device=f.device)
    for i in range(0, n, chunk_size):
        d = torch.cdist(f[i : i + chunk_size], f)
        rows = torch.arange(d.shape[0], device=f.device)
        d[rows, rows + i] = torch.inf
        out[i : i + chunk_size] = d.topk(k, dim=1, largest=False).values[:, -1]
    return out


def manifold_membership(
    query: torch.Tensor, support: torch.Tensor, radii: torch.Tensor, chunk_size: int = DEFAULT_CHUNK
) -> torch.Tensor:
    """f(φ, Φ) of Kynkäänniemi et al. 2019, Eq. 2 for every query row: whether it lies within ``radii[j]`` of
    at least one ``support[j]``. Returns a bool tensor (M,), computed ``chunk_size`` query rows at a time."""
    q, s = _features(query, "query"), _features(support, "support")
    if q.shape[1] != s.shape[1]:
        raise ValueError(f"feature dimensions differ: {q.shape[1]} vs {s.shape[1]}")
    s = s.to(q.dtype)
    r = radii.to(q.dtype)[None]
    out = torch.empty(q.shape[0], dtype=torch.bool, device=q.device)
    for i in range(0, q.shape[0], chunk_size):
        out[i : i + chunk_size] = (torch.cdist(q[i : i + chunk_size], s) <= r).any(1)
    return out


def bootstrap_interval(
    values_or_fn: Sequence[float] | np.ndarray | torch.Tensor | Callable[[np.ndarray], float],
    n: int | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Bootstrap percentile interval (Efron & Tibshirani 1993, §13.3) at ``level`` (default 95 %).

    ``values_or_fn`` is either per-sample values (e.g. 0/1 success indicators), whose mean is resampled, or a
    statistic ``fn(indices) -> float`` of resampled indices into a set of ``n`` samples (with replacement)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    if callable(values_or_fn):
        if n is None or n < 1:
            raise ValueError("a statistic function needs the set size n >= 1")
        stats = np.array([float(values_or_fn(rng.integers(0, n, n))) for _ in range(n_boot)])
    else:
        v = values_or_fn.detach().cpu().double().numpy() if torch.is_tensor(values_or_fn) else values_or_fn
        v = np.asarray(v, dtype=np.float64).ravel()
        if v.size == 0:
            raise ValueError("no values to resample")
        rows = max(1, (1 << 22) // v.size)  # bound the index matrix to ~4M entries
        stats = np.concatenate(
            [v[rng.integers(0, v.size, (min(rows, n_boot - b), v.size))].mean(1) for b in range(0, n_boot, rows)]
        )
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def precision_recall(
    real: torch.Tensor,
    fake: torch.Tensor,
    k: int = DEFAULT_K,
    chunk_size: int = DEFAULT_CHUNK,
    *,
    n_boot: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019, Eq. 2–4) of ``fake`` (M, D) against
    ``real`` (N, D) features with k-NN radii (default k = 3).

    With ``n_boot > 0`` also percentile intervals: precision's resamples the generated set with the real
    manifold fixed, recall's the real set with the generated manifold fixed."""
    real, fake = _features(real, "real"), _features(fake, "fake")
    real_in_fake = manifold_membership(real, fake, knn_radii(fake, k, chunk_size), chunk_size)
    fake_in_real = manifold_membership(fake, real, knn_radii(real, k, chunk_size), chunk_size)
    p_int = r_int = None
    if n_boot > 0:
        p_int = bootstrap_interval(fake_in_real, n_boot=n_boot, seed=seed, level=level)
        r_int = bootstrap_interval(real_in_fake, n_boot=n_boot, seed=seed + 1, level=level)
    return PrecisionRecall(
        precision=float(fake_in_real.double().mean()),
        recall=float(real_in_fake.double().mean()),
        k=k,
        n_real=real.shape[0],
        n_fake=fake.shape[0],
        precision_interval=p_int,
        recall_interval=r_int,
    )
