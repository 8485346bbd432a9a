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
