"""gankit.nn.layers.Dropout: torch.nn.Dropout's behaviour from a cheaper random mask."""

import pytest
import torch
from torch import nn

from gankit.nn.layers import Dropout, dropout_mask


@pytest.mark.parametrize("p", [0.5, 0.3, 0.1, 0.9])
def test_mask_drops_the_requested_share_and_rescales_the_rest(p):
    torch.manual_seed(0)
    x = torch.ones(64, 32, 7, 7)
    mask = dropout_mask(x, p)
    assert mask.shape == x.shape and mask.dtype == x.dtype
    values = mask.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p))
    dropped = (mask == 0).double().mean().item()
    assert dropped == pytest.approx(p, abs=4 * (p * (1 - p) / x.numel()) ** 0.5)  # 4 σ of a binomial share
    assert mask.mean().item() == pytest.approx(1.0, abs=0.02)


def test_masks_are_independent_across_elements_and_calls():
    torch.manual_seed(1)
    x = torch.zeros(200_000)
    a, b = dropout_mask(x, 0.5) > 0, dropout_mask(x, 0.5) > 0
    assert 0.49 < (a == b).float().mean().item() < 0.51  # not the same mask twice
    assert 0.49 < (a[1:] == a[:-1]).float().mean().item() < 0.51  # no correlation between neighbours


def test_training_output_and_gradient_use_the_same_mask_and_eval_is_identity():
    torch.manual_seed(2)
    layer = Dropout(0.5)
    x = torch.randn(8, 16, 5, 5, requires_grad=True)
    y = layer(x)
    kept = y != 0
    assert torch.allclose(y[kept], 2 * x[kept])
    y.sum().backward()
    assert torch.equal(x.grad, kept.float() * 2)
    layer.eval()
    assert torch.equal(layer(x), x)
    assert isinstance(layer, nn.Dropout)  # code that treats nn.Dropout specially (tiling, export) still does


def test_same_seed_same_mask():
    x = torch.randn(4, 3, 9, 9)
    torch.manual_seed(3)
    a = Dropout(0.3)(x)
    torch.manual_seed(3)
    assert torch.equal(a, Dropout(0.3)(x))


def test_scripts_and_keeps_torch_dropout_semantics_there():
    net = nn.Sequential(nn.Conv2d(2, 4, 3), Dropout(0.5))
    scripted = torch.jit.script(net).eval()
    x = torch.randn(1, 2, 8, 8)
    assert torch.equal(scripted(x), net.eval()(x))
