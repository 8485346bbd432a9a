"""Improved precision/recall (Kynkäänniemi et al. 2019) and bootstrap intervals on synthetic features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gankit.metrics.precision_recall import (
    PrecisionRecall,
    bootstrap_interval,
    knn_radii,
    manifold_membership,
    precision_recall,
)


def _gauss(n, d=8, seed=0, shift=0.0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


def test_knn_radii_hand_computed_and_excludes_self():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert knn_radii(x, k=1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert knn_radii(x, k=2).tolist() == [3.0, 2.0, 3.0, 6.0]
    dup = torch.tensor([[0.0], [0.0], [5.0]])
    assert knn_radii(dup, k=1).tolist() == [0.0, 0.0, 5.0]  # a duplicate is a neighbour at distance 0
    with pytest.raises(ValueError):
        knn_radii(x, k=4)


def test_identical_sets_give_one_and_one():
    x = _gauss(60)
    pr = precision_recall(x, x.clone())
    assert isinstance(pr, PrecisionRecall)
    assert (pr.precision, pr.recall, pr.k, pr.n_real, pr.n_fake) == (1.0, 1.0, 3, 60, 60)
    assert pr.precision_interval is None


def test_disjoint_far_apart_clusters_give_zero_and_zero():
    pr = precision_recall(_gauss(50, seed=1), _gauss(40, seed=2, shift=100.0))
    assert (pr.precision, pr.recall, pr.n_fake) == (0.0, 0.0, 40)


def test_collapsed_generator_is_precise_but_has_low_recall():
    real = _gauss(80, seed=3)
    fake = real[5].repeat(30, 1) + 1e-4 * _gauss(30, seed=4)  # mode collapse onto one real sample
    pr = precision_recall(real, fake)
    assert pr.precision == 1.0
    assert pr.recall < 0.1


def test_chunked_equals_unchunked():
    """Equal up to float rounding: torch.cdist computes distances directly for a few rows and through a
    matrix product for many, whose last bits may differ (seen in one worker after other tests had changed
    the allocator's mmap threshold, and so the buffers' alignment)."""
    real, fake = _gauss(70, seed=5), _gauss(55, seed=6, shift=0.7)
    whole = precision_recall(real, fake, k=3, chunk_size=10_000)
    assert 0 < whole.precision < 1 and 0 < whole.recall < 1
    assert precision_recall(real, fake, k=3, chunk_size=7) == whole
    torch.testing.assert_close(knn_radii(real, 3, chunk_size=4), knn_radii(real, 3, chunk_size=1000))
    r = knn_radii(real)
    assert torch.equal(manifold_membership(fake, real, r, 3), manifold_membership(fake, real, r, 1000))


def test_larger_k_never_lowers_the_scores():
    real, fake = _gauss(60, seed=7), _gauss(60, seed=8, shift=0.8)
    a, b = precision_recall(real, fake, k=1), precision_recall(real, fake, k=5)
    assert b.precision >= a.precision and b.recall >= a.recall


def test_bootstrap_interval_of_a_share_contains_estimate_and_narrows_with_n():
    widths = []
    for n in (40, 400, 4000):
        hits = np.random.default_rng(n).random(n) < 0.3
        lo, hi = bootstrap_interval(hits, n_boot=500, seed=1)
        assert lo <= hits.mean() <= hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2] > 0
    assert bootstrap_interval(torch.ones(10), n_boot=50) == (1.0, 1.0)
    assert bootstrap_interval(hits, n_boot=200, seed=3) == bootstrap_interval(hits, n_boot=200, seed=3)


def test_bootstrap_of_a_statistic_function_resamples_indices():
    values = np.arange(10.0)
    lo, hi = bootstrap_interval(lambda idx: values[idx].mean(), n=10, n_boot=300, seed=0)
    assert lo < values.mean() < hi
    # resampling the indicator equals resampling the indices through a function (same random stream)
    hits = np.random.default_rng(0).random(25) < 0.5
    assert bootstrap_interval(hits, n_boot=100, seed=4) == bootstrap_interval(
        lambda idx: hits[idx].mean(), n=25, n_boot=100, seed=4
    )
    with pytest.raises(ValueError):
        bootstrap_interval(lambda idx: 0.0)
    with pytest.raises(ValueError):
        bootstrap_interval([], n_boot=10)


def test_precision_recall_intervals_resample_the_generated_and_real_sets():
    real, fake = _gauss(60, seed=9), _gauss(50, seed=10, shift=0.6)
    pr = precision_recall(real, fake, n_boot=300, seed=2)
    lo, hi = pr.precision_interval
    assert lo <= pr.precision <= hi and hi > lo
    lo, hi = pr.recall_interval
    assert lo <= pr.recall <= hi and hi > lo
    # precision's interval resamples generated indices with the real manifold fixed
    inside = manifold_membership(fake, real, knn_radii(real))
    assert pr.precision_interval == bootstrap_interval(
        lambda idx: float(manifold_membership(fake[idx], real, knn_radii(real)).double().mean()),
        n=len(fake),
        n_boot=300,
        seed=2,
    )
    assert pr.precision == pytest.approx(inside.double().mean().item())
