"""Learning rates for large global batches: the scaling rule, the warm-up, and the optimizer step
that applies them without changing the rates a model sets."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gankit.models.base import Precision
from gankit.models.schedules import global_batch_factor


def test_scaling_rules_and_warm_up():
    assert global_batch_factor("none", 8, 0, 1) == 1.0
    assert global_batch_factor("linear", 8, 0, 1) == 8.0
    assert global_batch_factor("sqrt", 16, 0, 5) == 4.0
    ramp = [global_batch_factor("linear", 4, 4, s) for s in range(1, 7)]
    assert ramp == [1.0, 2.0, 3.0, 4.0, 4.0, 4.0]  # lr·4 reached after 4 steps, then held
    assert global_batch_factor("none", 1, 2, 1) == 0.5


@pytest.mark.parametrize("factor", [0.5, 3.0])
def test_the_factor_scales_each_update_and_leaves_the_rate_as_set(factor):
    """Adam's update is proportional to its rate: with the factor, the first step equals a plain
    step at lr·factor, and the optimizer's own rate (set by the model's schedule) is unchanged."""
    torch.manual_seed(0)
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = torch.optim.Adam(a.parameters(), lr=1e-2), torch.optim.Adam(b.parameters(), lr=1e-2 * factor)
    precision = Precision("off", torch.device("cpu"))
    precision.lr_factor = factor
    x = torch.randn(5, 3)
    precision.step(a(x).square().mean(), opt_a)
    opt_b.zero_grad()
    b(x).square().mean().backward()
    opt_b.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)
    assert math.isclose(opt_a.param_groups[0]["lr"], 1e-2)
