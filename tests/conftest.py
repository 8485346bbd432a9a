"""Shared fixtures: where the real data lives, and tiny deterministic settings for CPU tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FULL = os.environ.get("GANKIT_TESTS") == "full"
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # `make test` runs two workers side by side: one core each
"""``GANKIT_TESTS=full`` runs the ``slow`` end-to-end checks at their documented budgets; by default
(and in CI) they run in a reduced form with a correspondingly lower bar."""


def data_root() -> Path:
    """Real data folder: ``$GANKIT_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("GANKIT_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if not root.is_dir():
        # CI must never silently skip real-data tests: .ci/run fails earlier when the folder is absent.
        pytest.fail(f"real data folder {root} not found (set GANKIT_DATA)")
    return root


@pytest.fixture
def one_thread():
    """Tiny networks: one thread (as a run's ``threads: 1``) avoids OpenMP contention on small CPUs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _small_threads():
    torch.manual_seed(0)
    yield
