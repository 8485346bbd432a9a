"""Batch plumbing shared by every model: cutting a global batch into the parts of the ranks a process
stands for (``--accumulate``)."""

from __future__ import annotations

import pytest
import torch

from gankit.data.streams import split_rows


def test_split_rows_cuts_every_tensor_of_a_batch_into_consecutive_blocks():
    batch = {"A": torch.arange(12).view(6, 2), "B": (torch.arange(6), torch.tensor(7.0)), "name": "x"}
    parts = split_rows(batch, 3)
    assert len(parts) == 3
    for i, part in enumerate(parts):
        assert torch.equal(part["A"], torch.arange(12).view(6, 2)[2 * i : 2 * i + 2])
        assert isinstance(part["B"], tuple) and torch.equal(part["B"][0], torch.arange(2 * i, 2 * i + 2))
        assert part["B"][1].item() == 7.0 and part["name"] == "x"  # scalars and non-tensors in every part


def test_split_rows_refuses_a_batch_that_does_not_divide():
    with pytest.raises(ValueError, match="5 rows does not split into 2"):
        split_rows(torch.zeros(5, 3), 2)
