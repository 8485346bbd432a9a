"""gankit.runtime.HeapPolicy: evaluators bound the mmap threshold; their training loops relax it."""

from __future__ import annotations

import pytest

import gankit.runtime as runtime
from gankit.runtime import MMAP_THRESHOLD_MAX, HeapPolicy


@pytest.fixture
def calls(monkeypatch):
    seen: list[int] = []
    monkeypatch.setattr(runtime, "_set_mmap_threshold", lambda t: seen.append(t) or True)
    return seen


def test_an_unbound_process_is_left_to_glibc(calls):
    with HeapPolicy().reusing_heap():
        pass
    assert calls == []


def test_a_bound_threshold_is_relaxed_inside_and_restored_after_even_on_error(calls):
    policy = HeapPolicy()
    assert policy.bound(128 * 1024)
    with pytest.raises(RuntimeError), policy.reusing_heap():
        assert calls == [128 * 1024, MMAP_THRESHOLD_MAX]
        raise RuntimeError("a failed fit")
    assert calls == [128 * 1024, MMAP_THRESHOLD_MAX, 128 * 1024] and policy.threshold == 128 * 1024


@pytest.fixture
def options(monkeypatch):
    seen: list[tuple[int, int]] = []
    monkeypatch.setattr(runtime, "_mallopt", lambda p, v: seen.append((p, v)) or True)
    monkeypatch.setattr(runtime, "_malloc_trim", lambda: seen.append(("trim", 0)))
    return seen


def test_training_keeps_the_heap_inside_and_restores_glibc_after_even_on_error(options):
    with pytest.raises(RuntimeError), HeapPolicy().for_training():
        assert options == [(runtime.M_MMAP_MAX, 0), (runtime.M_TRIM_THRESHOLD, runtime.KEEP_FREED),
                           (runtime.M_ARENA_MAX, 1)]  # fmt: skip
        raise RuntimeError("a diverged run")
    assert options[3:] == [(runtime.M_ARENA_MAX, 0), (runtime.M_MMAP_MAX, runtime.GLIBC_MMAP_MAX),
                           (runtime.M_TRIM_THRESHOLD, runtime.GLIBC_TRIM_THRESHOLD),
                           (runtime.M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX), ("trim", 0)]  # fmt: skip


def test_training_restores_an_evaluators_bound_threshold(options):
    policy = HeapPolicy()
    policy.bound(128 * 1024)
    with policy.for_training():
        pass
    assert options[-2:] == [(runtime.M_MMAP_THRESHOLD, 128 * 1024), ("trim", 0)]


def test_training_changes_nothing_where_mallopt_is_missing(monkeypatch):
    monkeypatch.setattr(runtime, "_libc", lambda: None)
    with HeapPolicy().for_training():
        pass  # no error, nothing to restore


def test_the_real_policy_round_trips_in_this_process():
    """On glibc the calls succeed and a training-sized allocation pattern still works inside."""
    import torch

    with HeapPolicy().for_training():
        for _ in range(3):
            x = torch.ones(9 * 1024 * 1024)  # 36 MiB: above glibc's highest mmap threshold
            assert float(x.sum()) == 9 * 1024 * 1024
