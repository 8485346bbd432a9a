"""One torch thread for the metrics tests: on a shared 2-core machine, two OpenMP threads competing
with other processes made classifier training up to 15x slower than one."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
